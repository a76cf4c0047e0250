// Small DOM and API helpers shared by the console's pages. Every piece of
// data goes into the page as text (textContent), never as HTML.

const KEY = "sluice.key";

export function getKey() { return sessionStorage.getItem(KEY) || ""; }
export function setKey(k) { sessionStorage.setItem(KEY, k); }
export function forgetKey() { sessionStorage.removeItem(KEY); }

// h builds an element: h("a", {href: "#/x", class: "c", onclick: fn}, "text", child...).
export function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// ApiError carries the HTTP status and the server's {"error"} message.
export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// api calls the sluice HTTP API with the key and returns its JSON answer.
// A 401 forgets the key and shows the login form.
export async function api(method, path, body, opts = {}) {
  const text = await (await call(method, path, body, opts)).text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

// apiBlob GETs path with the key and returns the answer as a Blob (a file
// to download: fetch, unlike a link, can send the Authorization header).
export async function apiBlob(path, opts = {}) {
  return (await call("GET", path, undefined, opts)).blob();
}

async function call(method, path, body, opts) {
  const headers = { "Authorization": "Bearer " + getKey() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method, headers, signal: opts.signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.ok) return resp;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  const msg = (data && data.error) || text || resp.statusText;
  if (resp.status === 401) {
    forgetKey();
    window.dispatchEvent(new CustomEvent("sluice:unauthorized", { detail: msg }));
  }
  throw new ApiError(resp.status, msg);
}

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, String(err && err.message || err));
}

export function bytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
}

export function ago(t) {
  if (!t) return "";
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  if (!isFinite(s)) return "";
  if (s < 1) return "just now";
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 129600) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

export function enc(name) { return encodeURIComponent(name); }

// quoteIdent quotes an SQL identifier.
export function quoteIdent(name) { return '"' + String(name).replaceAll('"', '""') + '"'; }

// download offers data (text or a Blob) as a file.
export function download(name, type, data) {
  const url = URL.createObjectURL(data instanceof Blob ? data : new Blob([data], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
