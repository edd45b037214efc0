"""Functional core of the OVS agent: (desired L2 view, observed OVS state) -> ops. No I/O.

Bridges as Neutron's OVS agent builds them: br-int (instance taps as access ports tagged with their network's
host-local VLAN), br-tun (patch-tun/patch-int; table 0 classifies, 2 splits unicast from flood, 3/4/6 map GRE/
VXLAN/Geneve tunnel IDs to local VLANs, 20 unicast to the host holding a MAC (L2 population), 21 ARP
responder, 22 floods to the hosts with ports on the network only), and br-<physnet> per bridge mapping
(int-br-X/phy-br-X patches, local VLAN <-> provider VLAN, or untagged for flat). Frames from br-int pass br-tun's
table 1 first, where distributed routers' copies get the host's DVR MAC (agent/ovs/dvr.py; on br-<physnet> at
higher priorities of table 0). Tunnel ports are named
<type>-<remote IP in hex>. Flows are compared by cookie (dataplane/ovs.py), so an unchanged view gives no op.

Security groups (the view's firewall) are flows on br-int too (agent/ovs/firewall.py): traffic from the taps,
patch-tun and int-br-X goes through table 60, where what is for a filtered port takes its ingress rules.
Every port we add asks for its OpenFlow number (the one it had, else the lowest free on its bridge), so the
firewall's flows name taps by number, are installed before the tap is plugged (no unfiltered first packet)
and stay right when a tap is made again. A port bound here whose tap has not come yet already has its number
and its firewall flows: when the tap comes, only its OVSDB port is left to add (one wait on ovs-vswitchd
instead of two, the larger part of a port's time to ACTIVE on a host with many ports)."""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field, replace

from fermion.agent.ovs import dvr
from fermion.agent.ovs import firewall as fw
from fermion.agent.secgroups import firewall_state
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import L2Network, L2Port, L2View

INT, TUN = "br-int", "br-tun"
DEAD_VLAN = 4095
TUN_TABLE = {"gre": 3, "vxlan": 4, "geneve": 6}
TUNNEL_TYPES = tuple(TUN_TABLE)


@dataclass(frozen=True)
class OvsConfig:
    local_ip: str | None = None
    bridge_mappings: dict[str, str] = field(default_factory=dict)  # physnet -> bridge
    tunnel_types: tuple[str, ...] = ()
    # the OVS interface type of instance taps: "" (AF_PACKET) or "afxdp-nonpmd" (AF_XDP, about 1.5 times the
    # throughput here but some 70 MiB of vswitchd memory and 0.1 s more per port: docs/ovs.md)
    tap_type: str = ""


@dataclass
class Plan:
    ops: list[o.Op] = field(default_factory=list)
    up: dict[str, int] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)


def tunnel_port(kind: str, remote_ip: str) -> str:
    return f"{kind}-{int(ipaddress.ip_address(remote_ip)):08x}"


def patch_names(bridge: str) -> tuple[str, str]:
    """(the br-int end, the physical bridge's end), as Neutron names them."""
    return f"int-{bridge}"[:15], f"phy-{bridge}"[:15]


def local_vlans(view: L2View, observed: o.OvsState) -> dict[str, int]:
    """Kept for networks that have one; the lowest free VLAN for new ones (sorted: deterministic)."""
    wanted = sorted(n.id for n in view.networks)
    out = {n: observed.local_vlans[n] for n in wanted if n in observed.local_vlans}
    used = set(out.values())
    free = (v for v in range(1, 4095) if v not in used)
    for n in wanted:
        if n not in out:
            out[n] = next(free)
    return out


