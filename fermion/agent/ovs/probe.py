"""fermion trace --probe on an Open vSwitch host: the planner's own plan, computed against OVS as it is and not
applied, says what the next full pass would change; the probe keeps what concerns one port: its tap on br-int
with its network's local VLAN, the bridges, patches and tunnel ports its network uses, and the network's flows
(br-int from patch-tun/int-br-X, br-tun's tunnel, flood, L2-population and ARP-responder flows, br-<physnet>'s
VLAN translation, DVR) for "port <id>"; the port's OpenFlow firewall flows (its tap's number in reg5 or
in_port, its MACs on its network in table 60, the conjunctions of its rules) for "filters <id>".

Wanted flows are the planner's text; extra ones are known to the planner by cookie only, so their text is read
back from OVS (OpenFlow 1.5 rendering, which is turned back into the planner's tokens to tell whose they are)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache

from fermion.agent.ovs import firewall as fw
from fermion.agent.ovs.planner import INT, TUN, TUN_TABLE, OvsConfig, local_vlans, patch_names, plan, tunnel_port
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import L2Network, L2Port, L2View, ProbeResult

FIREWALL_TABLES = frozenset({fw.TRANSIENT, fw.EGRESS, fw.EGRESS_SPOOF, fw.EGRESS_RULES, fw.INGRESS,
                             fw.INGRESS_RULES})
Dump = Callable[[str], str]  # bridge -> ovs-ofctl --no-stats --no-names dump-flows of our cookies


def probe(view: L2View, observed: o.OvsState, cfg: OvsConfig, ports: Iterable[str], filters: Iterable[str],
          dump: Dump) -> dict[str, ProbeResult]:
    """One plan for the host (what the next full pass would do), restricted to each probed port; each bridge
    with extra flows read back once."""
    ops = plan(view, observed, cfg).ops
    read = cache(dump)
    out = {f"port {pid}": probe_port(view, observed, cfg, ops, pid, read) for pid in ports}
    return out | {f"filters {pid}": probe_filters(view, observed, ops, pid, read) for pid in filters}


def probe_port(view: L2View, observed: o.OvsState, cfg: OvsConfig, ops: list[o.Op], port_id: str,
               dump: Dump) -> ProbeResult:
    port, net = _find(view, port_id)
    if port is None:
        return ProbeResult(missing=[f"port {port_id} in this host's view (bound elsewhere, or deleted)"])
    tap = naming.tap(port.id)
    lv = local_vlans(view, observed)[port.network_id]
    names = {tap, f"tpi-{port.id[:11]}", f"tpt-{port.id[:11]}"}
    bridges = {INT}
    checked = [f"{tap} on {INT} (local VLAN {lv})"]
    if net is not None:
        seg = net.segment
        physical = cfg.bridge_mappings.get(seg.physical_network or "") if seg.network_type in ("flat", "vlan") \
            else None
        if physical is not None:
            bridges.add(physical)
            names.update(patch_names(physical))
            checked.append(f"{physical}: {seg.network_type} {seg.segmentation_id or ''} <-> local VLAN {lv}".strip())
        elif seg.network_type in TUN_TABLE and seg.network_type in cfg.tunnel_types:
            bridges.add(TUN)
            names.update({"patch-tun", "patch-int", *(tunnel_port(seg.network_type, v) for v in net.vteps)})
            checked.append(f"{TUN}: {seg.network_type} id {seg.segmentation_id}, {len(net.vteps)} tunnels, "
                           f"{len(net.remote_ports)} unicast and "
                           f"{sum(len(r.ips) for r in net.remote_ports)} ARP responder entries")
    mine = _network_tokens(net, lv, cfg)
    missing: list[str] = [] if tap in observed.links else [f"{tap} (the instance's device)"]
    extra: list[str] = []
    for op in ops:
        if isinstance(op, o.AddBridge) and op.name in bridges:
            missing.append(f"bridge {op.name}")
        elif isinstance(op, o.AddPort) and op.name in names:
            missing.append(_port_text(op))
        elif isinstance(op, o.DelPort) and op.name in names:
            extra.append(f"port {op.name}")
        elif isinstance(op, o.SetLocalVlans) and any(n == port.network_id for n, _ in op.vlans):
            missing.append(f"local VLAN {lv} of network {port.network_id} in {INT}'s external_ids")
    flows = _flow_drift(ops, observed, dump, lambda b, f: not _firewall(f) and _tokens(f) & mine.get(b, set()))
    return ProbeResult(checked=checked, missing=missing + flows[0], extra=extra + flows[1])


def probe_filters(view: L2View, observed: o.OvsState, ops: list[o.Op], port_id: str, dump: Dump) -> ProbeResult:
    if view.firewall is None:
        return ProbeResult(missing=["the firewall view"])
    port, _ = _find(view, port_id)
    tap = naming.tap(port_id)
    number = observed.ofports.get(tap)
    if port is None or number is None:
        return ProbeResult(missing=[f"{tap} on {INT} (its firewall flows name its OpenFlow number)"])
    lv = local_vlans(view, observed)[port.network_id]
    macs = {port.mac.lower(), *((pair[1] or port.mac).lower() for p in view.firewall.ports if p.id == port_id
                                for pair in p.allowed_pairs if len(pair) > 1)}
    own = {f"reg5={number}", f"in_port={number}", f"output:{number}"}
    wanted = [f for op in ops if isinstance(op, o.AddFlows) and op.bridge == INT for f in op.flows]
    # the conjunctions of its rules: their ids are in its own flows (wanted, or present: not in the plan)
    conj = {m for f in wanted if _tokens(f) & own for m in re.findall(r"conjunction\((\d+),", f)}
    conj |= set(re.findall(r"conjunction\((\d+),1/", " ".join(
        _normal(line) for line in _dump_lines(dump, INT) if _tokens(_normal(line)) & own)))

    def ours(bridge: str, flow: str) -> bool:
        if bridge != INT or not _firewall(flow):
            return False
        tokens = _tokens(flow)
        if tokens & own or (f"reg6={lv}" in tokens and tokens & {f"dl_dst={m}" for m in macs}):
            return True
        return any(f"conj_id={c}" in tokens or f"conjunction({c}," in flow for c in conj)

    missing, extra = _flow_drift(ops, observed, dump, ours)
    checked = [f"firewall flows of {tap} (OpenFlow port {number}, zone {lv}) and {len(conj)} conjunctions on {INT}"]
    return ProbeResult(checked=checked, missing=missing, extra=extra)


def dumper(client: o.Client) -> Dump:
    """Our flows on a bridge as OVS shows them (port numbers, not names: the firewall's flows use numbers)."""
    return lambda bridge: client.ofctl("--no-stats", "--no-names", "dump-flows", bridge,
                                       f"cookie={o.COOKIE_BASE:#x}/{o.COOKIE_MASK:#x}")


def _find(view: L2View, port_id: str) -> tuple[L2Port | None, L2Network | None]:
    port = next((x for x in view.ports if x.id == port_id), None)
    net = next((n for n in view.networks if port is not None and n.id == port.network_id), None)
    return port, net


def _port_text(op: o.AddPort) -> str:
    tag = f", tag {op.port.tag}" if op.port.tag is not None else ""
    kind = f", {op.port.type}" if op.port.type else ""
    options = "".join(f", {k}={v}" for k, v in op.port.options)
    return f"port {op.name} on {op.port.bridge}{tag}{kind}{options}"


def _network_tokens(net: L2Network | None, lv: int, cfg: OvsConfig) -> dict[str, set[str]]:
    """bridge -> the flow tokens that name the network there (its local VLAN, tunnel id, provider VLAN)."""
    if net is None:
        return {}
    seg = net.segment
    local = {f"dl_vlan={lv}", f"mod_vlan_vid:{lv}"}
    out = {INT: set(local)}
    if seg.network_type in TUN_TABLE and seg.segmentation_id is not None:
        out[TUN] = local | {f"tun_id={seg.segmentation_id:#x}", f"set_tunnel:{seg.segmentation_id:#x}"}
    physical = cfg.bridge_mappings.get(seg.physical_network or "")
    if physical is not None and seg.network_type == "vlan":
        out[physical] = {f"dl_vlan={lv}", f"dl_vlan={seg.segmentation_id}", f"mod_vlan_vid:{seg.segmentation_id}"}
    elif physical is not None and seg.network_type == "flat":
        out[physical] = {f"dl_vlan={lv}", "vlan_tci=0x0000/0x1fff"}
    return out


def _flow_drift(ops: Iterable[o.Op], observed: o.OvsState, dump: Dump,
                ours: Callable[[str, str], object]) -> tuple[list[str], list[str]]:
    """(missing, extra) flows of the plan that ours(bridge, flow text) keeps; an extra flow's text is read back."""
    missing, extra = [], []
    for op in ops:
        if isinstance(op, o.AddFlows):
            missing += [f"flow on {op.bridge}: {f}" for f in op.flows if ours(op.bridge, f)]
        elif isinstance(op, o.DelFlows):
            gone = set(op.cookies)
            for line in _dump_lines(dump, op.bridge):
                found = re.match(r"\s*cookie=(0x[0-9a-f]+),\s*(.*)", line)
                if found and int(found.group(1), 16) in gone and ours(op.bridge, _normal(line)):
                    extra.append(f"flow on {op.bridge}: {found.group(2).strip()}")
    return missing, extra


def _dump_lines(dump: Dump, bridge: str) -> list[str]:
    return [line for line in dump(bridge).splitlines() if "cookie=" in line]


def _firewall(flow: str) -> bool:
    """A flow of the firewall's tables, or its table-0 flow for a tap (priority 100)."""
    table = re.match(r"table=(\d+),priority=(\d+)", flow)
    return table is not None and (int(table.group(1)) in FIREWALL_TABLES or
                                  (table.group(1), table.group(2)) == ("0", "100"))


def _tokens(flow: str) -> set[str]:
    return set(flow.replace("actions=", "").split(","))


_VLAN_VID = re.compile(r"push_vlan:0x8100,set_field:(\d+)->vlan_vid")
_SET_VID = re.compile(r"set_field:(\d+)->vlan_vid")
_HEX_REG = re.compile(r"(reg\d)=0x([0-9a-f]+)")
_HEX_SET = re.compile(r"set_field:0x([0-9a-f]+)->(reg\d)")


def _normal(line: str) -> str:
    """An OVS dump line (OpenFlow 1.5, no names) in the planner's spelling, as far as the probe's tokens go."""
    body = re.sub(r"^\s*cookie=0x[0-9a-f]+,\s*", "", line.strip())
    table = re.match(r"table=(\d+),\s*", body)
    body = f"table={table.group(1) if table else 0}," + (body[table.end():] if table else body)
    body = body.replace(" actions=", ",actions=").replace("pop_vlan", "strip_vlan")
    body = _VLAN_VID.sub(lambda m: f"mod_vlan_vid:{int(m.group(1)) - 4096}", body)
    body = _SET_VID.sub(lambda m: f"mod_vlan_vid:{int(m.group(1)) - 4096}", body)
    body = re.sub(r"set_field:(0x[0-9a-f]+)->tun_id", r"set_tunnel:\1", body)
    body = _HEX_REG.sub(lambda m: f"{m.group(1)}={int(m.group(2), 16)}", body)
    return _HEX_SET.sub(lambda m: f"set_field:{int(m.group(1), 16)}->{m.group(2)}", body)
