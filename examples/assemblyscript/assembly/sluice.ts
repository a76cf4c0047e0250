// The sluice warm wasm ABI in plain AssemblyScript: no SDK, no JSON library.
// Copy this file into your own function. The protocol is docs/functions.md in
// the sluice repository ("Framing" and "Warm wasm ABI").
//
// Per batch the host calls sluice_alloc(len), writes the request frame there
// (a header line, then one envelope line per record) and calls the entry
// file's sluice_handle(ptr, len), which does:
//
//   begin(ptr, len);
//   while (next()) { ... read `record`, write rows, or fail(...) ... }
//   return finish();
//
// Memory: the request and response buffers are raw heap blocks (heap.alloc,
// outside the garbage collector), kept and reused from batch to batch and
// grown only when a batch needs more, so a warm instance's memory stays at
// what its largest batch needed. Nothing here allocates managed objects per
// record; fail() and log() do (strings), and the incremental GC frees those.
//
// Imports: only WASI preview 1's fd_write (for log() and abort()), which the
// host provides. AssemblyScript's default `env.abort` import is replaced by
// abort() below through asconfig.json ("use": ["abort=assembly/sluice/abort"]).

@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: u32, written: usize): u16;

// ---- stderr (comes back with the batch as its log)
//
// First in the file: abort() may run while the globals below are initialized,
// so what it uses must be declared before them.

/** Writes a line to stderr. */
export function log(s: string): void {
  const buf = String.UTF8.encode(s + "\n");
  writeStderr(changetype<usize>(buf), <usize>buf.byteLength);
}

const iov = memory.data(16);

function writeStderr(ptr: usize, len: usize): void {
  while (len > 0) {
    store<usize>(iov, ptr);
    store<usize>(iov, len, sizeof<usize>());
    if (fd_write(2, iov, 1, iov + 8) != 0) return;
    const n = <usize>load<u32>(iov + 8);
    if (n == 0) return;
    ptr += n;
    len -= n;
  }
}

const abortBuf = memory.data(512);
let abortLen: usize = 0;

function abortText(s: string | null): void {
  if (s === null) return;
  for (let i = 0; i < s.length && abortLen < 510; i++) {
    const c = s.charCodeAt(i);
    store<u8>(abortBuf + abortLen++, c >= 0x20 && c < 0x7f ? <u8>c : 0x3f /* ? */);
  }
}

function abortNumber(n: u32): void {
  let digits: usize = 1;
  for (let t = n; t >= 10; t /= 10) digits++;
  if (abortLen + digits > 510) return;
  abortLen += digits;
  let p = abortBuf + abortLen;
  do {
    store<u8>(--p, <u8>(0x30 + n % 10));
    n /= 10;
  } while (n != 0);
}

/**
 * Replaces AssemblyScript's imported `env.abort` (a failed assert, an index
 * out of range...): writes the message to stderr without allocating, then
 * traps, which fails the batch with kind `trap` and discards the instance.
 */
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  abortLen = 0;
  abortText("abort: ");
  abortText(message);
  abortText(" at ");
  abortText(fileName);
  abortText(":");
  abortNumber(line);
  abortText(":");
  abortNumber(column);
  store<u8>(abortBuf + abortLen++, 0x0a);
  writeStderr(abortBuf, abortLen);
  unreachable();
}

/** A part [start, end) of the request frame: raw JSON, still escaped. */
export class Span {
  start: usize = 0;
  end: usize = 0;

  get length(): usize {
    return this.end - this.start;
  }

  /** The span is a JSON string (its quotes included). */
  isString(): bool {
    return this.end - this.start >= 2 && load<u8>(this.start) == 0x22 && load<u8>(this.end - 1) == 0x22;
  }

  /** The raw bytes equal the ASCII text `s` (a string span includes its quotes). */
  equals(s: string): bool {
    if (<usize>s.length != this.end - this.start) return false;
    for (let i = 0; i < s.length; i++) {
      if (<u32>load<u8>(this.start + i) != <u32>s.charCodeAt(i)) return false;
    }
    return true;
  }