def plan(view: L2View, observed: o.OvsState, cfg: OvsConfig) -> Plan:
    out = Plan()
    lvm = local_vlans(view, observed)
    bridges = [INT, TUN, *sorted(set(cfg.bridge_mappings.values()))]
    out.ops += [o.AddBridge(b) for b in bridges if b not in observed.bridges]
    ports: dict[str, tuple[o.Port, bool]] = {  # name -> (wanted, kernel device)
        "patch-tun": (o.Port(INT, None, "patch", (("peer", "patch-int"),)), False),
        "patch-int": (o.Port(TUN, None, "patch", (("peer", "patch-tun"),)), False)}
    for bridge in sorted(set(cfg.bridge_mappings.values())):
        int_end, phy_end = patch_names(bridge)
        ports[int_end] = (o.Port(INT, None, "patch", (("peer", phy_end),)), False)
        ports[phy_end] = (o.Port(bridge, None, "patch", (("peer", int_end),)), False)
    flows: dict[str, list[str]] = {b: [] for b in bridges}
    flows[INT].append("table=0,priority=0,actions=NORMAL")
    flows[TUN] += [f"table=0,priority=1,in_port=patch-int,actions=resubmit(,{dvr.PROCESS})",
                   f"table={dvr.PROCESS},priority=0,actions=resubmit(,2)", "table=0,priority=0,actions=drop",
                   "table=2,priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00,actions=resubmit(,20)",
                   "table=2,priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=resubmit(,22)",
                   "table=2,priority=1,arp,dl_dst=ff:ff:ff:ff:ff:ff,actions=resubmit(,21)",
                   "table=20,priority=0,actions=resubmit(,22)", "table=21,priority=0,actions=resubmit(,22)",
                   "table=22,priority=0,actions=drop"]
    for bridge in sorted(set(cfg.bridge_mappings.values())):
        int_end, phy_end = patch_names(bridge)
        flows[bridge] += ["table=0,priority=0,actions=NORMAL", f"table=0,priority=2,in_port={phy_end},actions=drop"]
        flows[INT].append(f"table=0,priority=2,in_port={int_end},actions=drop")
    flows[INT].append(f"table={fw.TRANSIENT},priority=0,actions=NORMAL")
    tunnels: dict[str, str] = {}
    routers = dvr.interfaces(view)
    for net in view.networks:
        _network(net, lvm[net.id], cfg, flows, tunnels)
        if net.id in routers:
            _dvr(routers[net.id], net, lvm[net.id], cfg, flows, view.dvr_mac)
    remotes = _remotes(view, cfg)
    for name, kind in sorted(tunnels.items()):
        remote = remotes[name]
        ports[name] = (o.Port(TUN, None, kind, (("in_key", "flow"), ("local_ip", cfg.local_ip or ""),
                                                ("out_key", "flow"), ("remote_ip", remote))), False)
        flows[TUN].append(f"table=0,priority=1,in_port={name},actions=resubmit(,{TUN_TABLE[kind]})")
    nets = {n.id: n for n in view.networks}
    attached: dict[str, tuple[str, int, str]] = {}  # port id -> (its br-int port, local VLAN, MAC), ports up here
    waiting: dict[str, tuple[str, int, str]] = {}  # the same for ports that will be up once their tap comes
    subports: dict[str, list[L2Port]] = {}
    for port in view.ports:
        if port.parent_id:
            subports.setdefault(port.parent_id, []).append(port)

    def wire(port: L2Port, name: str, bridge_port: o.Port, kernel: bool) -> None:
        """The port's end on br-int (its tap, or a trunk's patch) tagged with its network's local VLAN."""
        pnet = nets.get(port.network_id)
        up = pnet is not None and port.admin_state_up and pnet.admin_state_up
        ports[name] = (replace(bridge_port, tag=lvm[port.network_id] if up else DEAD_VLAN), kernel)
        if up:
            out.up[port.id] = port.revision
            attached[port.id] = (name, lvm[port.network_id], port.mac)
        else:
            out.down.append(port.id)

    trunk_bridges = []
    for port in view.ports:
        tap = naming.tap(port.id)
        if port.parent_id:
            if port.parent_id not in {p.id for p in view.ports} or naming.tap(port.parent_id) not in observed.links:
                out.down.append(port.id)
            continue
        if tap not in observed.links:
            out.down.append(port.id)
            pnet = nets.get(port.network_id)
            if not port.trunk_id and pnet is not None and port.admin_state_up and pnet.admin_state_up:
                waiting[port.id] = (tap, lvm[port.network_id], port.mac)
            continue
        if not port.trunk_id:
            wire(port, tap, o.Port(INT, type=cfg.tap_type), True)
            continue
        # a trunk's parent, as Neutron's trunk bridges: its tap on tbr- carrying every VLAN; untagged frames
        # reach br-int through the tpt-/tpi- patch, each subport's VLAN through its spt- (access port of that
        # VLAN) and spi- (tagged with the subport network's local VLAN) patch
        tbr = trunk_bridge(port.trunk_id)
        trunk_bridges.append(tbr)
        flows[tbr] = ["table=0,priority=0,actions=NORMAL"]
        ports[tap] = (o.Port(tbr), True)
        tpt, tpi = f"tpt-{port.id[:11]}", f"tpi-{port.id[:11]}"
        ports[tpt] = (o.Port(tbr, 0, "patch", (("peer", tpi),)), False)
        wire(port, tpi, o.Port(INT, None, "patch", (("peer", tpt),)), False)
        for sub in subports.get(port.id, []):
            spt, spi = f"spt-{sub.id[:11]}", f"spi-{sub.id[:11]}"
            ports[spt] = (o.Port(tbr, sub.segmentation_id, "patch", (("peer", spi),)), False)
            wire(sub, spi, o.Port(INT, None, "patch", (("peer", spt),)), False)
    out.ops += [o.AddBridge(b) for b in trunk_bridges if b not in observed.bridges]
    bridges += trunk_bridges
    stale_trunks = sorted(b for b in observed.bridges if b.startswith("tbr-") and b not in trunk_bridges)
    numbers = ofports({**ports, **{tap: (o.Port(INT, type=cfg.tap_type), True) for tap, _, _ in waiting.values()}},
                      observed)
    state = None if view.firewall is None else firewall_state(view.firewall)
    firewall = fw.flows(state, {pid: fw.Attached(numbers[tap], lv, mac)
                                for pid, (tap, lv, mac) in {**attached, **waiting}.items()})
    cookies = {b: _cookies(b, flows[b], ports, numbers, firewall if b == INT else []) for b in bridges}
    # the firewall's flows name taps by number: in place before a tap is plugged
    ours, present_int = set(firewall), observed.flows.get(INT, set())
    early = {k: f for k, f in cookies[INT].items() if f in ours and k not in present_int}
    if early:
        out.ops.append(o.AddFlows(INT, tuple(early.values()), tuple(early), numbered=True))
    # ports: ours (patches, tunnels, taps on br-int) that are not wanted go; wanted ones missing or changed come
    for name, have in sorted(observed.ports.items()):
        if name not in ports and have.bridge in bridges and _ours(name, have):
            out.ops.append(o.DelPort(name))
    for name, (want, kernel) in sorted(ports.items()):
        if observed.ports.get(name) != want:
            out.ops.append(o.AddPort(name, want, kernel, numbers[name], name in observed.ports))
    out.ops += [o.DelBridge(b) for b in stale_trunks]  # after their taps moved back to br-int
    stale = tuple(sorted(set(observed.local_vlans) - set(lvm)))
    changed = tuple(sorted((n, v) for n, v in lvm.items() if observed.local_vlans.get(n) != v))
    if stale or changed:
        out.ops.append(o.SetLocalVlans(changed, stale))
    # flows: new ones first, then the stale ones (a replaced flow already carries its new cookie)
    for bridge in bridges:
        present = observed.flows.get(bridge, set())
        new = {k: f for k, f in cookies[bridge].items() if k not in present and not (bridge == INT and k in early)}
        if new:
            out.ops.append(o.AddFlows(bridge, tuple(new.values()), tuple(new),
                                      numbered=bridge == INT and ours.issuperset(new.values())))
    stale_flows = [o.DelFlows(bridge, gone) for bridge in sorted(set(observed.flows) - set(stale_trunks))
                   if (gone := tuple(sorted(observed.flows[bridge] - set(cookies.get(bridge, {})))))]
    if early and stale_flows and _only_adds(out.ops):
        # nothing waits on a port (no port leaves, every new flow is in the early bundle): the stale flows go
        # in that bundle, not in a bundle of their own after the ports (one wait on vswitchd less)
        out.ops[1:1] = stale_flows
    else:
        out.ops += stale_flows
    return out


