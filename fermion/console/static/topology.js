// The topology drawing: a layered layout (external networks on top, then routers, then networks with their
// ports) written as SVG markup in one go, and a viewport that zooms and pans by changing the viewBox.

import { esc } from "./api.js";

const M = 20;              // margin
const EXT_H = 34;          // an external network's bar
const ROUTER_W = 170, ROUTER_H = 50, ROUTER_GAP = 24;
const COL_W = 220, COL_GAP = 40;
const CHIP_W = COL_W - 16, CHIP_H = 24, CHIP_FIP_H = 38, CHIP_GAP = 4;
const DOT = 11, DOT_STEP = 14, DOT_COLS = Math.floor((CHIP_W + DOT_STEP - DOT) / DOT_STEP);
export const LABEL_LIMIT = 12; // beyond this many ports a network shows them as coloured dots

function cut(text, n) { text = String(text ?? ""); return text.length > n ? text.slice(0, n - 1) + "…" : text; }

function portHeight(p) { return p.fip ? CHIP_FIP_H : CHIP_H; }

// positions for everything; the model is prepared by app.js (see prepare() there)
export function layout(model, expanded) {
  const ext = model.externals.map((n, i) => ({ ...n, y: M + i * (EXT_H + 12) }));
  const extBottom = ext.length ? M + ext.length * (EXT_H + 12) : M;
  const routerY = extBottom + (ext.length ? 56 : 0);
  const netY = routerY + (model.routers.length ? ROUTER_H + 80 : 0);

  // networks in the order routers reach them (by router name), then the unconnected ones
  const byId = new Map(model.networks.map((n) => [n.id, n]));
  const order = [];
  const placed = new Set();
  const routers = [...model.routers].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  for (const r of routers) {
    for (const i of r.interfaces) {
      if (byId.has(i.network_id) && !placed.has(i.network_id)) { placed.add(i.network_id); order.push(byId.get(i.network_id)); }
    }
  }
  for (const n of [...model.networks].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))) {
    if (!placed.has(n.id)) order.push(n);
  }
  const nets = order.map((n, i) => {
    const x = M + i * (COL_W + COL_GAP);
    const headH = 30 + 15 * Math.max(1, n.subnets.length);
    const dots = n.ports.length > LABEL_LIMIT && !expanded.has(n.id);
    let h = headH + 8;
    if (n.ports.length > LABEL_LIMIT) h += 22; // the summary line with its toggle
    if (dots) h += Math.ceil(n.ports.length / DOT_COLS) * DOT_STEP;
    else for (const p of n.ports) h += portHeight(p) + CHIP_GAP;
    return { ...n, x, y: netY, w: COL_W, headH, h: h + 6, dots };
  });
  const netAt = new Map(nets.map((n) => [n.id, n]));

  // routers above the middle of their networks, pushed right so that none overlap
  let rs = routers.map((r) => {
    const xs = r.interfaces.map((i) => netAt.get(i.network_id)).filter(Boolean).map((n) => n.x + n.w / 2);
    return { ...r, want: xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length - ROUTER_W / 2 : null };
  });
  let free = M;
  const lastNet = nets.length ? nets[nets.length - 1].x + COL_W + COL_GAP : M;
  rs = rs.map((r) => ({ ...r, want: r.want ?? Math.max(lastNet, free) }))
    .sort((a, b) => a.want - b.want)
    .map((r) => { const x = Math.max(r.want, free); free = x + ROUTER_W + ROUTER_GAP; return { ...r, x, y: routerY }; });

  const right = Math.max(600, free, ...nets.map((n) => n.x + n.w)) + M;
  const bottom = Math.max(netY + 40, ...nets.map((n) => n.y + n.h)) + M;
  return { ext: ext.map((e) => ({ ...e, x: M, w: right - 2 * M })), routers: rs, nets, width: right, height: bottom };
}

function statusBits(o) { return `data-status="${esc(o.status)}" data-state="${esc(o.state)}"`; }

