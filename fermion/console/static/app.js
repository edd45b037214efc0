// The console: log-in, the live topology and what can be done from it, security groups, agents and quotas.

import { api, ApiError, esc, list, listen, session, Stale } from "./api.js";
import { draw, mark, Viewport } from "./topology.js";

const $ = (sel) => document.querySelector(sel);
const L2_TYPES = new Set(["Linux bridge agent", "Open vSwitch agent"]);
const ROUTER_IF = new Set(["network:router_interface", "network:router_interface_distributed",
  "network:ha_router_replicated_interface"]);
const FALLBACK_REFRESH = 20000; // ms: a full reload now and then, for changes another server process made

const state = {
  config: null, data: null, view: null, expanded: new Set(), selected: null, path: null, trace: null,
  renders: 0, drawnAt: null, live: false, everLive: false, sg: null, quotaProject: null, stop: null,
};
let viewport = null;
let timer = null;

// ------------------------------------------------------------------ small helpers
function toast(text, bad) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "show" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, bad ? 6000 : 2500);
}

function failed(err) {
  if (err instanceof Stale) return; // the last identity's answer, after its log-out: nothing of it is shown
  if (err instanceof ApiError && err.status === 401) { logout("Your session has ended: log in again."); return; }
  toast(err.message || String(err), true);
}

function stateOf(o) {
  if (o.admin_state_up === false) return "admin-down";
  return String(o.status || "active").toLowerCase().replace(/_/g, "-");
}

function ago(ts) {
  if (!ts) return "";
  const t = Date.parse(ts.replace(" ", "T") + (/[zZ+]/.test(ts.slice(10)) ? "" : "Z"));
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  return s < 120 ? `${s} s ago` : s < 7200 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}

function dl(pairs) {
  return "<dl>" + pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("") + "</dl>";
}

function button(action, label, attrs, danger) {
  const extra = Object.entries(attrs || {}).map(([k, v]) => ` data-${k}="${esc(v)}"`).join("");
  return `<button type="button" data-action="${action}"${extra}${danger ? ' class="danger"' : ""}>${esc(label)}</button>`;
}

// A form in the dialog; `submit(values)` runs on OK and may throw (the message shows, the dialog stays).
function ask(title, fields, submit, okLabel) {
  const dialog = $("#dialog");
  $("#dialog-title").textContent = title;
  $("#dialog-error").textContent = "";
  $("#dialog-ok").textContent = okLabel || "OK";
  $("#dialog-fields").innerHTML = fields.map((f) => {
    const req = f.required ? " required" : "";
    if (f.type === "select") {
      return `<label>${esc(f.label)}<select name="${f.name}"${req}>` + f.options.map(([v, l]) =>
        `<option value="${esc(v)}"${v === f.value ? " selected" : ""}>${esc(l)}</option>`).join("") + `</select></label>`;
    }
    if (f.type === "check") {
      return `<label class="check"><input type="checkbox" name="${f.name}"${f.value ? " checked" : ""}>${esc(f.label)}</label>`;
    }
    if (f.type === "note") return `<p class="hint">${esc(f.label)}</p>`;
    return `<label>${esc(f.label)}<input name="${f.name}" type="${f.type || "text"}" value="${esc(f.value ?? "")}"` +
      ` placeholder="${esc(f.placeholder || "")}"${req} autocomplete="off"></label>`;
  }).join("");
  return new Promise((resolve) => {
    const form = $("#dialog-form");
    const onSubmit = async (e) => {
      e.preventDefault();
      if (e.submitter && e.submitter.value === "cancel") { done(false); return; }
      if (!form.reportValidity()) return;
      const values = {};
      for (const f of fields) {
        const el = form.elements[f.name];
        if (!el) continue;
        values[f.name] = f.type === "check" ? el.checked : el.value.trim();
      }
      $("#dialog-ok").disabled = true;
      try { await submit(values); done(true); } catch (err) {
        $("#dialog-error").textContent = err.message || String(err);
      } finally { $("#dialog-ok").disabled = false; }
    };
    const onCancel = () => done(false);
    function done(ok) {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      dialog.close();
      resolve(ok);
    }
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    const first = form.querySelector("#dialog-fields input, #dialog-fields select");
    if (first) first.focus();
  });
}

function confirmThen(text, work) { return ask(text, [], work, "Delete"); }

// ------------------------------------------------------------------ log-in
async function boot() {
  state.config = await (await fetch("config.json")).json();
  const q = new URLSearchParams(location.search);
  if (state.config.auth === "noauth" && q.get("project")) { // a bookmark, a benchmark or a test enters directly
    session.save({ auth: "noauth", project_id: q.get("project"), roles: (q.get("roles") || "member").split(",") });
    history.replaceState(null, "", location.pathname + location.hash);
  }
  if (!session.load()) { showLogin(); return; }
  await start();
}

