// The table browser: schema, settings, and, from queries (the query API
// reports the files and bytes a query read), file count, size, rows,
// newest data and partitions.
import { h, api, table, errorBox, bytes, ago, enc, quoteIdent } from "./dom.js";
import { runQuery } from "./query.js";

export function tablesPage(ctx) {
  const el = h("section", {}, h("h2", {}, "Tables"), h("p", { class: "muted" }, "Loading…"));
  api("GET", "/v1/tables").then((tables) => {
    el.replaceChildren(h("h2", {}, "Tables"), table(["name", "columns", "time column", "partitioned by", "file age"],
      tables.map((t) => h("tr", {},
        h("td", {}, h("a", { href: "#/tables/" + enc(t.name) }, t.name)),
        h("td", {}, t.schema.columns.length),
        h("td", {}, t.schema.time_column || ""),
        h("td", {}, partitionSpec(t).join(", ")),
        h("td", {}, t.file_age))), { id: "tables" }));
  }, (e) => el.replaceChildren(h("h2", {}, "Tables"), errorBox(e)));
  return el;
}

// partitionSpec is the table's partition_by with its default (hour of the
// time column).
function partitionSpec(t) {
  if (t.schema.partition_by?.length) return t.schema.partition_by;
  return t.schema.time_column ? [`hour(${t.schema.time_column})`] : [];
}

// partitionColumns: the Hive columns the spec puts in paths.
function partitionColumns(t) {
  const cols = [];
  for (const p of partitionSpec(t)) {
    const m = /^(day|hour)\(/.exec(p);
    if (!m) cols.push(p);
    else cols.push(...(m[1] === "day" ? ["dt"] : ["dt", "hour"]));
  }
  return [...new Set(cols)];
}

export function tablePage(ctx, name) {
  const el = h("section", {}, h("h2", {}, "Table ", h("code", {}, name)));
  const stats = h("div", { id: "table-stats" }, h("p", { class: "muted" }, "Counting…"));
  const parts = h("div", { id: "table-partitions" });
  api("GET", "/v1/tables/" + enc(name)).then((t) => {
    const tc = t.schema.time_column;
    el.append(
      h("p", {}, h("button", { onclick: () => runQuery(`select * from ${quoteIdent(name)}${tc ? ` order by ${quoteIdent(tc)} desc` : ""} limit 100`) }, "Query this table")),
      stats,
      h("h3", {}, "Schema"),
      table(["column", "type", "nullable", ""], t.schema.columns.map((c) => h("tr", {},
        h("td", {}, c.name), h("td", {}, h("code", {}, c.type)), h("td", {}, c.not_null ? "no" : "yes"),
        h("td", { class: "muted" }, c.name === tc ? "time column" : c.name === t.schema.rest_column ? "rest column" : ""))), { id: "schema" }),
      h("p", { class: "muted" }, `Partitioned by ${partitionSpec(t).join(", ") || "nothing"}; files rotate at ${bytes(t.file_bytes)} or ${t.file_age} (${t.file_idle} idle); row groups of ${t.row_group_rows} rows.`),
      h("h3", {}, "Partitions"), parts);
    loadStats(name, tc, stats);
    loadPartitions(name, partitionColumns(t), parts);
  }, (e) => el.append(errorBox(e)));
  return el;
}

// loadStats: a query with no predicate reads every committed file, so its
// files_scanned and bytes_scanned are the table's file count and size.
async function loadStats(name, tc, el) {
  const sql = `select count(*) as rows${tc ? `, max(${quoteIdent(tc)}) as newest` : ""} from ${quoteIdent(name)}`;
  try {
    const r = await api("POST", "/v1/query", { sql });
    const [rows, newest] = r.rows[0];
    el.replaceChildren(table(["files", "size", "rows", "newest data"], [h("tr", {},
      h("td", {}, r.files_scanned), h("td", {}, bytes(r.bytes_scanned)), h("td", {}, rows),
      h("td", {}, newest ? `${newest} (${ago(newest)})` : "—"))], { class: "kv" }));
  } catch (e) { el.replaceChildren(errorBox(e)); }
}

async function loadPartitions(name, cols, el) {
  if (!cols.length) { el.replaceChildren(h("p", { class: "muted" }, "Not partitioned.")); return; }
  const list = cols.map(quoteIdent).join(", ");
  const sql = `select ${list}, count(*) as rows from ${quoteIdent(name)} group by all order by all desc limit 200`;
  try {
    const r = await api("POST", "/v1/query", { sql });
    el.replaceChildren(r.rows.length ? table([...cols, "rows"], r.rows.map((row) => h("tr", {}, row.map((v) => h("td", {}, v ?? "NULL"))))) :
      h("p", { class: "muted" }, "No data yet."),
    r.rows.length === 200 ? h("p", { class: "muted" }, "The newest 200 partitions.") : "");
  } catch (e) { el.replaceChildren(errorBox(e)); }
}
