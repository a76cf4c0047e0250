// SVG charts of a query result: a line chart when the first column is a
// time or a number (a time series), else a bar chart of its values; every
// numeric column after it is one series.
import { h } from "./dom.js";

const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL.*)$/i;
const TIME = /^(DATE|TIMESTAMP.*|TIME)$/i;
const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#b83280", "#6b46c1", "#b7791f"];
const W = 760, H = 280, PAD = { l: 60, r: 16, t: 12, b: 48 };

export function isNumeric(type) { return NUMERIC.test(type); }

// chartKinds says which charts fit a result: [] when none does.
export function chartKinds(res) {
  if (!res || res.columns.length < 2 || !res.columns.slice(1).some((c) => isNumeric(c.type))) return [];
  const x = res.columns[0].type;
  return TIME.test(x) || isNumeric(x) ? ["line", "bar"] : ["bar"];
}

export function chart(res, kind) {
  const series = res.columns.map((c, i) => ({ c, i })).slice(1).filter((s) => isNumeric(s.c.type));
  const rows = res.rows.slice(0, kind === "bar" ? 50 : 5000);
  const xType = res.columns[0].type;
  const xval = (v) => TIME.test(xType) ? new Date(v).getTime() : Number(v);
  let ymin = 0, ymax = 0;
  for (const r of rows) for (const s of series) {
    const v = Number(r[s.i]);
    if (isFinite(v)) { ymin = Math.min(ymin, v); ymax = Math.max(ymax, v); }
  }
  if (ymax === ymin) ymax = ymin + 1;
  const pw = W - PAD.l - PAD.r, ph = H - PAD.t - PAD.b;
  const y = (v) => PAD.t + ph - ((v - ymin) / (ymax - ymin)) * ph;
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
  for (let k = 0; k <= 4; k++) {
    const v = ymin + ((ymax - ymin) * k) / 4;
    svg.append(h("svg:line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }),
      h("svg:text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
  }
  if (kind === "line") {
    const xs = rows.map((r) => xval(r[0]));
    const xmin = Math.min(...xs), xmax = Math.max(...xs) === xmin ? xmin + 1 : Math.max(...xs);
    const x = (v) => PAD.l + ((v - xmin) / (xmax - xmin)) * pw;
    const order = rows.map((r, i) => i).sort((a, b) => xs[a] - xs[b]);
    series.forEach((s, n) => {
      const pts = order.filter((i) => isFinite(Number(rows[i][s.i]))).map((i) => `${x(xs[i]).toFixed(1)},${y(Number(rows[i][s.i])).toFixed(1)}`);
      svg.append(h("svg:polyline", { points: pts.join(" "), fill: "none", stroke: COLORS[n % COLORS.length], "stroke-width": 2 }));
    });
    for (const v of [xmin, xmax]) {
      svg.append(h("svg:text", { x: x(v), y: H - PAD.b + 18, "text-anchor": v === xmin ? "start" : "end" },
        TIME.test(xType) ? new Date(v).toISOString().replace("T", " ").slice(0, 19) : fmt(v)));
    }
  } else {
    const band = pw / Math.max(rows.length, 1);
    const bw = Math.max(1, (band * 0.8) / series.length);
    rows.forEach((r, i) => {
      series.forEach((s, n) => {
        const v = Number(r[s.i]) || 0;
        const top = y(Math.max(v, 0)), bottom = y(Math.min(v, 0));
        svg.append(h("svg:rect", { x: PAD.l + i * band + band * 0.1 + n * bw, y: top, width: bw, height: Math.max(bottom - top, 0.5), fill: COLORS[n % COLORS.length] },
          h("svg:title", {}, `${r[0]}: ${v}`)));
      });
      if (rows.length <= 24) {
        svg.append(h("svg:text", { x: PAD.l + i * band + band / 2, y: H - PAD.b + 16, "text-anchor": "middle" }, String(r[0] ?? "null").slice(0, 12)));
      }
    });
  }
  const legend = h("div", { class: "legend" }, series.map((s, n) =>
    h("span", { class: "swatch-" + (n % COLORS.length) }, "■ ", s.c.name)));
  return h("div", { class: "chart-box" }, svg, legend);
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}