function drawExt(e) {
  const fips = e.fipCount ? `${e.fipCount} floating IP${e.fipCount > 1 ? "s" : ""}` : "";
  return `<g class="ext" data-kind="network" data-id="${esc(e.id)}" data-external="true" ${statusBits(e)}>` +
    `<title>external network ${esc(e.name)}</title>` +
    `<rect class="body" x="${e.x}" y="${e.y}" width="${e.w}" height="${EXT_H}" rx="6"/>` +
    `<rect class="st-${e.state}" x="${e.x}" y="${e.y}" width="6" height="${EXT_H}" rx="2"/>` +
    `<text x="${e.x + 14}" y="${e.y + 15}"><tspan font-weight="600">${esc(e.name)}</tspan> (external)</text>` +
    `<text class="small" x="${e.x + 14}" y="${e.y + 28}">${esc([...e.subnets.map((s) => s.cidr), fips].filter(Boolean).join(" · "))}</text></g>`;
}

function drawRouter(r) {
  const tags = [r.distributed ? "DVR" : "", r.haMode ? "HA" : ""].filter(Boolean).join(" ");
  return `<g class="router${r.ha ? " ha" : ""}" data-kind="router" data-id="${esc(r.id)}" data-name="${esc(r.name)}" ${statusBits(r)}>` +
    `<title>router ${esc(r.name)}: ${esc(r.status)}</title>` +
    `<rect class="body" x="${r.x}" y="${r.y}" width="${ROUTER_W}" height="${ROUTER_H}" rx="8"/>` +
    `<rect class="st-${r.state}" x="${r.x}" y="${r.y}" width="6" height="${ROUTER_H}" rx="2"/>` +
    `<text x="${r.x + 14}" y="${r.y + 18}" font-weight="600">${esc(cut(r.name || r.id.slice(0, 8), 18))}</text>` +
    `<text class="small" x="${r.x + ROUTER_W - 8}" y="${r.y + 18}" text-anchor="end">${esc(tags)}</text>` +
    `<text class="small" x="${r.x + 14}" y="${r.y + 32}">${esc(r.status)}${r.gateway ? " · " + esc(r.gateway.ips.join(" ")) : ""}</text>` +
    (r.ha ? `<text class="ha" x="${r.x + 14}" y="${r.y + 45}">${esc(cut(r.ha, 28))}</text>` : "") + `</g>`;
}

function drawPort(p, x, y) {
  const h = portHeight(p);
  let out = `<g class="chip" data-kind="port" data-id="${esc(p.id)}" data-name="${esc(p.name)}" ${statusBits(p)}>` +
    `<title>port ${esc(p.label)} ${esc(p.ips.join(" "))}: ${esc(p.stateText)}</title>` +
    `<rect class="body" x="${x}" y="${y}" width="${CHIP_W}" height="${h}" rx="4"/>` +
    `<circle class="st-${p.state}" cx="${x + 10}" cy="${y + 12}" r="5"/>` +
    `<text x="${x + 20}" y="${y + 16}">${esc(cut(p.label, 16))}</text>` +
    `<text class="small" x="${x + CHIP_W - 6}" y="${y + 16}" text-anchor="end">${esc(cut(p.ips[0] || "", 20))}</text>`;
  if (p.fip) {
    out += `<g class="fip" data-kind="floatingip" data-id="${esc(p.fip.id)}" data-port="${esc(p.id)}" ${statusBits(p.fip)}>` +
      `<text x="${x + 20}" y="${y + 31}">⇄ ${esc(p.fip.ip)} (${esc(p.fip.status)})</text></g>`;
  }
  return out + `</g>`;
}