  set(start: usize, end: usize): void {
    this.start = start;
    this.end = end;
  }
}

/** One record of the batch. Its spans point into the request frame: valid during the call only. */
export class Record {
  /** Position in the batch, from 0. */
  index: i32 = 0;
  partition: i32 = 0;
  offset: i64 = 0;
  /** `stream` and `timestamp` as JSON strings; `key` a JSON string or null. */
  readonly stream: Span = new Span();
  readonly key: Span = new Span();
  readonly timestamp: Span = new Span();
  /** `headers`, a JSON object. */
  readonly headers: Span = new Span();
  /** `data`: the record's value, any JSON value. */
  readonly data: Span = new Span();
}

/** The current record, set by next(). */
export const record = new Record();

// ---- Buffers (raw heap blocks, reused across batches)

let inPtr: usize = 0;
let inCap: usize = 0;
let outPtr: usize = 0;
let outCap: usize = 0;
let outLen: usize = 0;

/** sluice_alloc: a buffer for the next request frame, owned by the guest. */
export function sluice_alloc(size: i32): i32 {
  const n = <usize>max(size, 1);
  if (n > inCap) {
    if (inPtr != 0) heap.free(inPtr);
    inPtr = heap.alloc(n);
    inCap = n;
  }
  return <i32>inPtr;
}

function reserve(n: usize): void {
  const need = outLen + n;
  if (need <= outCap) return;
  let cap = max<usize>(outCap << 1, 4096);
  while (cap < need) cap <<= 1;
  outPtr = outPtr == 0 ? heap.alloc(cap) : heap.realloc(outPtr, cap);
  outCap = cap;
}

// ---- Reading the request

let pos: usize = 0; // the next envelope line
let frameEnd: usize = 0;
let count: i32 = 0; // records in the batch
let sizesPos: usize = 0; // the next number in the header's "sizes", or 0
let failure: string | null = null;
const header = new Span();
const value = new Span();

/** Starts a batch: reads the header line of the frame at ptr. */
export function begin(ptr: i32, len: i32): void {
  pos = <usize>ptr;
  frameEnd = <usize>ptr + <usize>len;
  outLen = 0;
  count = 0;
  sizesPos = 0;
  failure = null;
  record.index = -1;
  const end = lineEnd(pos);
  header.set(pos, end);
  pos = end + 1;
  if (!member(header, "__sluice", value) || !value.equals('"batch"')) {
    fail("the request does not start with a batch header");
    return;
  }
  if (!member(header, "records", value) || !parseInt(value)) {
    fail("the batch header has no record count");
    return;
  }
  count = <i32>parsed;
  if (member(header, "sizes", value) && load<u8>(value.start) == 0x5b /* [ */) sizesPos = value.start + 1;
}

/** Moves to the next record; false at the end of the batch or after fail(). */
export function next(): bool {
  if (failure !== null || record.index + 1 >= count) return false;
  record.index++;
  const start = pos;
  if (start >= frameEnd) {
    fail("the request has fewer envelope lines than its header says");
    return false;
  }
  let end: usize;
  if (sizesPos != 0) {
    // "sizes" gives each envelope line's length, newline included: no scan.
    sizesPos = skipSpace(sizesPos, header.end);
    value.set(sizesPos, skipScalar(sizesPos, header.end));
    if (!parseInt(value) || parsed < 1 || <u64>parsed > <u64>(frameEnd - start)) {
      fail("bad size for record " + record.index.toString() + " in the batch header");
      return false;
    }
    sizesPos = skipSpace(value.end, header.end) + 1; // past ',' or ']'
    end = start + <usize>parsed - 1; // the line's '\n'
    if (load<u8>(end) != 0x0a) {
      fail("record " + record.index.toString() + " does not have the size the batch header says");
      return false;
    }
  } else {
    end = lineEnd(start);
  }
  pos = end + 1;
  if (!readEnvelope(start, end)) {
    fail("malformed envelope line " + record.index.toString());
    return false;
  }
  return true;
}

/** The end of the line starting at p: the index of its '\n', or the frame's end. */
function lineEnd(p: usize): usize {
  while (p < frameEnd && load<u8>(p) != 0x0a) p++;
  return p;
}

