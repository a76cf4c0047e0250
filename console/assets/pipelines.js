// Pipelines for operators: per-partition state, lag, last error and the
// function's stderr, pause and resume.
import { h, api, table, errorBox, ago, enc } from "./dom.js";

export function pipelinesPage(ctx) {
  const el = h("section", {}, h("h2", {}, "Pipelines"));
  api("GET", "/v1/pipelines").then((ps) => {
    el.append(table(["name", "stream", "function", "table", "state"], ps.map((p) => h("tr", {},
      h("td", {}, h("a", { href: "#/pipelines/" + enc(p.name) }, p.name)),
      h("td", {}, h("a", { href: "#/streams/" + enc(p.stream) }, p.stream)),
      h("td", {}, p.function ? h("a", { href: "#/functions/" + enc(p.function.split(":")[0]) }, p.function) : h("span", { class: "muted" }, "direct")),
      h("td", {}, h("a", { href: "#/tables/" + enc(p.table) }, p.table)),
      h("td", {}, p.paused ? "paused" : "", p.internal ? h("span", { class: "muted" }, ` internal (${p.internal})`) : null))), { id: "pipelines" }));
  }, (e) => el.append(errorBox(e)));
  return el;
}

export function pipelinePage(ctx, name) {
  const info = h("div", {});
  const parts = h("div", { id: "partitions-box" }, h("p", { class: "muted" }, "Loading…"));
  const el = h("section", {}, h("h2", {}, "Pipeline ", h("code", {}, name)), info, h("h3", {}, "Partitions"), parts);
  const loadInfo = async () => {
    try {
      const p = await api("GET", "/v1/pipelines/" + enc(name));
      const toggle = h("button", { id: p.paused ? "resume" : "pause", onclick: async () => {
        toggle.disabled = true;
        try { await api("POST", `/v1/pipelines/${enc(name)}/${p.paused ? "resume" : "pause"}`); } catch (e) { info.append(errorBox(e)); }
        loadInfo();
      } }, p.paused ? "Resume" : "Pause");
      info.replaceChildren(h("p", {},
        h("a", { href: "#/streams/" + enc(p.stream) }, p.stream), " → ",
        p.function ? h("a", { href: "#/functions/" + enc(p.function.split(":")[0]) }, p.function) : "direct", " → ",
        h("a", { href: "#/tables/" + enc(p.table) }, p.table),
        h("span", { class: "muted" }, ` · batches of ${p.batch_size} records within ${p.batch_window}`),
        p.paused ? h("strong", { class: "warn" }, " · paused") : null, " ", toggle));
    } catch (e) { info.replaceChildren(errorBox(e)); }
  };
  loadInfo();
  ctx.every(2000, async () => {
    let st;
    try { st = (await api("GET", `/v1/pipelines/${enc(name)}/status`)).partitions; } catch (e) { parts.replaceChildren(errorBox(e)); return; }
    const total = st.reduce((a, p) => a + p.lag, 0);
    const oldest = Math.max(0, ...st.map((p) => p.lag_age_seconds || 0));
    parts.replaceChildren(h("p", { class: "muted" }, `Lag: ${total} record${total === 1 ? "" : "s"} in all` +
      (oldest > 0 ? `, the oldest unprocessed ${age(oldest)} old.` : ".")),
      table(["partition", "state", "worker", "version", "committed", "end", "lag", "lag age", "since", "attempts"], st.map((p) => [
        h("tr", { "data-partition": p.partition, "data-state": p.state },
          h("td", {}, p.partition), h("td", {}, h("span", { class: "state state-" + p.state }, p.state)),
          h("td", {}, p.worker || ""), h("td", {}, p.function_version || ""), h("td", {}, p.committed), h("td", {}, p.end_offset),
          h("td", {}, p.lag), h("td", { class: "lag-age", title: p.oldest_unprocessed || "caught up" }, age(p.lag_age_seconds)),
          h("td", { title: p.since }, ago(p.since)), h("td", {}, p.attempts || "")),
        p.last_error || p.stderr ? h("tr", { class: "detail" }, h("td", { colspan: 10 },
          p.last_error ? h("div", { class: "error last-error" }, p.last_error) : null,
          p.stderr ? h("pre", { class: "stderr" }, p.stderr) : null)) : null,
      ]), { id: "partitions" }));
  });
  return el;
}

// age renders a lag age in seconds ("" when caught up).
function age(s) {
  if (!s) return "";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}