function drawNet(n) {
  let out = `<g class="net" data-kind="network" data-id="${esc(n.id)}" data-name="${esc(n.name)}" ${statusBits(n)}>` +
    `<title>network ${esc(n.name)}: ${esc(n.status)}</title>` +
    `<rect class="body" x="${n.x}" y="${n.y}" width="${n.w}" height="${n.h}" rx="6"/>` +
    `<rect class="head" x="${n.x + 1}" y="${n.y + 1}" width="${n.w - 2}" height="${n.headH - 2}" rx="5"/>` +
    `<rect class="st-${n.state}" x="${n.x}" y="${n.y}" width="6" height="${n.headH}" rx="2"/>` +
    `<text x="${n.x + 14}" y="${n.y + 18}" font-weight="600">${esc(cut(n.name || n.id.slice(0, 8), 24))}</text>` +
    `<text class="small" x="${n.x + n.w - 8}" y="${n.y + 18}" text-anchor="end">${n.ports.length} port${n.ports.length === 1 ? "" : "s"}</text>`;
  n.subnets.forEach((s, i) => {
    out += `<text class="small" x="${n.x + 14}" y="${n.y + 33 + 15 * i}">${esc(s.cidr)}${s.name ? " " + esc(cut(s.name, 16)) : ""}</text>`;
  });
  if (!n.subnets.length) out += `<text class="small" x="${n.x + 14}" y="${n.y + 33}">no subnet</text>`;
  out += `</g>`;
  let y = n.y + n.headH + 8;
  const x = n.x + 8;
  if (n.ports.length > LABEL_LIMIT) {
    const counts = {};
    for (const p of n.ports) counts[p.state] = (counts[p.state] || 0) + 1;
    const summary = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(" · ");
    out += `<g class="more" data-kind="toggle" data-id="${esc(n.id)}"><text class="small" x="${x}" y="${y + 12}">${esc(summary)}</text>` +
      `<text x="${x + CHIP_W}" y="${y + 12}" text-anchor="end">${n.dots ? "show labels" : "show as dots"}</text></g>`;
    y += 22;
  }
  if (n.dots) {
    n.ports.forEach((p, i) => {
      const dx = x + (i % DOT_COLS) * DOT_STEP, dy = y + Math.floor(i / DOT_COLS) * DOT_STEP;
      out += `<rect class="dot st-${p.state}" data-kind="port" data-id="${esc(p.id)}" data-name="${esc(p.name)}" ${statusBits(p)} ` +
        `x="${dx}" y="${dy}" width="${DOT}" height="${DOT}" rx="2"><title>${esc(p.label)} ${esc(p.ips.join(" "))}${p.fip ? " ⇄ " + esc(p.fip.ip) : ""}: ${esc(p.stateText)}</title></rect>`;
    });
  } else {
    for (const p of n.ports) { out += drawPort(p, x, y); y += portHeight(p) + CHIP_GAP; }
  }
  return out;
}

function links(l) {
  const ext = new Map(l.ext.map((e) => [e.id, e]));
  const nets = new Map(l.nets.map((n) => [n.id, n]));
  let out = "";
  for (const r of l.routers) {
    const top = r.x + ROUTER_W / 2;
    if (r.gateway && ext.has(r.gateway.network_id)) {
      const e = ext.get(r.gateway.network_id);
      out += `<path class="link gw" data-a="${esc(r.id)}" data-b="${esc(e.id)}" d="M${top},${r.y} V${e.y + EXT_H}"/>`;
    }
    const seen = new Set();
    for (const i of r.interfaces) {
      const n = nets.get(i.network_id);
      if (!n || seen.has(n.id)) continue;
      seen.add(n.id);
      const nx = n.x + n.w / 2, ry = r.y + ROUTER_H, mid = (ry + n.y) / 2;
      out += `<path class="link" data-a="${esc(r.id)}" data-b="${esc(n.id)}" d="M${top},${ry} C${top},${mid} ${nx},${mid} ${nx},${n.y}"/>`;
      out += `<text class="small" x="${nx + 4}" y="${n.y - 5}">${esc(i.ip)}</text>`;
    }
  }
  return out;
}

