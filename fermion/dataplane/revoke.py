"""Which tracked connections a new firewall state no longer allows.

A stateful filter admits a connection's later packets without looking at the rules again, so taking a
rule away does not stop what it let in: Neutron deletes the conntrack entries that lost their rule, and so
do we.  This module is pure: given the old and new states, the connections a change may concern, and for
each the verdict the new rules give its first packet, evaluated as the nftables tables evaluate it (see
firewall.py): the sender's egress rules (when the sender is a filtered port of this host) and the
receiver's ingress rules (when the receiver is).  Stateless ports check every packet anyway, and unfiltered
ones nothing, so neither needs an entry removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from fermion import rules
from fermion.dataplane.conntrack import Flow
from fermion.dataplane.secgroups import ICMPV6, FirewallState, Group, PortFilter, Rule
from fermion.rules import IpNet
from fermion.rules import ip as _ip
from fermion.rules import net as _net
from fermion.rules import within as _in

_EGRESS_ICMPV6 = frozenset({130, 131, 132, 133, 135, 136, 143})  # as firewall.ICMPV6_EGRESS_TYPES
_INGRESS_ICMPV6 = frozenset(range(130, 137))  # as firewall.ICMPV6_INGRESS_TYPES


def always_allowed(direction: str, flow: Flow) -> bool:
    """DHCP and neighbour discovery pass every profile chain before any group's rules."""
    if flow.protocol == 17:
        client, server = (68, 67) if flow.version == 4 else (546, 547)
        pair = (client, server) if direction == "egress" else (server, client)
        return (flow.sport, flow.dport) == pair
    if flow.protocol == ICMPV6 and flow.version == 6:
        return flow.icmp_type in (_EGRESS_ICMPV6 if direction == "egress" else _INGRESS_ICMPV6)
    return False


def rule_allows(rule: Rule, flow: Flow, remote: str, members: Mapping[str, Iterable[str]],
                address_groups: Mapping[str, Iterable[str]] | None = None) -> bool:
    """Whether the rule matches the connection's first packet (remote: the other side's address; members:
    the remote groups' addresses, address_groups: the address groups' CIDRs)."""
    dport = (flow.dport, flow.dport) if flow.dport is not None else None
    return rules.admits(rule, flow.version, flow.protocol, dport, flow.icmp_type, flow.icmp_code, remote,
                        members, address_groups or {})


def _addresses(port: PortFilter) -> list[str]:
    return [*port.ips, *(ip for ip, _ in port.allowed_pairs)]


class Judge:
    """Verdicts of one firewall state: which of this host's ports own an address in a zone, and whether
    their rules admit a connection."""

    def __init__(self, state: FirewallState, zones: Mapping[str, int]) -> None:
        self.groups = {g.id: g for g in state.groups}
        self.members = state.members
        self.address_groups = state.address_groups
        self._exact: dict[tuple[int, str], list[PortFilter]] = {}
        self._nets: list[tuple[int, IpNet, PortFilter]] = []
        for port in state.ports:
            zone = zones.get(port.network, 0)
            if not zone:
                continue
            for value in _addresses(port):
                net = _net(value)
                if net.prefixlen == net.max_prefixlen:
                    self._exact.setdefault((zone, str(net.network_address)), []).append(port)
                else:
                    self._nets.append((zone, net, port))

    def owners(self, zone: int, address: str) -> list[PortFilter]:
        found = list(self._exact.get((zone, address), ()))
        if self._nets:
            ip = _ip(address)
            found += [port for z, net, port in self._nets if z == zone and ip in net and port not in found]
        return found

    def allows(self, flow: Flow) -> bool:
        return (self._side(self.owners(flow.zone, flow.src), "egress", flow, flow.dst)
                and self._side(self.owners(flow.zone, flow.dst), "ingress", flow, flow.src))

    def _side(self, ports: list[PortFilter], direction: str, flow: Flow, remote: str) -> bool:
        return not ports or any(self._port_allows(p, direction, flow, remote) for p in ports)

    def _port_allows(self, port: PortFilter, direction: str, flow: Flow, remote: str) -> bool:
        if not port.port_security:
            return True
        groups = [self.groups.get(g, Group(g, True, ())) for g in port.groups]
        if not all(g.stateful for g in groups) or always_allowed(direction, flow):
            return True
        return any(rule_allows(r, flow, remote, self.members, self.address_groups)
                   for g in groups for r in g.rules if r.direction == direction)


