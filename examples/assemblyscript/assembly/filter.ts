// levelfilter: drops the records whose data has "level": "debug" (in any
// case); for every other record writes one row:
//
//   {"ts":"2026-11-22T09:30:00.123000000Z","partition":3,"offset":1234,"level":"info","msg":"hi"}
//
// ts, partition and offset are the record's. level is the data's "level" and
// msg its "msg" (else its "message"), when they are JSON strings, copied as
// they are; otherwise null, so that every row fits the table of schema.json.
// Data that is itself a JSON string (a plain log line) is the msg.
import { Span, member, record, write, writeInt, writeRaw } from "./sluice";

const level = new Span();
const msg = new Span();

/** Writes the current record's row, or nothing for a debug record. */
export function levelFilter(): void {
  const data = record.data;
  const hasLevel = member(data, "level", level) && level.isString();
  if (hasLevel && isDebug(level)) return;
  let hasMsg = (member(data, "msg", msg) || member(data, "message", msg)) && msg.isString();
  if (!hasMsg && data.isString()) {
    msg.set(data.start, data.end);
    hasMsg = true;
  }
  write('{"ts":');
  writeRaw(record.timestamp);
  write(',"partition":');
  writeInt(record.partition);
  write(',"offset":');
  writeInt(record.offset);
  write(',"level":');
  if (hasLevel) writeRaw(level);
  else write("null");
  write(',"msg":');
  if (hasMsg) writeRaw(msg);
  else write("null");
  write("}\n");
}

/** The raw JSON string s is "debug", in any ASCII case. */
function isDebug(s: Span): bool {
  if (s.length != 7) return false;
  const want = "debug";
  for (let i = 0; i < 5; i++) {
    if ((<u32>load<u8>(s.start + 1 + i) | 0x20) != <u32>want.charCodeAt(i)) return false;
  }
  return true;
}