def _only_adds(ops: list[o.Op]) -> bool:
    """Ops that remove no port or bridge, and whose flows are all in the first (early) bundle."""
    return isinstance(ops[0], o.AddFlows) and not any(
        isinstance(op, o.DelPort | o.DelBridge) or (isinstance(op, o.AddFlows) and i) for i, op in enumerate(ops))


def ofports(ports: dict[str, tuple[o.Port, bool]], observed: o.OvsState) -> dict[str, int]:
    """The OpenFlow number of each wanted port: the one it has on its bridge, else the lowest free there."""
    used: dict[str, set[int]] = {}
    for name, have in observed.ports.items():
        if name in observed.ofports:
            used.setdefault(have.bridge, set()).add(observed.ofports[name])
    out = {}
    for name, (want, _) in sorted(ports.items()):
        seen = observed.ports.get(name)
        if name in observed.ofports and seen is not None and seen.bridge == want.bridge:
            out[name] = observed.ofports[name]
    for name, (want, _) in sorted(ports.items()):
        if name not in out:
            taken = used.setdefault(want.bridge, set())
            out[name] = next(n for n in itertools.count(1) if n not in taken)
            taken.add(out[name])
    return out


def _cookies(bridge: str, flows: list[str], ports: dict[str, tuple[o.Port, bool]],
             numbers: dict[str, int], numbered: list[str]) -> dict[int, str]:
    """cookie -> flow, sorted by cookie; the numbers of the ports a flow names are part of its cookie (numbered:
    flows that name ports by number only, the firewall's, thousands: their cookies come from a cache)."""
    mine = {name: numbers[name] for name, (want, _) in ports.items() if want.bridge == bridge}
    return dict(sorted([*zip(o.cookies(bridge, flows, mine), flows, strict=True),
                        *zip(o.plain_cookies(bridge, numbered), numbered, strict=True)]))