// The envelope's members come in a fixed order with `data` last, but others
// may be added before `data`: walk the members, skipping unknown ones.
function readEnvelope(start: usize, end: usize): bool {
  while (end > start && load<u8>(end - 1) == 0x0d) end--; // a trailing \r
  if (end - start < 2 || load<u8>(start) != 0x7b || load<u8>(end - 1) != 0x7d) return false;
  record.key.set(0, 0);
  record.data.set(0, 0);
  let p = start + 1;
  while (p < end && load<u8>(p) == 0x22) {
    const keyStart = p;
    p = skipString(p, end);
    if (p == 0 || p >= end || load<u8>(p) != 0x3a /* : */) return false;
    const k = keyStart + 1;
    const kl = p - 1 - k;
    p++;
    if (keyIs(k, kl, "data")) {
      // data is the last member: the rest of the line minus the closing '}'.
      let ds = p;
      let de = end - 1;
      while (ds < de && isSpace(load<u8>(ds))) ds++;
      while (de > ds && isSpace(load<u8>(de - 1))) de--;
      record.data.set(ds, de);
      return ds < de;
    }
    const v = p;
    p = skipValue(p, end);
    if (p == 0) return false;
    value.set(v, p);
    if (keyIs(k, kl, "partition")) {
      if (!parseInt(value)) return false;
      record.partition = <i32>parsed;
    } else if (keyIs(k, kl, "offset")) {
      if (!parseInt(value)) return false;
      record.offset = parsed;
    } else if (keyIs(k, kl, "stream")) {
      record.stream.set(v, p);
    } else if (keyIs(k, kl, "key")) {
      record.key.set(v, p);
    } else if (keyIs(k, kl, "timestamp")) {
      record.timestamp.set(v, p);
    } else if (keyIs(k, kl, "headers")) {
      record.headers.set(v, p);
    }
    if (p < end && load<u8>(p) == 0x2c /* , */) p++;
  }
  return false; // no data member
}

function keyIs(k: usize, len: usize, name: string): bool {
  if (len != <usize>name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (<u32>load<u8>(k + i) != <u32>name.charCodeAt(i)) return false;
  }
  return true;
}

// ---- JSON scanning (on raw bytes; returns 0 on malformed input)

function isSpace(c: u32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d;
}

function skipSpace(p: usize, end: usize): usize {
  while (p < end && isSpace(load<u8>(p))) p++;
  return p;
}

/** Past the string starting at p (a '"'), or 0. */
function skipString(p: usize, end: usize): usize {
  for (p++; p < end; p++) {
    const c = load<u8>(p);
    if (c == 0x5c /* \ */) p++;
    else if (c == 0x22) return p + 1;
  }
  return 0;
}

/** Past a number, true, false or null starting at p, or 0. */
function skipScalar(p: usize, end: usize): usize {
  const start = p;
  while (p < end) {
    const c = load<u8>(p);
    if (c == 0x2c || c == 0x7d || c == 0x5d || isSpace(c)) break;
    p++;
  }
  return p == start ? 0 : p;
}

/** Past the JSON value starting at p, or 0. */
function skipValue(p: usize, end: usize): usize {
  if (p >= end) return 0;
  const c = load<u8>(p);
  if (c == 0x22) return skipString(p, end);
  if (c != 0x7b && c != 0x5b) return skipScalar(p, end);
  let depth = 0;
  while (p < end) {
    const d = load<u8>(p);
    if (d == 0x22) {
      p = skipString(p, end);
      if (p == 0) return 0;
      continue;
    }
    if (d == 0x7b || d == 0x5b) depth++;
    else if (d == 0x7d || d == 0x5d) {
      if (--depth == 0) return p + 1;
    }
    p++;
  }
  return 0;
}

/**
 * Finds member `name` of the JSON object in `obj` (e.g. record.data) and sets
 * `out` to its raw value. False if obj is not an object or has no such member.
 * Keys are compared as written (a key spelled with escapes does not match).
 */
