// Talking to the server: the session (who the console acts as), the API, and the live event stream.

const KEY = "fermion-console-session";

export const session = {
  current: null, // {auth: "noauth"|"keystone", project_id, roles, admin, token?, user?}
  generation: 0, // one more at each log-out: answers to requests made before it are not shown
  load() {
    try { this.current = JSON.parse(sessionStorage.getItem(KEY)); } catch { this.current = null; }
    return this.current;
  },
  save(s) { this.current = s; sessionStorage.setItem(KEY, JSON.stringify(s)); },
  clear() { this.current = null; this.generation += 1; sessionStorage.removeItem(KEY); },
  // the headers the API takes: noauth's X-Project-Id/X-Roles, or Keystone's X-Auth-Token
  headers() {
    const s = this.current;
    if (!s) return {};
    if (s.auth === "keystone") return { "X-Auth-Token": s.token };
    return { "X-Project-Id": s.project_id, "X-Roles": s.roles.join(",") };
  },
};

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// The answer to a request made under an identity that has logged out since: dropped, never drawn.
export class Stale extends Error {}

function messageOf(status, body) {
  if (body && body.NeutronError) return body.NeutronError.message;
  if (body && body.error) return body.error.message;
  return `HTTP ${status}`;
}

export async function api(method, path, body, headers) {
  const init = { method, headers: { ...session.headers(), ...(headers || {}) } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const generation = session.generation;
  const r = await fetch(path, init);
  const text = await r.text();
  if (generation !== session.generation) throw new Stale("answered after a log-out");
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!r.ok) throw new ApiError(r.status, messageOf(r.status, data));
  return data;
}

// GET a collection; null when the caller may not list it (e.g. agents for a non-admin)
export async function list(collection, query) {
  try {
    const data = await api("GET", `/v2.0/${collection}${query ? "?" + query : ""}`);
    return data[collection.split("/").pop().replace(/-/g, "_")] || [];
  } catch (err) {
    if (err.status === 403 || err.status === 404) return null;
    throw err;
  }
}

// The event stream (GET /ui/events) read with fetch, which can send the API's headers (EventSource cannot).
// Calls onState(true|false) as it connects and drops, onChange(changes) for each batch; reconnects forever.
export function listen(onChange, onState) {
  let stopped = false;
  let controller = null;
  async function once() {
    controller = new AbortController();
    const r = await fetch("/ui/events", { headers: session.headers(), signal: controller.signal, cache: "no-store" });
    if (!r.ok) throw new ApiError(r.status, `event stream: HTTP ${r.status}`);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (event === "hello") onState(true);
        else if (event === "change") onChange(JSON.parse(data.join("\n")));
      }
    }
  }
  (async () => {
    while (!stopped) {
      try { await once(); } catch (err) { if (stopped) return; }
      onState(false);
      if (!stopped) await new Promise((ok) => setTimeout(ok, 1000));
    }
  })();
  return () => { stopped = true; if (controller) controller.abort(); };
}

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
