"""Functional core of the Linux-bridge agent: (desired view, observed host) -> plan, plus port states.

Per network a bridge brq<net>; VXLAN networks get vxlan-<vni> with L2-population entries (a flood entry
per remote host, a unicast entry and an ARP/ND proxy entry per remote port); flat networks put the mapped
physical interface in the bridge; local networks are the bridge alone. Bound ports' taps are attached.
Only objects carrying our marker are created or deleted; taps belong to instances and are only detached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fermion.dataplane import naming
from fermion.dataplane import plan as p
from fermion.dataplane.state import HostState
from fermion.rpc.contracts import L2Network, L2View


@dataclass(frozen=True)
class L2Config:
    local_ip: str | None = None
    interface_mappings: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    ops: list[p.Op] = field(default_factory=list)
    up: dict[str, int] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)
    taps: dict[str, str] = field(default_factory=dict)  # tap name -> network id, for the device monitor


def plan(view: L2View, observed: HostState, cfg: L2Config, scope: set[str] | None) -> Plan:
    out = Plan()
    links = observed.links
    ensure: list[p.Op] = []
    wanted_bridges: set[str] = set()
    wanted_vxlans: set[str] = set()
    wanted_taps: set[str] = set()
    ports_by_net: dict[str, list] = {}
    for port in view.ports:
        ports_by_net.setdefault(port.network_id, []).append(port)
    for net in view.networks:
        br = naming.bridge(net.id)
        wanted_bridges.add(br)
        have = links.get(br)
        if have is None or not have.ours or have.mtu != net.mtu or not have.up:
            ensure.append(p.EnsureBridge(br, net.mtu))
        seg = net.segment
        if seg.network_type == "vxlan" and seg.segmentation_id is not None and cfg.local_ip:
            vx = naming.vxlan(seg.segmentation_id)
            wanted_vxlans.add(vx)
            _vxlan(ensure, net, br, vx, observed, cfg.local_ip)
        elif seg.network_type == "flat":
            phys = cfg.interface_mappings.get(seg.physical_network or "")
            if phys and phys in links and (links[phys].master != br or not links[phys].up):
                ensure.append(p.Attach(phys, br))
        for port in ports_by_net.get(net.id, []):
            tap = naming.tap(port.id)
            out.taps[tap] = net.id
            have = links.get(tap)
            if have is None:
                out.down.append(port.id)
            elif not (port.admin_state_up and net.admin_state_up):
                if have.master or have.up:
                    ensure.append(p.Detach(tap))
                out.down.append(port.id)
            else:
                wanted_taps.add(tap)
                if have.master != br or have.mtu != net.mtu or not have.up:
                    ensure.append(p.Attach(tap, br, net.mtu))
                out.up[port.id] = port.revision
    # what is ours (in scope) and no longer wanted goes: taps detached, then vxlans and bridges deleted
    if scope is None:
        managed = {n for n, link in links.items() if link.ours and link.kind == "bridge" and n.startswith("brq")}
    else:
        managed = {b for b in (naming.bridge(n) for n in scope) if b in links and links[b].ours}
    removal: list[p.Op] = []
    for name, link in links.items():
        if link.master in managed and name.startswith("tap") and name not in wanted_taps:
            if link.master not in wanted_bridges or name not in out.taps:
                removal.append(p.Detach(name))
        elif link.ours and link.kind == "vxlan" and name not in wanted_vxlans and (
                link.master in managed or (scope is None and link.master is None)):
            removal.append(p.DeleteLink(name))
    removal += [p.DeleteLink(b) for b in sorted(managed - wanted_bridges) if b in links and links[b].ours]
    out.ops = removal + ensure
    return out


def _vxlan(ops: list[p.Op], net: L2Network, br: str, vx: str, observed: HostState, local_ip: str) -> None:
    have = observed.links.get(vx)
    if have is not None and not have.ours:
        return  # someone else's device holds the name: never touch it (the network stays down here)
    if have is None or not have.ours or have.master != br or have.mtu != net.mtu or not have.up or \
            have.vni != net.segment.segmentation_id:
        if have is not None and have.vni != net.segment.segmentation_id:
            ops.append(p.DeleteLink(vx))
        ops.append(p.EnsureVxlan(vx, net.segment.segmentation_id or 0, local_ip, net.mtu, br))
    fdb_want = {(p.FLOOD, vtep) for vtep in net.vteps} | {(r.mac, r.vtep) for r in net.remote_ports}
    neigh_want = {(ip, r.mac) for r in net.remote_ports for ip in r.ips}
    fdb_have = observed.fdb.get(vx, set()) if have is not None else set()
    neigh_have = observed.neigh.get(vx, set()) if have is not None else set()
    ops += [p.FdbDel(vx, mac, dst) for mac, dst in sorted(fdb_have - fdb_want)]
    ops += [p.FdbAdd(vx, mac, dst) for mac, dst in sorted(fdb_want - fdb_have)]
    ops += [p.NeighDel(vx, ip, mac) for ip, mac in sorted(neigh_have - neigh_want)]
    ops += [p.NeighAdd(vx, ip, mac) for ip, mac in sorted(neigh_want - neigh_have)]