async function showLogin(message) {
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("#nav").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  const noauth = state.config.auth === "noauth";
  $("#noauth-form").hidden = !noauth;
  $("#password-form").hidden = noauth;
  $("#token-form").hidden = noauth;
  if (noauth) {
    const form = $("#noauth-form");
    form.elements.project.value = state.config.default_project_id || "";
    // noauth trusts whoever asks: the projects that own something are offered
    const admin = { "X-Project-Id": state.config.default_project_id || "admin", "X-Roles": "admin" };
    try {
      const found = new Set(state.config.default_project_id ? [state.config.default_project_id] : []);
      for (const c of ["networks", "routers"]) {
        const data = await api("GET", `/v2.0/${c}?fields=project_id`, undefined, admin);
        for (const item of data[c]) if (item.project_id) found.add(item.project_id);
      }
      $("#projects").innerHTML = [...found].sort().map((p) => `<option value="${esc(p)}">`).join("");
    } catch { /* the list is a convenience */ }
  }
}

$("#noauth-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  session.save({ auth: "noauth", project_id: f.project.value.trim(), roles: [f.roles.value] });
  await start();
});

$("#password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  try {
    const r = await fetch("login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({
      username: f.username.value, password: f.password.value, project: f.project.value, domain: f.domain.value }) });
    const body = await r.json();
    if (!r.ok) throw new Error((body.error || body.NeutronError || {}).message || `HTTP ${r.status}`);
    session.save({ auth: "keystone", token: body.token, project_name: body.project_name });
    f.password.value = "";
    await start();
  } catch (err) { $("#login-error").textContent = err.message; }
});

$("#token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  session.save({ auth: "keystone", token: e.target.elements.token.value.trim() });
  e.target.elements.token.value = "";
  await start();
});

function logout(message) {
  if (state.stop) state.stop();
  state.stop = null;
  clearInterval(timer);
  session.clear();
  state.data = null;
  state.path = null;
  state.trace = null;
  state.selected = null;
  state.renders = 0;
  state.drawnAt = null;
  const svg = $("#topology");
  svg.innerHTML = ""; // nothing of the last identity's stays on the page
  svg.dataset.rendered = "0";
  $("#details").innerHTML = "";
  $("#trace-result").innerHTML = "";
  $("#trace-panel").hidden = true;
  showLogin(message);
}

$("#logout").addEventListener("click", () => logout());

async function start() {
  let who;
  try { who = await api("GET", "session"); } catch (err) {
    if (err instanceof Stale) return; // logged out meanwhile: the next log-in starts again
    session.clear();
    showLogin(err.message);
    return;
  }
  Object.assign(session.current, { project_id: who.project_id, roles: who.roles, admin: who.admin, user_id: who.user_id });
  session.save(session.current);
  $("#login").hidden = true;
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  const name = session.current.project_name ? `${session.current.project_name} (${who.project_id})` : who.project_id;
  $("#who").textContent = `project ${name} · ${who.roles.join(", ")}`;
  $("#who").dataset.project = who.project_id || "";
  state.stop = listen(onChanges, onLive);
  clearInterval(timer);
  timer = setInterval(() => reload(), FALLBACK_REFRESH);
  route();
}

function onLive(on) {
  const el = $("#live");
  el.className = "live " + (on ? "on" : "off");
  el.textContent = on ? "live" : "offline";
  el.dataset.live = on ? "1" : "0";
  if (on && state.everLive) reload(); // changes may have been missed while the stream was down
  state.everLive = state.everLive || on;
}

let pending = null;
function onChanges(changes) {
  // a burst of changes (a bulk create) makes one reload
  if (pending) return;
  pending = setTimeout(() => { pending = null; reload(); }, 120);
}

// ------------------------------------------------------------------ views
const VIEWS = { topology: loadTopology, "security-groups": loadSecurityGroups, agents: loadAgents, quotas: loadQuotas };

function route() {
  if (!session.current) return;
  const name = location.hash.slice(1) in VIEWS ? location.hash.slice(1) : "topology";
  state.view = name;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("on", a.dataset.view === name);
  reload();
}
window.addEventListener("hashchange", route);

let loading = null, again = false;
async function reload() {
  if (!session.current || !state.view) return;
  if (loading) { again = true; return; }
  loading = VIEWS[state.view]();
  try { await loading; } catch (err) { failed(err); } finally {
    loading = null;
    if (again) { again = false; reload(); }
  }
}

// ------------------------------------------------------------------ topology
async function loadTopology() {
  const admin = session.current.admin;
  const [networks, subnets, routers, ports, fips, agents, groups] = await Promise.all([
    list("networks"), list("subnets"), list("routers"), list("ports"), list("floatingips"),
    admin ? list("agents") : null, list("security-groups", "fields=id&fields=name")]);
  const ha = {};
  if (admin) {
    await Promise.all((routers || []).filter((r) => r.ha).map(async (r) => {
      try { ha[r.id] = (await api("GET", `/v2.0/routers/${r.id}/l3-agents`)).agents; } catch { /* gone meanwhile */ }
    }));
  }
  state.data = { networks: networks || [], subnets: subnets || [], routers: routers || [], ports: ports || [],
    fips: fips || [], agents, ha, groups: groups || [] };
  render();
}