export function member(obj: Span, name: string, out: Span): bool {
  const end = obj.end;
  let p = skipSpace(obj.start, end);
  if (p >= end || load<u8>(p) != 0x7b) return false;
  p = skipSpace(p + 1, end);
  while (p < end && load<u8>(p) == 0x22) {
    const k = p + 1;
    p = skipString(p, end);
    if (p == 0) return false;
    const kl = p - 1 - k;
    p = skipSpace(p, end);
    if (p >= end || load<u8>(p) != 0x3a) return false;
    p = skipSpace(p + 1, end);
    const v = p;
    p = skipValue(p, end);
    if (p == 0) return false;
    if (keyIs(k, kl, name)) {
      out.set(v, p);
      return true;
    }
    p = skipSpace(p, end);
    if (p >= end || load<u8>(p) != 0x2c) return false;
    p = skipSpace(p + 1, end);
  }
  return false;
}

let parsed: i64 = 0;

/** Parses the span as a decimal integer into `parsed`. */
function parseInt(s: Span): bool {
  let p = s.start;
  const neg = p < s.end && load<u8>(p) == 0x2d;
  if (neg) p++;
  if (p >= s.end) return false;
  let n: i64 = 0;
  for (; p < s.end; p++) {
    const d = <i32>load<u8>(p) - 0x30;
    if (d < 0 || d > 9) return false;
    n = n * 10 + d;
  }
  parsed = neg ? -n : n;
  return true;
}

// ---- Writing the response

/** Appends ASCII text (e.g. the punctuation of a row) as is. */
export function write(s: string): void {
  const n = <usize>s.length;
  reserve(n);
  for (let i: usize = 0; i < n; i++) store<u8>(outPtr + outLen + i, <u8>s.charCodeAt(<i32>i));
  outLen += n;
}

/** Appends a raw JSON span (a value copied from the request). */
export function writeRaw(s: Span): void {
  const n = s.end - s.start;
  reserve(n);
  memory.copy(outPtr + outLen, s.start, n);
  outLen += n;
}

/** Appends an integer. */
export function writeInt(v: i64): void {
  reserve(20);
  let u: u64 = v < 0 ? <u64>(-v) : <u64>v;
  if (v < 0) store<u8>(outPtr + outLen++, 0x2d);
  let digits = 1;
  for (let t = u; t >= 10; t /= 10) digits++;
  outLen += digits;
  let p = outPtr + outLen;
  do {
    store<u8>(--p, <u8>(0x30 + <u32>(u % 10)));
    u /= 10;
  } while (u != 0);
}

const HEX = "0123456789abcdef";

/** Appends `s` as a JSON string (anything beyond ASCII as \uXXXX escapes). */
export function writeString(s: string): void {
  reserve(<usize>s.length * 6 + 2);
  let p = outPtr + outLen;
  store<u8>(p++, 0x22);
  for (let i = 0; i < s.length; i++) {
    const c = <u32>s.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) {
      store<u8>(p++, 0x5c);
      store<u8>(p++, <u8>c);
    } else if (c >= 0x20 && c < 0x7f) {
      store<u8>(p++, <u8>c);
    } else {
      store<u8>(p++, 0x5c);
      store<u8>(p++, 0x75);
      for (let shift = 12; shift >= 0; shift -= 4) store<u8>(p++, <u8>HEX.charCodeAt((c >> shift) & 15));
    }
  }
  store<u8>(p++, 0x22);
  outLen = p - outPtr;
}

/** Fails the batch with `message`: its rows are dropped, next() returns false. */
export function fail(message: string): void {
  if (failure === null) failure = message;
}

/** Ends the batch: returns the response (rows and terminator) as ptr << 32 | len. */
export function finish(): i64 {
  if (failure === null && record.index + 1 < count) {
    fail("the function stopped after " + (record.index + 1).toString() + " of " + count.toString() + " records");
  }
  const msg = failure;
  if (msg !== null) {
    outLen = 0;
    write('{"__sluice":"error","message":');
    writeString(msg);
    write("}\n");
  } else {
    write('{"__sluice":"ok"}\n');
  }
  return (<i64>outPtr << 32) | <i64>outLen;
}
