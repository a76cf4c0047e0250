// A small SQL tokenizer for the editor's highlighting: keywords, strings,
// quoted identifiers, numbers, comments, everything else as text.

const KEYWORDS = new Set(`select from where group by order having limit offset as and or not in is null
like ilike between case when then else end join left right inner outer full cross on using
union all distinct with asc desc true false interval count sum avg min max cast over partition
describe show tables explain values exists any filter window qualify nulls first last date
timestamp now current_date current_timestamp into create insert update delete drop`.split(/\s+/));

const TOKEN = /(--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))|('(?:[^']|'')*'?)|("(?:[^"]|"")*"?)|(\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b)|([A-Za-z_][A-Za-z0-9_$]*)|([\s\S])/gi;

// tokens splits sql into [class, text] pairs ("" for plain text); their
// texts joined give sql back.
export function tokens(sql) {
  const out = [];
  for (const m of sql.matchAll(TOKEN)) {
    let cls = "";
    if (m[1]) cls = "comment";
    else if (m[2]) cls = "string";
    else if (m[3]) cls = "ident";
    else if (m[4]) cls = "number";
    else if (m[5] && KEYWORDS.has(m[5].toLowerCase())) cls = "keyword";
    const last = out[out.length - 1];
    if (last && last[0] === cls && cls === "") last[1] += m[0];
    else out.push([cls, m[0]]);
  }
  return out;
}

// highlight fills pre with spans for sql (text only, no HTML parsing).
export function highlight(pre, sql) {
  const parts = tokens(sql).map(([cls, text]) => {
    if (!cls) return document.createTextNode(text);
    const s = document.createElement("span");
    s.className = "sql-" + cls;
    s.textContent = text;
    return s;
  });
  // A trailing newline needs a character after it to take up a line.
  parts.push(document.createTextNode(sql.endsWith("\n") ? " " : ""));
  pre.replaceChildren(...parts);
}