function prepare(d) {
  const deadHosts = new Set();
  if (d.agents) {
    const l2 = new Map();
    for (const a of d.agents) if (L2_TYPES.has(a.agent_type)) l2.set(a.host, (l2.get(a.host) || false) || a.alive);
    for (const [host, alive] of l2) if (!alive) deadHosts.add(host);
  }
  const subnetsOf = new Map();
  for (const s of d.subnets) {
    if (!subnetsOf.has(s.network_id)) subnetsOf.set(s.network_id, []);
    subnetsOf.get(s.network_id).push(s);
  }
  const fipOf = new Map(d.fips.filter((f) => f.port_id).map((f) => [f.port_id, f]));
  const hidden = (n) => /^HA network tenant /.test(n.name || "");
  const shown = (p) => !p.device_owner || !p.device_owner.startsWith("network:") || p.device_owner === "network:dhcp";
  const portsOf = new Map();
  const interfaces = new Map();
  for (const p of d.ports) {
    if (ROUTER_IF.has(p.device_owner)) {
      if (!interfaces.has(p.device_id)) interfaces.set(p.device_id, []);
      for (const ip of p.fixed_ips) interfaces.get(p.device_id).push({ network_id: p.network_id, subnet_id: ip.subnet_id, ip: ip.ip_address, port_id: p.id });
      continue;
    }
    if (!shown(p)) continue;
    const host = p["binding:host_id"];
    let st = stateOf(p);
    if (host && deadHosts.has(host) && st !== "admin-down") st = "agent-dead";
    const fip = fipOf.get(p.id);
    const label = p.name || (p.device_owner === "network:dhcp" ? "dhcp" : (p.device_id || p.id).slice(0, 8));
    const item = { id: p.id, name: p.name, label, ips: p.fixed_ips.map((i) => i.ip_address), status: p.status, state: st,
      stateText: st === "agent-dead" ? `${p.status}, agent on ${host} dead` : (st === "admin-down" ? "admin down" : p.status),
      fip: fip ? { id: fip.id, ip: fip.floating_ip_address, status: fip.status, state: stateOf(fip) } : null };
    if (!portsOf.has(p.network_id)) portsOf.set(p.network_id, []);
    portsOf.get(p.network_id).push(item);
  }
  for (const list of portsOf.values()) list.sort((a, b) => a.label.localeCompare(b.label) || a.id.localeCompare(b.id));
  const net = (n) => ({ id: n.id, name: n.name, status: n.status, state: stateOf(n),
    subnets: (subnetsOf.get(n.id) || []).map((s) => ({ id: s.id, cidr: s.cidr, name: s.name })), ports: portsOf.get(n.id) || [] });
  const externals = d.networks.filter((n) => n["router:external"]).map((n) => ({ ...net(n),
    fipCount: d.fips.filter((f) => f.floating_network_id === n.id).length }));
  const networks = d.networks.filter((n) => !n["router:external"] && !hidden(n)).map(net);
  const routers = d.routers.map((r) => {
    const g = r.external_gateway_info;
    const instances = d.ha[r.id] || [];
    const active = instances.filter((a) => a.ha_state === "active").map((a) => a.host);
    let haText = null;
    if (r.ha && d.agents) haText = active.length ? `HA active on ${active.join(", ")}` : "HA: no active instance";
    return { id: r.id, name: r.name || "", status: r.status, state: stateOf(r), distributed: !!r.distributed,
      haMode: !!r.ha, ha: haText, gateway: g && g.network_id ? { network_id: g.network_id,
        ips: (g.external_fixed_ips || []).map((i) => i.ip_address) } : null, interfaces: interfaces.get(r.id) || [] };
  });
  return { externals, networks, routers, empty: !externals.length && !networks.length && !routers.length };
}

function render() {
  const svg = $("#topology");
  if (!viewport) viewport = new Viewport(svg);
  const started = performance.now();
  const l = draw(svg, prepare(state.data), state.expanded);
  viewport.update(l);
  mark(svg, state.path, state.selected);
  svg.getBoundingClientRect(); // the layout done: what the draw cost (bench/console.py reads it)
  svg.dataset.drawMs = (performance.now() - started).toFixed(1);
  state.renders += 1;
  if (state.drawnAt === null) { state.drawnAt = performance.now(); svg.dataset.drawnAt = state.drawnAt.toFixed(1); }
  svg.dataset.rendered = String(state.renders);
  fillTraceChoices();
  details();
}

// ------------------------------------------------------------------ details and actions
function find(kind, id) {
  const d = state.data;
  if (!d || !id) return null;
  const coll = { network: d.networks, router: d.routers, port: d.ports, floatingip: d.fips }[kind];
  return coll ? coll.find((x) => x.id === id) : null;
}

function nameOf(kind, id) {
  const x = find(kind, id);
  return x ? (x.name || id.slice(0, 8)) : (id || "").slice(0, 8);
}

