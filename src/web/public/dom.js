// Small DOM helpers shared by the pages. Text that comes from runs, models or raters is only ever put in the page
// as text nodes (textContent / append(string)), never parsed as HTML.

/** el("div", { class: "x", text: "hello", onclick: fn }, child, "text", ...) */
export function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = String(v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) {
      if (typeof v !== "function") throw new Error(`el: ${k} must be a function`);
      e.addEventListener(k.slice(2), v);
    } else if (k === "value") e.value = v;
    else if (k === "checked") e.checked = Boolean(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** An SVG element (attributes only; text through textContent). */
export function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** A number for display: a few significant digits, "–" for none. */
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  if (x !== 0 && (Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3)) return x.toExponential(2);
  return Number.isInteger(x) ? String(x) : x.toFixed(digits);
}

export function signed(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return (x >= 0 ? "+" : "") + fmt(x, digits);
}

/** An API error as one line: error[E_CODE]: message (hint: …). */
export class ApiError extends Error {
  constructor(status, body) {
    const e = body?.error ? body.error : { code: `E_HTTP_${status}`, message: `the server answered ${status}` };
    super(`error[${e.code}]: ${e.message}${e.hint ? ` (hint: ${e.hint})` : ""}`);
    this.status = status;
    this.code = e.code;
  }
}

export async function api(url, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { Accept: "application/json", ...(options.headers || {}) } };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(options.json);
    init.headers["Content-Type"] = "application/json";
    delete init.json;
  }
  const res = await fetch(url, init);
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}