// draw the model into the svg; returns the layout (its width and height)
export function draw(svg, model, expanded) {
  const l = layout(model, expanded);
  svg.innerHTML = links(l) + l.ext.map(drawExt).join("") + l.routers.map(drawRouter).join("") + l.nets.map(drawNet).join("") +
    (model.empty ? `<text x="${M}" y="${M + 20}" class="small">Nothing here yet: create a network.</text>` : "");
  return l;
}

// mark a trace's path: the elements of the resources it crossed, the links between two of them, the failed one
export function mark(svg, path, selected) {
  for (const el of svg.querySelectorAll(".on-path, .path-fail, .selected")) el.classList.remove("on-path", "path-fail", "selected");
  if (selected) for (const el of svg.querySelectorAll(`[data-id="${CSS.escape(selected)}"]`)) el.classList.add("selected");
  if (!path) return;
  for (const el of svg.querySelectorAll("[data-id]")) {
    const id = el.dataset.id;
    if (el.dataset.kind === "toggle") continue;
    if (path.fail.has(id)) el.classList.add("path-fail");
    else if (path.ids.has(id)) el.classList.add("on-path");
  }
  for (const el of svg.querySelectorAll("path.link")) {
    const on = (id) => path.ids.has(id) || path.fail.has(id);
    if (on(el.dataset.a) && on(el.dataset.b)) el.classList.add("on-path");
  }
}

// zoom (wheel, buttons) and pan (drag) by changing the viewBox
export class Viewport {
  constructor(svg) {
    this.svg = svg;
    this.box = null;
    this.content = { width: 600, height: 400 };
    this.dragged = false;
    let start = null;
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(Math.exp(e.deltaY * 0.0015), e.clientX, e.clientY);
    }, { passive: false });
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      start = { x: e.clientX, y: e.clientY, box: { ...this.box } };
      this.dragged = false;
    });
    svg.addEventListener("pointermove", (e) => {
      if (!start) return;
      const dx = e.clientX - start.x, dy = e.clientY - start.y;
      if (!this.dragged && Math.hypot(dx, dy) < 4) return;
      if (!this.dragged) { this.dragged = true; svg.classList.add("dragging"); svg.setPointerCapture(e.pointerId); }
      const k = start.box.w / svg.clientWidth;
      this.set({ ...start.box, x: start.box.x - dx * k, y: start.box.y - dy * k });
    });
    const end = () => { start = null; svg.classList.remove("dragging"); };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    window.addEventListener("resize", () => { if (this.box) this.update(this.content); });
  }
  set(box) { this.box = box; this.svg.setAttribute("viewBox", `${box.x} ${box.y} ${box.w} ${box.h}`); }
  aspect() { return (this.svg.clientHeight || 600) / (this.svg.clientWidth || 800); }
  // the whole drawing in view, never magnified, and at most shrunk to a readable size when it is tall
  fit() {
    const { width, height } = this.content;
    const cw = this.svg.clientWidth || 800, ch = this.svg.clientHeight || 600;
    const scale = Math.min(1, cw / width, Math.max(ch / height, 0.4));
    const w = cw / scale, h = ch / scale;
    this.set({ x: Math.min(0, (width - w) / 2), y: 0, w, h });
  }
  update(content) {
    const first = this.box === null;
    this.content = content;
    if (first) this.fit();
    else this.set({ ...this.box, h: this.box.w * this.aspect() });
  }
  zoom(factor, clientX, clientY) {
    const r = this.svg.getBoundingClientRect();
    const fx = clientX === undefined ? 0.5 : (clientX - r.left) / r.width;
    const fy = clientY === undefined ? 0.5 : (clientY - r.top) / r.height;
    const b = this.box;
    const w = Math.min(Math.max(b.w * factor, 100), 40000), h = w * this.aspect();
    this.set({ x: b.x + (b.w - w) * fx, y: b.y + (b.h - h) * fy, w, h });
  }
}