function details() {
  const el = $("#details");
  const sel = state.selected;
  if (!sel) { el.innerHTML = '<p class="hint">Click a network, router or port for its details and actions. Scroll to zoom, drag to pan.</p>'; return; }
  const d = state.data;
  const item = find(sel.kind, sel.id);
  if (!item) { state.selected = null; details(); return; }
  if (sel.kind === "network") {
    const subnets = d.subnets.filter((s) => s.network_id === item.id);
    const ext = item["router:external"];
    let html = `<h2>${ext ? "External network" : "Network"} ${esc(item.name)}</h2>` + dl([["id", item.id], ["status", item.status],
      ["admin state", item.admin_state_up ? "up" : "down"], ["project", item.project_id], ["shared", item.shared ? "yes" : ""],
      ["MTU", item.mtu], ["type", item["provider:network_type"]]]);
    html += "<h3>Subnets</h3>" + (subnets.length ? "<table>" + subnets.map((s) => `<tr><td>${esc(s.cidr)}<br><small>${esc(s.name)}` +
      ` gw ${esc(s.gateway_ip || "none")}</small></td><td>${button("delete-subnet", "Delete", { id: s.id }, true)}</td></tr>`).join("") + "</table>" : '<p class="hint">none</p>');
    if (ext) {
      const fips = d.fips.filter((f) => f.floating_network_id === item.id);
      html += "<h3>Floating IPs</h3>" + (fips.length ? "<table>" + fips.map((f) => `<tr><td>${esc(f.floating_ip_address)}<br><small>` +
        `${f.port_id ? "→ " + esc(f.fixed_ip_address) + " (" + esc(nameOf("port", f.port_id)) + ")" : "free"} · ${esc(f.status)}</small></td>` +
        `<td>${button("delete-fip", "Delete", { id: f.id }, true)}</td></tr>`).join("") + "</table>" : '<p class="hint">none</p>');
    }
    html += `<div class="buttons">${button("add-subnet", "Add subnet", { id: item.id })}` +
      (ext ? button("new-fip", "New floating IP", { network: item.id }) : "") + button("delete-network", "Delete network", { id: item.id }, true) + "</div>";
    el.innerHTML = html;
  } else if (sel.kind === "router") {
    const ifs = d.ports.filter((p) => ROUTER_IF.has(p.device_owner) && p.device_id === item.id);
    const g = item.external_gateway_info;
    let html = `<h2>Router ${esc(item.name)}</h2>` + dl([["id", item.id], ["status", item.status], ["admin state", item.admin_state_up ? "up" : "down"],
      ["project", item.project_id], ["gateway", g && g.network_id ? `${nameOf("network", g.network_id)} ${(g.external_fixed_ips || []).map((i) => i.ip_address).join(" ")}` : "none"],
      ["SNAT", g && g.network_id ? (g.enable_snat ? "on" : "off") : ""], ["distributed", item.distributed ? "yes" : ""], ["HA", item.ha ? "yes" : ""]]);
    const inst = d.ha[item.id];
    if (inst && inst.length) html += "<h3>HA instances</h3>" + dl(inst.map((a) => [a.host, `${a.ha_state || "?"}${a.alive ? "" : " (agent dead)"}`]));
    html += "<h3>Interfaces</h3>" + (ifs.length ? "<table>" + ifs.flatMap((p) => p.fixed_ips.map((ip) => {
      const s = d.subnets.find((x) => x.id === ip.subnet_id);
      return `<tr><td>${esc(ip.ip_address)}<br><small>${esc(nameOf("network", p.network_id))} ${esc(s ? s.cidr : "")} · ${esc(p.status)}</small></td>` +
        `<td>${button("remove-if", "Remove", { router: item.id, subnet: ip.subnet_id }, true)}</td></tr>`;
    })).join("") + "</table>" : '<p class="hint">none</p>');
    html += `<div class="buttons">${button("add-if", "Add interface", { id: item.id })}` +
      (g && g.network_id ? button("clear-gw", "Clear gateway", { id: item.id }) : button("set-gw", "Set gateway", { id: item.id })) +
      button("delete-router", "Delete router", { id: item.id }, true) + "</div>";
    el.innerHTML = html;
  } else if (sel.kind === "port") {
    const fip = d.fips.find((f) => f.port_id === item.id);
    const groups = (item.security_groups || []).map((g) => (d.groups.find((x) => x.id === g) || { name: g.slice(0, 8) }).name).join(", ");
    let html = `<h2>Port ${esc(item.name || item.id.slice(0, 8))}</h2>` + dl([["id", item.id], ["status", item.status],
      ["admin state", item.admin_state_up ? "up" : "down"], ["network", nameOf("network", item.network_id)],
      ["addresses", item.fixed_ips.map((i) => i.ip_address).join(" ")], ["MAC", item.mac_address], ["host", item["binding:host_id"]],
      ["device", `${item.device_owner || ""} ${item.device_id || ""}`.trim()], ["security groups", groups],
      ["floating IP", fip ? `${fip.floating_ip_address} (${fip.status})` : ""], ["project", item.project_id]]);
    html += `<div class="buttons">${button("trace-from", "Trace from here", { id: item.id })}${button("trace-to", "Trace to here", { id: item.id })}` +
      (fip ? button("disassoc-fip", "Remove floating IP", { id: fip.id }) : button("assoc-fip", "Add floating IP", { id: item.id })) +
      button("delete-port", "Delete port", { id: item.id }, true) + "</div>";
    el.innerHTML = html;
  }
}

function select(kind, id) {
  state.selected = id ? { kind, id } : null;
  mark($("#topology"), state.path, id);
  details();
}

$("#topology").addEventListener("click", (e) => {
  if (viewport && viewport.dragged) { viewport.dragged = false; return; }
  const el = e.target.closest("[data-kind]");
  if (!el) { select(null, null); return; }
  const { kind, id } = el.dataset;
  if (kind === "toggle") {
    if (state.expanded.has(id)) state.expanded.delete(id); else state.expanded.add(id);
    render();
    return;
  }
  if (kind === "floatingip") { select("port", el.dataset.port); return; }
  if (kind === "port" && !$("#trace-panel").hidden) pick(id);
  select(kind, id);
});

