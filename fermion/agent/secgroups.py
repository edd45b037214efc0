"""The firewall view an agent receives (rpc contract) as the data plane's firewall state."""

from __future__ import annotations

from fermion.dataplane import naming
from fermion.dataplane import secgroups as fw
from fermion.rpc.contracts import Firewall


def firewall_state(view: Firewall, tunnel_ip: str | None = None) -> fw.FirewallState:
    return fw.FirewallState(
        ports=tuple(fw.PortFilter(id=p.id, device=naming.tap(p.id), mac=p.mac, ips=tuple(p.ips),
                                  allowed_pairs=tuple((a[0], a[1]) for a in p.allowed_pairs),
                                  groups=tuple(p.groups), port_security=p.port_security, network=p.network_id)
                    for p in view.ports),
        groups=tuple(fw.Group(id=g.id, stateful=g.stateful, rules=tuple(
            fw.Rule(direction=r.direction, ethertype=r.ethertype, protocol=r.protocol, port_min=r.port_min,
                    port_max=r.port_max, remote_ip_prefix=r.remote_ip_prefix, remote_group=r.remote_group,
                    remote_address_group=r.remote_address_group)
            for r in g.rules)) for g in view.groups),
        members={k: tuple(v) for k, v in view.members.items()},
        address_groups={k: tuple(v) for k, v in view.address_groups.items()}, tunnel_ip=tunnel_ip)
