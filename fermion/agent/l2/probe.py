"""fermion trace --probe on a Linux-bridge host: the reconciler's own plan, computed and not applied, says what
the kernel lacks or has too much for a port (its tap on its bridge, the network's vxlan with its forwarding
and neighbour entries); the firewall compares a port's nftables chains and set elements with what the view
renders."""

from __future__ import annotations

from fermion.agent.l2.reconciler import L2Config, plan
from fermion.agent.secgroups import firewall_state
from fermion.dataplane import naming
from fermion.dataplane import plan as p
from fermion.dataplane.state import HostState
from fermion.rpc.contracts import L2View, ProbeResult


def describe(op: p.Op) -> tuple[bool, str]:
    """(missing, text) of one planned operation: True when it would add what the kernel lacks."""
    if isinstance(op, p.EnsureBridge):
        return True, f"bridge {op.name} (up, mtu {op.mtu})"
    if isinstance(op, p.EnsureVxlan):
        return True, f"{op.name} (vni {op.vni}, local {op.local_ip}, on {op.bridge}, up)"
    if isinstance(op, p.Attach):
        return True, f"{op.name} on bridge {op.bridge} (up)"
    if isinstance(op, p.Detach):
        return False, f"{op.name} on a bridge"
    if isinstance(op, p.DeleteLink):
        return False, f"device {op.name}"
    if isinstance(op, (p.FdbAdd, p.FdbDel)):
        return isinstance(op, p.FdbAdd), f"fdb {op.mac} dst {op.dst} on {op.dev}"
    return isinstance(op, p.NeighAdd), f"neighbour {op.ip} lladdr {op.mac} on {op.dev}"


def probe_port(view: L2View, observed: HostState, cfg: L2Config, port_id: str) -> ProbeResult:
    port = next((x for x in view.ports if x.id == port_id), None)
    if port is None:
        return ProbeResult(missing=[f"port {port_id} in this host's view (bound elsewhere, or deleted)"])
    net = next((n for n in view.networks if n.id == port.network_id), None)
    tap, br = naming.tap(port.id), naming.bridge(port.network_id)
    devices = {tap, br}
    checked = [f"{tap} on {br}"]
    if net is not None and net.segment.network_type == "vxlan" and net.segment.segmentation_id is not None:
        vx = naming.vxlan(net.segment.segmentation_id)
        devices.add(vx)
        checked.append(f"{vx}: {len(net.vteps)} flood, {len(net.remote_ports)} unicast fdb entries, "
                       f"{sum(len(r.ips) for r in net.remote_ports)} neighbour entries")
    result = plan(view, observed, cfg, {port.network_id})
    missing: list[str] = []
    extra: list[str] = []
    if tap not in observed.links:
        missing.append(f"{tap} (the instance's device)")
    for op in result.ops:
        if getattr(op, "name", None) in devices or getattr(op, "dev", None) in devices:
            wanted, text = describe(op)
            (missing if wanted else extra).append(text)
    return ProbeResult(checked=checked, missing=missing, extra=extra)


def probe_filters(view: L2View, firewall: object, cfg: L2Config, port_id: str) -> ProbeResult:
    if view.firewall is None:
        return ProbeResult(missing=["the firewall view"])
    checked, missing, extra = firewall.probe(  # type: ignore[attr-defined]
        firewall_state(view.firewall, cfg.local_ip), naming.tap(port_id))
    return ProbeResult(checked=checked, missing=missing, extra=extra)