const externals = () => state.data.networks.filter((n) => n["router:external"]);
const internalSubnets = () => state.data.subnets.filter((s) => {
  const n = find("network", s.network_id);
  return n && !n["router:external"];
});
const subnetLabel = (s) => `${nameOf("network", s.network_id)} ${s.cidr}`;

async function create(collection, member, body) {
  return (await api("POST", `/v2.0/${collection}`, { [member]: body }))[member];
}

const ACTIONS = {
  "new-network": () => {
    const fields = [{ name: "name", label: "Name", required: true }, { name: "cidr", label: "Subnet (CIDR, optional)", placeholder: "10.0.0.0/24" }];
    if (session.current.admin) fields.push({ name: "shared", label: "Shared", type: "check" }, { name: "external", label: "External", type: "check" });
    return ask("New network", fields, async (v) => {
      const body = { name: v.name };
      if (v.shared) body.shared = true;
      if (v.external) body["router:external"] = true;
      const net = await create("networks", "network", body);
      if (v.cidr) await create("subnets", "subnet", { network_id: net.id, cidr: v.cidr, ip_version: v.cidr.includes(":") ? 6 : 4, name: `${v.name}-subnet` });
      state.selected = { kind: "network", id: net.id };
      toast(`network ${v.name} created`);
    }, "Create");
  },
  "add-subnet": (b) => ask("New subnet", [{ name: "cidr", label: "CIDR", required: true, placeholder: "10.0.1.0/24" },
    { name: "name", label: "Name" }, { name: "gateway", label: "Gateway (empty: the first address)" },
    { name: "dhcp", label: "DHCP", type: "check", value: true }], async (v) => {
    const body = { network_id: b.id, cidr: v.cidr, ip_version: v.cidr.includes(":") ? 6 : 4, name: v.name, enable_dhcp: v.dhcp };
    if (v.gateway) body.gateway_ip = v.gateway;
    await create("subnets", "subnet", body);
  }, "Create"),
  "delete-subnet": (b) => confirmThen(`Delete subnet ${b.id.slice(0, 8)}?`, () => api("DELETE", `/v2.0/subnets/${b.id}`)),
  "delete-network": (b) => confirmThen(`Delete network ${nameOf("network", b.id)}?`, async () => {
    await api("DELETE", `/v2.0/networks/${b.id}`);
    state.selected = null;
  }),
  "new-router": () => ask("New router", [{ name: "name", label: "Name", required: true },
    { name: "gateway", label: "External gateway", type: "select", options: [["", "none"], ...externals().map((n) => [n.id, n.name])] },
    { name: "subnet", label: "Interface on subnet", type: "select", options: [["", "none"], ...internalSubnets().map((s) => [s.id, subnetLabel(s)])] }],
  async (v) => {
    const body = { name: v.name };
    if (v.gateway) body.external_gateway_info = { network_id: v.gateway };
    const r = await create("routers", "router", body);
    if (v.subnet) await api("PUT", `/v2.0/routers/${r.id}/add_router_interface`, { subnet_id: v.subnet });
    state.selected = { kind: "router", id: r.id };
  }, "Create"),
  "add-if": (b) => ask("Add router interface", [{ name: "subnet", label: "Subnet", type: "select", required: true,
    options: internalSubnets().map((s) => [s.id, subnetLabel(s)]) }],
  (v) => api("PUT", `/v2.0/routers/${b.id}/add_router_interface`, { subnet_id: v.subnet }), "Add"),
  "remove-if": (b) => confirmThen("Remove this interface?", () => api("PUT", `/v2.0/routers/${b.router}/remove_router_interface`, { subnet_id: b.subnet })),
  "set-gw": (b) => ask("Set the router's gateway", [{ name: "network", label: "External network", type: "select", required: true,
    options: externals().map((n) => [n.id, n.name]) }],
  (v) => api("PUT", `/v2.0/routers/${b.id}`, { router: { external_gateway_info: { network_id: v.network } } }), "Set"),
  "clear-gw": (b) => api("PUT", `/v2.0/routers/${b.id}`, { router: { external_gateway_info: {} } }),
  "delete-router": (b) => {
    const ifs = state.data.ports.filter((p) => ROUTER_IF.has(p.device_owner) && p.device_id === b.id);
    const note = ifs.length ? ` Its ${ifs.length} interface${ifs.length > 1 ? "s are" : " is"} removed first.` : "";
    return confirmThen(`Delete router ${nameOf("router", b.id)}?${note}`, async () => {
      for (const p of ifs) await api("PUT", `/v2.0/routers/${b.id}/remove_router_interface`, { port_id: p.id });
      await api("DELETE", `/v2.0/routers/${b.id}`);
      state.selected = null;
    });
  },
  "new-fip": (b) => {
    const taken = new Set(state.data.fips.map((f) => f.port_id).filter(Boolean));
    const ports = state.data.ports.filter((p) => !p.device_owner.startsWith("network:") && !taken.has(p.id) && p.fixed_ips.length);
    return ask("New floating IP", [
      { name: "network", label: "External network", type: "select", required: true, value: b.network, options: externals().map((n) => [n.id, n.name]) },
      { name: "port", label: "For port", type: "select", options: [["", "none (keep it free)"], ...ports.map((p) => [p.id, `${p.name || p.id.slice(0, 8)} ${p.fixed_ips[0].ip_address}`])] }],
    async (v) => {
      const body = { floating_network_id: v.network };
      if (v.port) body.port_id = v.port;
      await create("floatingips", "floatingip", body);
    }, "Create");
  },
  "assoc-fip": (b) => {
    const free = state.data.fips.filter((f) => !f.port_id);
    return ask("Add a floating IP", [{ name: "choice", label: "Floating IP", type: "select", required: true,
      options: [...free.map((f) => [`fip:${f.id}`, f.floating_ip_address]), ...externals().map((n) => [`net:${n.id}`, `a new one from ${n.name}`])] }],
    async (v) => {
      const [kind, id] = v.choice.split(":");
      if (kind === "fip") await api("PUT", `/v2.0/floatingips/${id}`, { floatingip: { port_id: b.id } });
      else await create("floatingips", "floatingip", { floating_network_id: id, port_id: b.id });
    }, "Add");
  },
  "disassoc-fip": (b) => api("PUT", `/v2.0/floatingips/${b.id}`, { floatingip: { port_id: null } }),
  "delete-fip": (b) => confirmThen("Delete this floating IP?", () => api("DELETE", `/v2.0/floatingips/${b.id}`)),
  "delete-port": (b) => confirmThen(`Delete port ${nameOf("port", b.id)}?`, async () => {
    await api("DELETE", `/v2.0/ports/${b.id}`);
    state.selected = null;
  }),
  trace: () => openTrace(),
  "close-trace": () => { $("#trace-panel").hidden = true; state.path = null; state.trace = null; $("#trace-result").innerHTML = ""; mark($("#topology"), null, state.selected?.id); },
  "trace-from": (b) => { openTrace(); $("#trace-form").elements.source.value = b.id; },
  "trace-to": (b) => { openTrace(); $("#trace-form").elements.destination.value = b.id; },
  "zoom-in": () => viewport && viewport.zoom(0.8),
  "zoom-out": () => viewport && viewport.zoom(1.25),
  fit: () => viewport && viewport.fit(),
  // security groups
  "new-sg": () => ask("New security group", [{ name: "name", label: "Name", required: true }, { name: "description", label: "Description" }],
    async (v) => { state.sg = (await create("security-groups", "security_group", v)).id; }, "Create"),
  "delete-sg": (b) => confirmThen("Delete this security group?", async () => { await api("DELETE", `/v2.0/security-groups/${b.id}`); state.sg = null; }),
  "add-rule": (b) => ask("New rule", [
    { name: "direction", label: "Direction", type: "select", options: [["ingress", "ingress"], ["egress", "egress"]], value: "ingress" },
    { name: "ethertype", label: "Ether type", type: "select", options: [["IPv4", "IPv4"], ["IPv6", "IPv6"]], value: "IPv4" },
    { name: "protocol", label: "Protocol", type: "select", options: [["", "any"], ["tcp", "tcp"], ["udp", "udp"], ["icmp", "icmp"], ["ipv6-icmp", "ipv6-icmp"]] },
    { name: "min", label: "Port from (tcp/udp) or ICMP type", type: "number" }, { name: "max", label: "Port to (tcp/udp) or ICMP code", type: "number" },
    { name: "prefix", label: "Remote prefix", placeholder: "0.0.0.0/0" },
    { name: "group", label: "Or remote group", type: "select", options: [["", "none"], ...(state.groups || []).map((g) => [g.id, g.name])] }],
  async (v) => {
    const body = { security_group_id: b.id, direction: v.direction, ethertype: v.ethertype };
    if (v.protocol) body.protocol = v.protocol;
    if (v.min !== "") body.port_range_min = Number(v.min);
    if (v.max !== "") body.port_range_max = Number(v.max);
    else if (v.min !== "" && (v.protocol === "tcp" || v.protocol === "udp")) body.port_range_max = Number(v.min);
    if (v.prefix) body.remote_ip_prefix = v.prefix;
    if (v.group) body.remote_group_id = v.group;
    await create("security-group-rules", "security_group_rule", body);
  }, "Add"),
  "delete-rule": (b) => api("DELETE", `/v2.0/security-group-rules/${b.id}`),
};