def trunk_bridge(trunk_id: str) -> str:
    return f"tbr-{trunk_id[:11]}"


def _ours(name: str, port: o.Port) -> bool:
    return name.startswith(("tap", "patch-", "int-br-", "phy-br-", "tpt-", "tpi-", "spt-", "spi-")) or (
        port.type in TUNNEL_TYPES and name.startswith(TUNNEL_TYPES))


def _remotes(view: L2View, cfg: OvsConfig) -> dict[str, str]:
    out = {}
    for net in view.networks:
        if net.segment.network_type in cfg.tunnel_types:
            for vtep in net.vteps:
                out[tunnel_port(net.segment.network_type, vtep)] = vtep
    return out


def _network(net: L2Network, lv: int, cfg: OvsConfig, flows: dict[str, list[str]], tunnels: dict[str, str]) -> None:
    seg = net.segment
    kind = seg.network_type
    if kind in ("flat", "vlan"):
        bridge = cfg.bridge_mappings.get(seg.physical_network or "")
        if bridge is None:
            return
        int_end, phy_end = patch_names(bridge)
        if kind == "vlan":
            flows[bridge].append(f"table=0,priority=4,in_port={phy_end},dl_vlan={lv},"
                                 f"actions=mod_vlan_vid:{seg.segmentation_id},NORMAL")
            flows[INT].append(f"table=0,priority=3,in_port={int_end},dl_vlan={seg.segmentation_id},"
                              f"actions=mod_vlan_vid:{lv},{_to_transient(lv)}")
        else:
            flows[bridge].append(f"table=0,priority=4,in_port={phy_end},dl_vlan={lv},actions=strip_vlan,NORMAL")
            flows[INT].append(f"table=0,priority=3,in_port={int_end},vlan_tci=0x0000/0x1fff,"
                              f"actions=mod_vlan_vid:{lv},{_to_transient(lv)}")
        return
    if kind not in TUN_TABLE or kind not in cfg.tunnel_types or not cfg.local_ip:
        return
    vni = seg.segmentation_id
    flows[INT].append(f"table=0,priority=3,in_port=patch-tun,dl_vlan={lv},actions={_to_transient(lv)}")
    flows[TUN].append(f"table={TUN_TABLE[kind]},priority=1,tun_id={vni:#x},"
                      f"actions=mod_vlan_vid:{lv},output:patch-int")
    outs = []
    for vtep in net.vteps:
        name = tunnel_port(kind, vtep)
        tunnels[name] = kind
        outs.append(f"output:{name}")
    if outs:
        flows[TUN].append(f"table=22,priority=1,dl_vlan={lv},actions=strip_vlan,set_tunnel:{vni:#x},{','.join(outs)}")
    for r in net.remote_ports:
        name = tunnel_port(kind, r.vtep)
        flows[TUN].append(f"table=20,priority=2,dl_vlan={lv},dl_dst={r.mac},"
                          f"actions=strip_vlan,set_tunnel:{vni:#x},output:{name}")
        mac_hex = "0x" + r.mac.replace(":", "")
        for ip in r.ips:
            if ":" in ip:
                continue  # the ARP responder is IPv4 only (Neutron's too)
            ip_hex = f"{int(ipaddress.ip_address(ip)):#x}"
            flows[TUN].append(
                f"table=21,priority=1,arp,dl_vlan={lv},arp_tpa={ip},actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],"
                f"mod_dl_src:{r.mac},load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],"
                f"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],load:{mac_hex}->NXM_NX_ARP_SHA[],"
                f"load:{ip_hex}->NXM_OF_ARP_SPA[],in_port")


def _dvr(ports: list[L2Port], net: L2Network, lv: int, cfg: OvsConfig, flows: dict[str, list[str]],
         dvr_mac: str) -> None:
    """The DVR flows of the local router copies' ports on a network, on the bridge that carries it out."""
    kind = net.segment.network_type
    if kind in ("flat", "vlan"):
        bridge = cfg.bridge_mappings.get(net.segment.physical_network or "")
        if bridge is not None:
            flows[bridge] += dvr.physical_flows(ports, net, lv, patch_names(bridge)[1], dvr_mac)
    elif kind in TUN_TABLE and kind in cfg.tunnel_types and cfg.local_ip:
        flows[TUN] += dvr.tunnel_flows(ports, net, lv, TUN_TABLE[kind], dvr_mac)


def _to_transient(lv: int) -> str:
    """The firewall's table 60 (for a filtered port: its ingress rules; else NORMAL), with the network in reg6."""
    return f"set_field:{lv}->reg6,resubmit(,{fw.TRANSIENT})"
