// The SQL editor: highlighting, Ctrl-Enter to run, cancel, results with
// types, paging, charts, CSV/JSON download (of the result shown), Parquet
// download (of the whole result, through an async query), history (in this
// browser's localStorage, each entry loaded or run again) and what each
// query scanned.
import { h, api, apiBlob, table, errorBox, bytes, download, enc } from "./dom.js";
import { highlight } from "./sql.js";
import { chart, chartKinds } from "./chart.js";

const PAGE_ROWS = 100;
const HISTORY = "sluice.history";
const MAX_HISTORY = 50;
const POLL_MS = 500;

// What survives leaving the page and coming back.
const state = {
  sql: "select level, count(*) as n from logs group by level order by n desc",
  result: null, error: null, page: 0, chart: "", running: null,
};

export function runQuery(sql) {
  state.sql = sql;
  location.hash = "#/query";
  setTimeout(() => document.getElementById("run")?.click(), 0);
}

export function queryPage() {
  const pre = h("pre", { class: "hl", "aria-hidden": "true" });
  const area = h("textarea", { id: "sql", spellcheck: "false", autocomplete: "off", "aria-label": "SQL" });
  area.value = state.sql;
  const sync = () => { state.sql = area.value; highlight(pre, area.value); pre.scrollTop = area.scrollTop; pre.scrollLeft = area.scrollLeft; };
  area.addEventListener("input", sync);
  area.addEventListener("scroll", sync);
  area.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); }
    if (e.key === "Tab") { e.preventDefault(); area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end"); sync(); }
  });
  sync();
  const runBtn = h("button", { id: "run", onclick: () => run(), title: "Ctrl-Enter" }, "Run");
  const cancelBtn = h("button", { id: "cancel", onclick: () => state.running?.abort(), disabled: true }, "Cancel");
  const parquetBtn = h("button", { id: "download-parquet", title: "runs the query as an async query and downloads its whole result",
    onclick: () => downloadParquet(area.value.trim(), parquetBtn, parquetStatus) }, "Download Parquet");
  const parquetStatus = h("span", { id: "parquet-status", class: "muted" });
  const out = h("section", { id: "output" });
  const hist = h("aside", { id: "history" });

  async function run() {
    const sql = area.value.trim();
    if (!sql || state.running) return;
    const ctl = new AbortController();
    state.running = ctl;
    runBtn.disabled = true; cancelBtn.disabled = false;
    out.replaceChildren(h("p", { class: "muted", id: "running" }, "Running…"));
    const started = performance.now();
    try {
      state.result = await api("POST", "/v1/query", { sql }, { signal: ctl.signal });
      state.error = null;
      addHistory(sql, state.result);
    } catch (e) {
      state.result = null;
      state.error = e.name === "AbortError" ? new Error("Cancelled after " + Math.round(performance.now() - started) + " ms.") : e;
    } finally {
      state.running = null;
      state.page = 0;
      runBtn.disabled = false; cancelBtn.disabled = true;
    }
    renderOutput(out);
    renderHistory(hist, area, sync, run);
  }

  renderOutput(out);
  renderHistory(hist, area, sync, run);
  return h("div", { class: "query-page" },
    h("div", { class: "editor-col" },
      h("div", { class: "editor" }, pre, area),
      h("div", { class: "toolbar" }, runBtn, cancelBtn, h("span", { class: "muted" }, "Ctrl-Enter runs"), parquetBtn, parquetStatus),
      out),
    hist);
}

// downloadParquet runs sql as an async query (POST /v1/queries), polls it
// until it has succeeded, then downloads its whole result as Parquet: no
// 10,000-row limit, the server writes the file.
async function downloadParquet(sql, btn, status) {
  if (!sql) return;
  btn.disabled = true;
  status.removeAttribute("data-rows");
  const say = (text, cls = "muted") => { status.className = cls; status.textContent = text; };
  try {
    let q = await api("POST", "/v1/queries", { sql });
    say("Parquet: " + q.state + "…");
    while (q.state === "queued" || q.state === "running") {
      await new Promise((r) => setTimeout(r, POLL_MS));
      q = await api("GET", "/v1/queries/" + enc(q.id));
      say("Parquet: " + q.state + "…");
    }
    if (q.state !== "succeeded") throw new Error(`Async query ${q.id} ${q.state}: ${q.error || "no result"}`);
    const blob = await apiBlob(`/v1/queries/${enc(q.id)}/results?format=parquet`);
    download("result.parquet", "application/vnd.apache.parquet", blob);
    status.setAttribute("data-rows", q.rows);
    say(`Parquet: ${q.rows} row${q.rows === 1 ? "" : "s"}, ${bytes(blob.size)} (query ${q.id})`);
  } catch (e) {
    say(String(e && e.message || e), "error");
  } finally {
    btn.disabled = false;
  }
}