document.addEventListener("click", async (e) => {
  const el = e.target.closest("button[data-action]");
  if (!el || !ACTIONS[el.dataset.action]) return;
  try {
    const changed = await ACTIONS[el.dataset.action](el.dataset);
    if (changed !== false && changed !== undefined) reload(); // the event stream reloads too; this is at once
  } catch (err) { failed(err); }
});

// ------------------------------------------------------------------ trace
function openTrace() {
  $("#trace-panel").hidden = false;
  fillTraceChoices();
}

function fillTraceChoices() {
  const form = $("#trace-form");
  if (!state.data) return;
  const ports = state.data.ports.filter((p) => !p.device_owner.startsWith("network:") && p.fixed_ips.length);
  const options = [["external", "external (the internet)"], ...ports.map((p) =>
    [p.id, `${p.name || p.id.slice(0, 8)} ${p.fixed_ips[0].ip_address} (${nameOf("network", p.network_id)})`])]
    .map(([v, l]) => `<option value="${esc(v)}">${esc(l)}</option>`).join("");
  for (const name of ["source", "destination"]) {
    const sel = form.elements[name];
    const keep = sel.value;
    sel.innerHTML = `<option value="">choose…</option>` + options;
    sel.value = keep;
  }
}

function pick(portId) {
  const f = $("#trace-form").elements;
  if (!f.source.value || (f.source.value && f.destination.value)) { f.source.value = portId; f.destination.value = ""; }
  else f.destination.value = portId;
}

