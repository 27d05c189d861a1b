// vr's dashboard: what every page shares. The API (REST under /api/v1, with the session's CSRF
// token), server-sent event streams closed when the page is left, and small DOM builders.
export const $ = (id) => document.getElementById(id);
export const session = { csrf: null, user: null, role: null };

/// A JSON request; a refusal throws an Error with the API's message.
export async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (session.csrf && method !== "GET") headers["x-csrf-token"] = session.csrf;
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  const r = await fetch(path, init);
  const text = await r.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

/// An element: el("button", { type: "button", onclick: f }, "text", child...).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export const time = (secs) => (secs ? new Date(secs * 1000).toLocaleString() : "-");
export const canDeploy = () => session.role === "deployer" || session.role === "admin";
export const isAdmin = () => session.role === "admin";

/// A table of `rows`; `columns` are [header, (row) => cell].
export function table(caption, columns, rows, rowAttrs = () => ({})) {
  return el(
    "table",
    {},
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, columns.map(([h]) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", rowAttrs(r), columns.map(([, f]) => el("td", {}, f(r)))))),
  );
}

/// A message line that shows an error (role=alert) or a note.
export function messageLine() {
  const p = el("p", { role: "alert", class: "message" });
  p.fail = (e) => {
    p.className = "message error";
    p.textContent = e.message || String(e);
  };
  p.note = (text) => {
    p.className = "message note";
    p.textContent = text;
  };
  return p;
}

// Streams and timers of the page shown; closed when another page is shown.
let leaving = [];
export function onLeave(f) {
  leaving.push(f);
}

/// Closes what the page shown opened (its streams and timers).
export function leave() {
  for (const f of leaving) f();
  leaving = [];
}

/// Follows a server-sent event stream until the page is left; `handlers` by event name.
export function follow(path, handlers) {
  const source = new EventSource(path);
  for (const [event, f] of Object.entries(handlers)) {
    source.addEventListener(event, (e) => f(e.data ? JSON.parse(e.data) : null, e));
  }
  onLeave(() => source.close());
  return source;
}


/// Appends each `line` event of the stream at `path` to `pre`, scrolled to the newest; the
/// stream is closed when the page is left (or by the caller, with what this returns).
export function followLines(pre, path) {
  return follow(path, {
    line: (l) => {
      pre.textContent += l.line + "\n";
      pre.scrollTop = pre.scrollHeight;
    },
  });
}
