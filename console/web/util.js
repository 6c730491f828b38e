// Small helpers shared by the pages: the console's API, DOM building, units.

/** A refusal from the console or the hub: `{error, code}` and the HTTP status. */
export class Refused extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "unknown";
  }
}

/** JSON from the console's API; throws `Refused` with the hub's code. */
export async function api(path, init) {
  const r = await fetch(path, init);
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch { body = { error: text }; }
  if (!r.ok) throw new Refused(r.status, body);
  return body;
}

/** An element with attributes (`on*` are listeners) and children (strings or nodes). */
export function el(tag, attrs = {}, ...kids) {
  const svg = ["svg", "g", "path", "circle", "rect", "line", "text", "title"].includes(tag);
  const e = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style") Object.assign(e.style, v); // CSSOM: allowed by the CSP, unlike style=""
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== undefined && k !== null) e.append(k);
  return e;
}

/** A table: headers, then rows of cells (a cell may be a node). */
export function table(caption, headers, rows, rowAttrs = () => ({})) {
  return el("div", { class: "scroll" }, el("table", {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r, i) => el("tr", rowAttrs(i), r.map((c) => el("td", {}, c)))))));
}

export const ms = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : `${x.toFixed(1)} ms`);
export const utc = (s) => (s ? new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");

/** "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function ago(s, now = Date.now() / 1000) {
  if (!s) return "never";
  const d = Math.max(0, now - s);
  if (d < 120) return `${Math.round(d)} s ago`;
  if (d < 7200) return `${Math.round(d / 60)} min ago`;
  if (d < 172800) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

/** Counts of `key(x)` over `xs`, as [key, count] pairs, most first. */
export function countBy(xs, key) {
  const m = new Map();
  for (const x of xs) { const k = key(x) ?? "–"; m.set(k, (m.get(k) || 0) + 1); }
  return [...m].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
}