$("#trace-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const body = { source: f.source.value, destination: f.destination.value, protocol: f.protocol.value };
  if (body.protocol !== "icmp") body.port = Number(f.port.value);
  const out = $("#trace-result");
  out.innerHTML = '<p class="hint">tracing…</p>';
  try {
    const t = (await api("POST", "/v2.0/traces", { trace: body })).trace;
    state.trace = t;
    const ids = new Set([t.source.port_id, t.destination.port_id].filter(Boolean));
    const fail = new Set();
    t.hops.forEach((h, i) => {
      if (!h.resource || !h.resource.id) return;
      if (h.decision !== "pass") fail.add(h.resource.id); else ids.add(h.resource.id);
    });
    if (t.source.external || t.destination.external) for (const n of externals()) ids.add(n.id);
    state.path = { ids, fail };
    mark($("#topology"), state.path, state.selected?.id);
    out.innerHTML = `<div class="verdict ${esc(t.verdict)}" id="trace-verdict" data-verdict="${esc(t.verdict)}">${esc(t.verdict.replace("_", " "))}</div>` +
      `<p>${esc(t.reason || `${t.protocol}${t.port ? " port " + t.port : ""} from ${t.source.address} reaches ${t.destination.address}`)}</p>` +
      `<ol class="hops">` + t.hops.map((h) => `<li class="${esc(h.decision)}"><b>${esc(h.decision)}</b> ${esc(h.name)}: ${esc(h.reason)}</li>`).join("") + "</ol>";
  } catch (err) {
    state.path = null;
    out.innerHTML = `<p class="error">${esc(err.message)}</p>`;
  }
});

// ------------------------------------------------------------------ security groups
async function loadSecurityGroups() {
  const [groups, rules] = await Promise.all([list("security-groups"), list("security-group-rules")]);
  state.groups = groups || [];
  if (!state.sg || !state.groups.some((g) => g.id === state.sg)) state.sg = state.groups[0]?.id || null;
  $("#sg-list").innerHTML = state.groups.map((g) => `<li data-id="${esc(g.id)}" class="${g.id === state.sg ? "on" : ""}">` +
    `${esc(g.name)}<small>${esc(g.project_id)}</small></li>`).join("");
  const g = state.groups.find((x) => x.id === state.sg);
  if (!g) { $("#sg-detail").innerHTML = '<p class="hint">No security group.</p>'; return; }
  const mine = (rules || []).filter((r) => r.security_group_id === g.id);
  const groupName = (id) => (state.groups.find((x) => x.id === id) || { name: id.slice(0, 8) }).name;
  const ports = (r) => r.port_range_min == null ? "any" : (r.protocol && r.protocol.includes("icmp") ?
    `type ${r.port_range_min}${r.port_range_max != null ? " code " + r.port_range_max : ""}` :
    (r.port_range_min === r.port_range_max ? String(r.port_range_min) : `${r.port_range_min}-${r.port_range_max}`));
  $("#sg-detail").innerHTML = `<h2>${esc(g.name)}</h2>` + dl([["id", g.id], ["description", g.description], ["project", g.project_id],
    ["stateful", g.stateful === false ? "no" : "yes"]]) +
    `<table id="sg-rules"><tr><th>direction</th><th>ether type</th><th>protocol</th><th>ports</th><th>remote</th><th></th></tr>` +
    mine.map((r) => `<tr data-id="${esc(r.id)}"><td>${esc(r.direction)}</td><td>${esc(r.ethertype)}</td><td>${esc(r.protocol || "any")}</td>` +
      `<td>${esc(ports(r))}</td><td>${esc(r.remote_ip_prefix || (r.remote_group_id ? "group " + groupName(r.remote_group_id) : "") ||
        (r.remote_address_group_id ? "address group " + r.remote_address_group_id.slice(0, 8) : "any"))}</td>` +
      `<td>${button("delete-rule", "Delete", { id: r.id }, true)}</td></tr>`).join("") + "</table>" +
    `<div class="buttons">${button("add-rule", "Add rule", { id: g.id })}${button("delete-sg", "Delete group", { id: g.id }, true)}</div>`;
}

$("#sg-list").addEventListener("click", (e) => {
  const li = e.target.closest("li[data-id]");
  if (li) { state.sg = li.dataset.id; reload(); }
});

