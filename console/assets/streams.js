// Streams for operators (partitions, records, ingest rates) and a page per
// stream for producers (ingest URL, curl and kcat examples, last records).
// Rates are the growth of the end offsets between two polls.
import { h, api, table, errorBox, ago, enc } from "./dom.js";

const samples = new Map(); // stream → {time, ends: Map(partition → end offset)}

// rate records a tail answer and returns records/s per partition since the
// previous one (empty on the first).
function rate(ans) {
  const now = new Date(ans.time).getTime();
  const prev = samples.get(ans.stream);
  const ends = new Map(ans.partitions.map((p) => [p.partition, p.end_offset]));
  samples.set(ans.stream, { time: now, ends });
  const out = new Map();
  if (!prev || now <= prev.time) return out;
  for (const [p, end] of ends) {
    if (prev.ends.has(p)) out.set(p, Math.max(0, end - prev.ends.get(p)) / ((now - prev.time) / 1000));
  }
  return out;
}

const fmtRate = (r) => r === undefined ? "…" : r.toFixed(r < 10 ? 1 : 0) + "/s";
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

export function streamsPage(ctx) {
  const body = h("tbody", {});
  const el = h("section", {}, h("h2", {}, "Streams"),
    h("table", { id: "streams" }, h("thead", {}, h("tr", {}, ["name", "partitions", "retention", "records kept", "offsets", "ingest rate"].map((c) => h("th", {}, c)))), body));
  const rows = new Map();
  ctx.every(5000, async () => {
    let streams;
    try { streams = await api("GET", "/v1/streams"); } catch (e) { el.replaceChildren(h("h2", {}, "Streams"), errorBox(e)); return; }
    for (const s of streams) {
      if (!rows.has(s.name)) {
        const tr = h("tr", {}, h("td", {}, h("a", { href: "#/streams/" + enc(s.name) }, s.name)), h("td", {}, s.partitions), h("td", {}, s.retention), h("td"), h("td"), h("td"));
        rows.set(s.name, tr);
        body.append(tr);
      }
    }
    for (const s of streams) { // one at a time: the server runs two tails at once
      if (!ctx.live()) return;
      const tr = rows.get(s.name);
      try {
        const ans = await api("GET", `/v1/streams/${enc(s.name)}/tail?limit=0`);
        const r = rate(ans);
        tr.children[3].textContent = sum(ans.partitions.map((p) => p.end_offset - p.start_offset));
        tr.children[4].textContent = sum(ans.partitions.map((p) => p.end_offset));
        tr.children[5].textContent = r.size ? fmtRate(sum([...r.values()])) : "…";
      } catch (e) { tr.children[5].textContent = e.message; }
    }
  });
  return el;
}

export function streamPage(ctx, name) {
  const url = `${location.origin}/v1/streams/${enc(name)}/records`;
  const curl = `curl -X POST ${url} \\\n  -H 'content-type: application/x-ndjson' \\\n  -H "authorization: Bearer $SLUICE_KEY" \\\n  --data-binary '{"level":"info","message":"hello"}'`;
  const kcat = `echo '{"level":"info","message":"hello"}' | kcat -b ${location.hostname}:9092 -t ${name} -P \\\n  -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=SCRAM-SHA-256 \\\n  -X sasl.username=$(sluice key id) -X sasl.password=$SLUICE_KEY -X partitioner=murmur2_random`;
  const parts = h("div", { id: "stream-partitions" }, h("p", { class: "muted" }, "Loading…"));
  const recs = h("div", { id: "records" });
  const el = h("section", {}, h("h2", {}, "Stream ", h("code", {}, name)),
    h("h3", {}, "Send records"),
    h("p", {}, "Ingest URL: ", h("code", { id: "ingest-url" }, url), " (a JSON array or NDJSON; a key with scope ", h("code", {}, "ingest:" + name), ")"),
    h("pre", { class: "code", id: "curl" }, curl),
    h("p", {}, "Or with any Kafka client, on the broker of ", h("code", {}, "--kafka-listen"), " (default port 9092; user: the key's id):"),
    h("pre", { class: "code" }, kcat),
    h("h3", {}, "Partitions"), parts,
    h("h3", {}, "Last records"), recs);
  ctx.every(3000, async () => {
    let ans;
    try { ans = await api("GET", `/v1/streams/${enc(name)}/tail?limit=20`); } catch (e) { parts.replaceChildren(errorBox(e)); return; }
    const r = rate(ans);
    parts.replaceChildren(table(["partition", "start offset", "end offset", "rate"], ans.partitions.map((p) => h("tr", {},
      h("td", {}, p.partition), h("td", {}, p.start_offset), h("td", {}, p.end_offset), h("td", {}, fmtRate(r.get(p.partition)))))));
    recs.replaceChildren(ans.records.length ? table(["time", "partition", "offset", "key", "value"], ans.records.map((x) => h("tr", {},
      h("td", { title: x.timestamp }, ago(x.timestamp)), h("td", {}, x.partition), h("td", {}, x.offset), h("td", {}, x.key || ""),
      h("td", {}, h("code", { class: "value" }, x.value + (x.truncated ? " …" : ""))))), { id: "last-records" }) :
      h("p", { class: "muted" }, "No records yet."));
  });
  return el;
}
