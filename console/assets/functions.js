// Functions for operators: versions, aliases (moved from here) and live
// logs (polled with ?since= every second).
import { h, api, table, errorBox, bytes, enc } from "./dom.js";

const MAX_LOG_LINES = 1000;

export function functionsPage(ctx) {
  const el = h("section", {}, h("h2", {}, "Functions"));
  api("GET", "/v1/functions").then((fs) => {
    el.append(table(["name", "runtime", "versions", "aliases", "updated"], fs.map((f) => h("tr", {},
      h("td", {}, h("a", { href: "#/functions/" + enc(f.name) }, f.name)),
      h("td", {}, f.latest.runtime), h("td", {}, f.versions.length),
      h("td", {}, Object.entries(f.aliases || {}).map(([a, v]) => `${a} → ${v}`).join(", ")),
      h("td", {}, f.updated))), { id: "functions" }));
  }, (e) => el.append(errorBox(e)));
  return el;
}

export function functionPage(ctx, name) {
  const info = h("div", {});
  const logs = h("pre", { id: "logs", class: "logs" });
  const el = h("section", {}, h("h2", {}, "Function ", h("code", {}, name)), info, h("h3", {}, "Live logs"), logs);
  const load = async () => {
    try { info.replaceChildren(...renderFunction(await api("GET", "/v1/functions/" + enc(name)), name, load).filter(Boolean)); } catch (e) { info.replaceChildren(errorBox(e)); }
  };
  load();
  let since = "";
  ctx.every(1000, async () => {
    const lines = await api("GET", `/v1/functions/${enc(name)}/logs?limit=${since ? 1000 : 200}${since ? "&since=" + enc(since) : ""}`);
    if (!lines.length) { if (!logs.childNodes.length) logs.textContent = ""; return; }
    since = lines[lines.length - 1].time;
    const stick = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
    logs.append(...lines.map((l) => h("div", {},
      h("span", { class: "muted" }, `${l.time} v${l.version} ${l.pipeline || ""}[${l.partition}] ${l.first_offset}-${l.last_offset} `), l.line)));
    while (logs.childNodes.length > MAX_LOG_LINES) logs.firstChild.remove();
    if (stick) logs.scrollTop = logs.scrollHeight;
  });
  return el;
}

function renderFunction(f, name, reload) {
  const versions = f.versions.map((v) => v.version);
  const status = h("div", {});
  const move = async (alias, version, btn) => {
    btn.disabled = true;
    try {
      await api("PUT", `/v1/functions/${enc(name)}/aliases/${enc(alias)}`, { version: Number(version) });
      await reload();
    } catch (e) { status.replaceChildren(errorBox(e)); btn.disabled = false; }
  };
  const aliasRows = Object.entries(f.aliases || {}).sort().map(([alias, v]) => {
    const sel = h("select", { "data-alias": alias, "aria-label": `version for ${alias}` },
      versions.map((n) => h("option", { value: n, selected: n === v }, "version " + n)));
    const btn = h("button", { "data-move": alias, onclick: () => move(alias, sel.value, btn) }, "Move");
    return h("tr", { "data-alias-row": alias }, h("td", {}, alias), h("td", { class: "alias-version" }, v), h("td", {}, sel, " ", btn));
  });
  const newName = h("input", { id: "new-alias", placeholder: "alias", size: 12 });
  const newSel = h("select", {}, versions.map((n) => h("option", { value: n }, "version " + n)));
  const newBtn = h("button", { onclick: () => newName.value && move(newName.value, newSel.value, newBtn) }, "Create");
  const c = f.latest;
  return [
    h("p", { class: "muted" }, `$LATEST: ${c.runtime}, ${bytes(c.code_size)} of code (sha256 ${c.code_sha256.slice(0, 12)}…), memory ${bytes(c.memory)}, timeout ${c.timeout}`),
    h("h3", {}, "Aliases"),
    aliasRows.length ? table(["alias", "version", "move to"], aliasRows, { id: "aliases" }) : h("p", { class: "muted" }, "No aliases."),
    versions.length ? h("p", {}, "New alias: ", newName, " ", newSel, " ", newBtn) : null,
    status,
    h("h3", {}, "Versions"),
    versions.length ? table(["version", "runtime", "code", "memory", "timeout", "env", "published"], f.versions.map((v) => h("tr", {},
      h("td", {}, v.version), h("td", {}, v.config.runtime), h("td", { title: v.config.code_sha256 }, v.config.code_sha256.slice(0, 12) + "… " + bytes(v.config.code_size)),
      h("td", {}, bytes(v.config.memory)), h("td", {}, v.config.timeout),
      h("td", {}, Object.keys(v.config.env || {}).join(", ")), h("td", {}, v.published))), { id: "versions" }) :
      h("p", { class: "muted" }, "No versions published (sluice fn publish)."),
  ];
}