def _narrowed(old: Group | None, new: Group | None) -> bool:
    """Whether new may refuse something old allowed (a rule gone, statefulness changed, group gone)."""
    if old is None or old is new or old == new:
        return False
    return new is None or old.stateful != new.stateful or bool(Counter(old.rules) - Counter(new.rules))


def changed_ports(old: FirewallState, new: FirewallState, old_zones: Mapping[str, int],
                  new_zones: Mapping[str, int]) -> set[str]:
    """Ports of the old state whose connections the new one may refuse: gone, in another zone, changed
    other than by gaining groups, without one of their groups, or in a group that lost a rule or names a
    remote group that lost a member or an address group that lost an address.  A change that only adds (a
    rule, a member, an address, a group) never needs a connection cut, so it costs no look at the conntrack
    table."""
    before = {g.id: g for g in old.groups}
    after = {g.id: g for g in new.groups}
    narrowed = {gid for gid in before if _narrowed(before[gid], after.get(gid))}
    shrunk = {gid for gid, members in old.members.items() if set(members) - set(new.members.get(gid, ()))}
    lost = {agid for agid, cidrs in old.address_groups.items()
            if set(cidrs) - set(new.address_groups.get(agid, ()))}
    touched = narrowed | {gid for gid, g in before.items()
                          if any(r.remote_group in shrunk or r.remote_address_group in lost for r in g.rules)}
    now = {p.id: p for p in new.ports}
    out = set()
    zones_moved = any(old_zones.get(n) != new_zones.get(n) for n in old_zones)
    for port in old.ports:
        fresh = now.get(port.id)
        if fresh is None:
            out.add(port.id)
        elif fresh != port and (replace(fresh, groups=()) != replace(port, groups=())
                                or set(port.groups) - set(fresh.groups)):
            out.add(port.id)
        elif (touched and any(g in touched for g in port.groups)) or (
                zones_moved and old_zones.get(port.network, 0) != new_zones.get(fresh.network, 0)):
            out.add(port.id)
    return out


def doomed(flows: Iterable[Flow], old: FirewallState | None, new: FirewallState, old_zones: Mapping[str, int],
           new_zones: Mapping[str, int], ports: set[str] | None, purge: Iterable[int] = ()) -> list[Flow]:
    """The flows to delete: every flow in a zone to purge (a network that left the host: its zone may be
    given to another network), and among those touching the given ports of the old state (None: every flow
    in one of our zones), the ones whose address no port owns any more and the ones the new rules refuse."""
    purged = set(purge) - set(new_zones.values())
    judge = Judge(new, new_zones)
    ours = set(new_zones.values())
    watched: dict[int, list[str]] | None = None
    if ports is not None:
        watched = {}
        for state, zones in ((old, old_zones), (new, new_zones)):
            for port in (state.ports if state is not None else ()):
                if port.id in ports:
                    zone = zones.get(port.network, 0)
                    if zone:
                        watched.setdefault(zone, []).extend(_addresses(port))
                        ours.add(zone)
    gone: dict[tuple[int, str], bool] = {}
    if old is not None:
        alive = {p.id for p in new.ports}
        for port in old.ports:
            zone = old_zones.get(port.network, 0)
            if port.id not in alive and zone:
                for value in port.ips:
                    gone[(zone, value)] = True
    out = []
    for flow in flows:
        if flow.zone in purged:
            out.append(flow)
            continue
        if flow.zone not in ours:
            continue
        if watched is not None:
            values = watched.get(flow.zone)
            if not values or not (_in(flow.src, values) or _in(flow.dst, values)):
                continue
        orphaned = any(gone.get((flow.zone, a)) and not judge.owners(flow.zone, a) for a in (flow.src, flow.dst))
        if orphaned or not judge.allows(flow):
            out.append(flow)
    return out