// ------------------------------------------------------------------ agents and hosts
async function loadAgents() {
  const body = $("#agents-body");
  const agents = await list("agents");
  if (agents === null) { body.innerHTML = '<p class="hint">Only administrators see the agents.</p>'; return; }
  const [routers, networks] = await Promise.all([list("routers", "fields=id&fields=name"), list("networks", "fields=id&fields=name")]);
  const names = new Map([...(routers || []), ...(networks || [])].map((x) => [x.id, x.name || x.id.slice(0, 8)]));
  const serves = {};
  await Promise.all(agents.map(async (a) => {
    const c = a.configurations || {};
    let what = [];
    if (a.agent_type === "L3 agent") {
      const rs = (await api("GET", `/v2.0/agents/${a.id}/l3-routers`)).routers;
      what.push(`${rs.length} router${rs.length === 1 ? "" : "s"}${rs.length ? ": " + rs.map((r) => names.get(r.id) || r.name).join(", ") : ""}`);
      if (c.agent_mode) what.push(`mode ${c.agent_mode}`);
    } else if (a.agent_type === "DHCP agent") {
      const ns = (await api("GET", `/v2.0/agents/${a.id}/dhcp-networks`)).networks;
      what.push(`${ns.length} network${ns.length === 1 ? "" : "s"}${ns.length ? ": " + ns.map((n) => names.get(n.id) || n.name).join(", ") : ""}`);
    } else {
      if (c.devices !== undefined) what.push(`${c.devices} device${c.devices === 1 ? "" : "s"}`);
      if (c.tunneling_ip) what.push(`tunnel ${c.tunneling_ip}`);
      const maps = c.interface_mappings || c.bridge_mappings;
      if (maps && Object.keys(maps).length) what.push(Object.entries(maps).map(([k, v]) => `${k}:${v}`).join(" "));
    }
    const syncs = c.last_full_sync_seconds === undefined ? [] : [`full sync ${c.last_full_sync_seconds} s`];
    serves[a.id] = { what: what.join(" · "), syncs: syncs.join(" · ") };
  }));
  const hosts = new Map();
  for (const a of agents) { if (!hosts.has(a.host)) hosts.set(a.host, []); hosts.get(a.host).push(a); }
  let html = '<table id="agents-table"><tr><th>agent</th><th>alive</th><th>last heartbeat</th><th>admin</th><th>zone</th><th>serves</th><th>sync</th></tr>';
  for (const [host, list] of [...hosts].sort()) {
    const dead = list.filter((a) => !a.alive).length;
    html += `<tr class="host" data-host="${esc(host)}"><th colspan="7">host ${esc(host)} · ${list.length} agent${list.length > 1 ? "s" : ""}` +
      ` · ${dead ? `<span class="badge dead">${dead} dead</span>` : '<span class="badge alive">all alive</span>'}</th></tr>`;
    for (const a of list) {
      html += `<tr data-id="${esc(a.id)}" data-alive="${a.alive}"><td>${esc(a.agent_type)}<br><small>${esc(a.binary)}</small></td>` +
        `<td><span class="badge ${a.alive ? "alive" : "dead"}">${a.alive ? "alive" : "dead"}</span></td>` +
        `<td>${esc(a.heartbeat_timestamp)}<br><small>${esc(ago(a.heartbeat_timestamp))}</small></td>` +
        `<td>${a.admin_state_up ? "up" : '<span class="badge disabled">down</span>'}</td><td>${esc(a.availability_zone || "")}</td>` +
        `<td>${esc(serves[a.id].what)}</td><td>${esc(serves[a.id].syncs)}</td></tr>`;
    }
  }
  body.innerHTML = agents.length ? html + "</table>" : '<p class="hint">No agent has reported yet.</p>';
}

// ------------------------------------------------------------------ quotas
async function loadQuotas() {
  const sel = $("#quota-project");
  const own = session.current.project_id;
  const projects = new Set([own]);
  if (session.current.admin) {
    const [overrides, networks] = await Promise.all([list("quotas"), list("networks", "fields=project_id")]);
    for (const q of overrides || []) projects.add(q.project_id);
    for (const n of networks || []) if (n.project_id) projects.add(n.project_id);
  }
  const chosen = state.quotaProject && projects.has(state.quotaProject) ? state.quotaProject : own;
  sel.innerHTML = [...projects].sort().map((p) => `<option value="${esc(p)}"${p === chosen ? " selected" : ""}>${esc(p)}</option>`).join("");
  const q = (await api("GET", `/v2.0/quotas/${encodeURIComponent(chosen)}/details`)).quota;
  $("#quotas-body").innerHTML = `<table id="quota-table"><tr><th>resource</th><th>used</th><th>reserved</th><th>limit</th><th></th></tr>` +
    Object.entries(q).sort().map(([k, v]) => {
      const unlimited = v.limit < 0;
      const share = unlimited || v.limit === 0 ? (v.limit === 0 && v.used ? 1 : 0) : Math.min(1, v.used / v.limit);
      return `<tr data-resource="${esc(k)}"><td>${esc(k.replace(/_/g, " "))}</td><td>${v.used}</td><td>${v.reserved}</td>` +
        `<td>${unlimited ? "unlimited" : v.limit}</td><td><div class="bar${share >= 1 ? " full" : ""}"><span data-share="${share.toFixed(2)}"></span></div></td></tr>`;
    }).join("") + "</table>";
  for (const span of document.querySelectorAll("#quota-table .bar > span")) span.style.width = `${Number(span.dataset.share) * 100}%`;
}

$("#quota-project").addEventListener("change", (e) => { state.quotaProject = e.target.value; reload(); });

// a page left (or put in the back/forward cache) gives its event stream's connection back at once: browsers
// allow six connections to one server, and a stream holds one
window.addEventListener("pagehide", () => { if (state.stop) state.stop(); state.stop = null; });
window.addEventListener("pageshow", (e) => {
  if (e.persisted && session.current && !state.stop) { state.stop = listen(onChanges, onLive); reload(); }
});

boot().catch(failed);