function renderOutput(out) {
  if (state.error) { out.replaceChildren(errorBox(state.error)); return; }
  const res = state.result;
  if (!res) { out.replaceChildren(); return; }
  const pages = Math.max(1, Math.ceil(res.rows.length / PAGE_ROWS));
  const from = state.page * PAGE_ROWS;
  const stats = h("p", { id: "stats", class: "stats" },
    `${res.row_count} row${res.row_count === 1 ? "" : "s"} · ${res.elapsed_ms.toFixed(1)} ms · `,
    `${res.files_scanned} file${res.files_scanned === 1 ? "" : "s"} scanned (${bytes(res.bytes_scanned)}), ${res.files_pruned} pruned`);
  const warn = res.truncated ? h("p", { class: "warn" }, `Result cut at ${res.row_count} rows by ${res.truncated_by || "a limit"}: add a LIMIT or aggregate.`) : null;
  const kinds = chartKinds(res);
  if (!kinds.includes(state.chart)) state.chart = "";
  const chartSel = kinds.length ? h("select", { id: "chart-kind", onchange: (e) => { state.chart = e.target.value; renderOutput(out); } },
    h("option", { value: "" }, "no chart"), kinds.map((k) => h("option", { value: k, selected: state.chart === k }, k + " chart"))) : null;
  const tools = h("div", { class: "toolbar" },
    h("button", { id: "download-csv", onclick: () => download("result.csv", "text/csv", toCSV(res)) }, "Download CSV"),
    h("button", { onclick: () => download("result.json", "application/json", JSON.stringify(res, null, 1)) }, "Download JSON"),
    chartSel,
    pages > 1 ? [
      h("button", { id: "prev-page", disabled: state.page === 0, onclick: () => { state.page--; renderOutput(out); } }, "‹ Prev"),
      h("span", { id: "page" }, `page ${state.page + 1} of ${pages}`),
      h("button", { id: "next-page", disabled: state.page >= pages - 1, onclick: () => { state.page++; renderOutput(out); } }, "Next ›"),
    ] : null);
  const head = res.columns.map((c) => h("span", {}, c.name, h("small", { class: "type" }, c.type)));
  const rows = res.rows.slice(from, from + PAGE_ROWS).map((r) =>
    h("tr", {}, r.map((v, i) => h("td", { class: cellClass(res.columns[i].type, v) }, cellText(v)))));
  out.replaceChildren(...[stats, warn, tools, state.chart ? chart(res, state.chart) : null,
    h("div", { class: "scroll" }, table(head, rows, { id: "result", class: "result" }))].filter(Boolean));
}

function cellText(v) {
  if (v === null) return "NULL";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function cellClass(type, v) {
  if (v === null) return "null";
  return /INT|FLOAT|DOUBLE|DECIMAL/.test(type) ? "num" : "";
}

// toCSV renders the result as RFC 4180 CSV (nested values as JSON, NULL
// as an empty field).
export function toCSV(res) {
  const field = (v) => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s;
  };
  return [res.columns.map((c) => field(c.name)), ...res.rows.map((r) => r.map(field))].map((r) => r.join(",")).join("\r\n") + "\r\n";
}

function loadHistory() {
  try { return JSON.parse(localStorage.getItem(HISTORY)) || []; } catch { return []; }
}

function addHistory(sql, res) {
  const hist = loadHistory().filter((e) => e.sql !== sql);
  hist.unshift({ sql, time: new Date().toISOString(), rows: res.row_count, ms: res.elapsed_ms, bytes: res.bytes_scanned });
  localStorage.setItem(HISTORY, JSON.stringify(hist.slice(0, MAX_HISTORY)));
}

function renderHistory(el, area, sync, run) {
  const hist = loadHistory();
  el.replaceChildren(h("h3", {}, "History"),
    hist.length ? h("ol", {}, hist.map((e) => h("li", {},
      h("button", { class: "link sql-snippet", title: e.sql, onclick: () => { area.value = e.sql; sync(); area.focus(); } }, e.sql.slice(0, 120)),
      h("button", { class: "link history-run", title: "run it again", onclick: () => { area.value = e.sql; sync(); run(); } }, "run"),
      h("small", { class: "muted" }, ` ${new Date(e.time).toLocaleString()} · ${e.rows} rows · ${Math.round(e.ms)} ms · ${bytes(e.bytes)}`)))) :
      h("p", { class: "muted" }, "Queries you run are kept here, in this browser only."),
    hist.length ? h("button", { class: "link", onclick: () => { localStorage.removeItem(HISTORY); renderHistory(el, area, sync, run); } }, "clear history") : null);
}
