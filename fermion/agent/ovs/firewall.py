"""Security groups on br-int as OpenFlow flows, the way Neutron's "openvswitch" firewall driver builds them.
Pure: (firewall state, the ports attached to br-int) -> flow texts. Semantics as the nftables firewall's
(fermion/dataplane/firewall.py): stateful and stateless groups, remote groups and address groups, anti-spoofing
with allowed address pairs, DHCP/ND allowed, port security off or ports owned by network:* not filtered.

Registers: reg5 = the ofport of the filtered port whose rules apply, reg6 = its network's local VLAN, which is
also the conntrack zone (so two networks with the same addresses never share connection state).

table 0   (with the planner's flows) a filtered tap's packets: reg5, reg6 -> 71; an unfiltered tap's: reg6 -> 60;
          packets from patch-tun and int-br-X get reg6 from their VLAN -> 60
table 60  towards a filtered port (reg6 and one of its MACs): reg5 = its ofport, VLAN header removed -> 81; else NORMAL
table 71  egress: tagged frames dropped; source MAC one of the port's -> 72
table 72  egress anti-spoofing: ARP sender (MAC, IP) and IPv4/IPv6 source (MAC, address) from the fixed IPs and
          allowed address pairs (link-local IPv6 from any of its MACs, DHCP discover, ND/MLD from ::); no DHCP
          server or router advertisement; IP goes to conntrack (stateful) -> 73, ARP -> 60
table 73  egress rules; accepted: ct commit (stateful, new connections) -> 60
table 81  ingress: IP to conntrack (stateful) -> 82, anything else (ARP) delivered
table 82  ingress rules; accepted: ct commit (stateful, new connections), output to the port

Stateful ports: invalid packets are dropped, replies and related packets pass, and the original direction of an
established connection is matched against the rules again: when no rule allows it any more (a rule or a remote
group member gone), its conntrack entry gets ct_mark 1 and every later packet of it, both ways, is dropped
(Neutron's CT_MARK_INVALID). Remote groups and address groups are conjunctive matches: (port, protocol) x
(remote addresses), so a membership change is one flow per address, not one per port and rule.

Limits (as Neutron's): broadcast and multicast that NORMAL floods reach filtered ports without their ingress
rules; dccp/udplite rules with a port range match nothing (OVS has no field for those ports)."""

from __future__ import annotations

import functools
import ipaddress
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fermion.dataplane.secgroups import ICMP, ICMPV6, FirewallState, Group, PortFilter, Rule

TRANSIENT, EGRESS, EGRESS_SPOOF, EGRESS_RULES, INGRESS, INGRESS_RULES = 60, 71, 72, 73, 81, 82
ZONE = "zone=NXM_NX_REG6[0..15]"
CT_MARK_INVALID = 1
EGRESS_ICMPV6 = (130, 131, 132, 133, 135, 136, 143)  # MLD, RS, NS, NA, MLDv2 (never RA: 134)
INGRESS_ICMPV6 = (130, 131, 132, 133, 134, 135, 136)  # MLD, RS, RA, NS, NA
_V4_PROTO = {6: "tcp", 17: "udp", 132: "sctp", ICMP: "icmp"}
_V6_PROTO = {6: "tcp6", 17: "udp6", 132: "sctp6", ICMPV6: "icmp6"}
_PORTS = frozenset({6, 17, 132})  # the protocols whose ports OVS can match
_UNMATCHABLE_PORTS = frozenset({33, 136})  # dccp, udplite: Neutron allows port ranges, OVS has no field
RULE, CONJ, CONJ_ID = 70, 71, 72  # priorities in the rules tables
# a rule is matched by new connections, committed then, and by the original direction of established ones,
# which pass without a second conntrack pass (as Neutron's: a commit per packet cost ~10 % of the throughput)
NEW, ESTABLISHED = "ct_state=+new-est", "ct_state=+est-rel-rpl"


@dataclass(frozen=True)
class Attached:
    """A port's tap on br-int: its OpenFlow port number, its network's local VLAN and its MAC."""

    ofport: int
    vlan: int
    mac: str


Flow = tuple[int, int, str, str]  # (table, priority, match, actions)


def flows(state: FirewallState | None, attached: Mapping[str, Attached]) -> list[str]:
    """The firewall's flows for br-int (each match once). attached: port id -> its tap, for the ports
    up on this host; a port attached but absent from the state is isolated (fail closed). None: no firewall
    (everything is switched by NORMAL)."""
    if state is None:
        return []
    out: list[Flow] = [(EGRESS, 110, "vlan_tci=0x1000/0x1000", "drop"),  # 802.1Q from an instance
                       (EGRESS_SPOOF, 110, "udp,tp_src=67,tp_dst=68", "drop"),  # no DHCP server in an instance
                       (EGRESS_SPOOF, 110, "udp6,tp_src=547,tp_dst=546", "drop"),
                       (EGRESS_SPOOF, 110, "icmp6,icmp_type=134", "drop"),  # nor router advertisements
                       (TRANSIENT, 0, "", "NORMAL")]
    groups = {g.id: g for g in state.groups}
    known = {p.id: p for p in state.ports}
    conj = _Conjunctions(state)
    filtered: list[_Filtered] = []
    for port_id, tap in sorted(attached.items()):
        port = known.get(port_id)
        if port is None:  # not in the firewall view: nothing in or out
            out += [(0, 100, f"in_port={tap.ofport}", "drop"),
                    (TRANSIENT, 90, f"reg6={tap.vlan},dl_dst={tap.mac.lower()}", "drop")]
        elif not port.port_security:
            out.append((0, 100, f"in_port={tap.ofport}", f"set_field:{tap.vlan}->reg6,resubmit(,{TRANSIENT})"))
        else:
            stateful = all(groups.get(g, Group(g, True, ())).stateful for g in port.groups)
            rules = tuple((g, rule, conj.id(g, rule, stateful)) for g in sorted(set(port.groups))
                          for rule in groups.get(g, Group(g, True, ())).rules)
            filtered.append((port, tap, stateful, rules))
    out += conj.remotes()
    # a filtered port's flows name it by number (reg5, in_port) but for those of table 60 (its MACs): unless two
    # ports share a MAC on a network, no match is another's, and its texts come rendered from a cache (the
    # same string objects each sync: their hashes too are computed once)
    seen = {(t, p, m) for t, p, m, _ in out if t == TRANSIENT}
    texts = []
    for args in filtered:
        text, transient = _filtered_text(*args)
        if not seen.isdisjoint(transient):
            return _render(out + [f for args in filtered for f in _filtered(*args)])
        seen |= transient
        texts += text
    return _render(out) + texts


_Filtered = tuple[PortFilter, Attached, bool, tuple[tuple[str, Rule, int | None], ...]]


@functools.lru_cache(maxsize=4096)
def _filtered(port: PortFilter, tap: Attached, stateful: bool, rules: tuple[tuple[str, Rule, int | None], ...]
              ) -> tuple[Flow, ...]:
    """A filtered port's own flows and its rules' (rules: (group, rule, its conjunction id)). Cached: every sync
    plans every port's firewall, and a port's flows change only with it, its tap or its groups' rules."""
    out = _port(port, tap, stateful)
    for _g, rule, conj in rules:
        out += _rule(rule, tap.ofport, stateful, conj)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _filtered_text(port: PortFilter, tap: Attached, stateful: bool, rules: tuple[tuple[str, Rule, int | None], ...]
                   ) -> tuple[list[str], frozenset[tuple[int, int, str]]]:
    """_filtered rendered, and its table-60 matches."""
    found = _filtered(port, tap, stateful, rules)
    return _render(found), frozenset((t, p, m) for t, p, m, _ in found if t == TRANSIENT)


def _render(found: Iterable[Flow]) -> list[str]:
    """Flows with the same table, priority and match are one flow in OVS: their conjunction actions merge."""
    merged: dict[tuple[int, int, str], list[str]] = {}
    for table, priority, match, actions in found:
        have = merged.get((table, priority, match))
        if have is None:
            merged[table, priority, match] = [actions]
        elif actions not in have:
            have.append(actions)
    out = []
    for (table, priority, match), verdicts in merged.items():  # in the order found: the planner sorts by cookie
        if len(verdicts) > 1 and not all(a.startswith("conjunction(") for a in verdicts):
            verdicts = verdicts[:1]  # never expected: the same match with two verdicts; the first wins
        out.append(f"table={table},priority={priority},{match + ',' if match else ''}actions={','.join(verdicts)}")
    return out


def _accept(direction: str, stateful: bool, ofport: int | str) -> str:
    commit = f"ct(commit,{ZONE})," if stateful else ""
    if direction == "egress":
        return f"{commit}resubmit(,{TRANSIENT})"
    return f"{commit}output:{ofport}"


def _port(port: PortFilter, tap: Attached, stateful: bool) -> list[Flow]:
    n, lv = tap.ofport, tap.vlan
    track = f"ct(table={EGRESS_RULES},{ZONE})" if stateful else f"resubmit(,{EGRESS_RULES})"
    out: list[Flow] = [(0, 100, f"in_port={n}", f"set_field:{n}->reg5,set_field:{lv}->reg6,resubmit(,{EGRESS})")]
    deliver = f"set_field:{n}->reg5,set_field:0->vlan_tci,resubmit(,{INGRESS})"  # access port: untagged
    macs = sorted({port.mac.lower(), *((m or port.mac).lower() for _, m in port.allowed_pairs)})
    for mac in macs:  # traffic towards the port, from anywhere but its own egress
        out.append((TRANSIENT, 90, f"reg6={lv},dl_dst={mac}", deliver))
        out.append((EGRESS, 100, f"reg5={n},dl_src={mac}", f"resubmit(,{EGRESS_SPOOF})"))
        out.append((EGRESS_SPOOF, 100, f"reg5={n},arp,arp_sha={mac},arp_spa=0.0.0.0", f"resubmit(,{TRANSIENT})"))
        out.append((EGRESS_SPOOF, 90, f"reg5={n},ipv6,dl_src={mac},ipv6_src=fe80::/64", track))
    for mac, net in _sources(port):
        if net.version == 4:
            out.append((EGRESS_SPOOF, 100, f"reg5={n},arp,arp_sha={mac},arp_spa={net}", f"resubmit(,{TRANSIENT})"))
            out.append((EGRESS_SPOOF, 90, f"reg5={n},ip,dl_src={mac},nw_src={net}", track))
        else:
            out.append((EGRESS_SPOOF, 90, f"reg5={n},ipv6,dl_src={mac},ipv6_src={net}", track))
    out.append((EGRESS_SPOOF, 95, f"reg5={n},udp,nw_src=0.0.0.0,nw_dst=255.255.255.255,tp_src=68,tp_dst=67",
                track))  # DHCP discover
    for kind in (131, 135, 143):  # duplicate address detection, MLD reports before an address
        out.append((EGRESS_SPOOF, 95, f"reg5={n},icmp6,ipv6_src=::,icmp_type={kind}", track))
    for family in ("ip", "ipv6"):
        if stateful:
            out.append((INGRESS, 100, f"reg5={n},{family},ct_state=-trk", f"ct(table={INGRESS_RULES},{ZONE})"))
        out.append((INGRESS, 90, f"reg5={n},{family}", f"resubmit(,{INGRESS_RULES})"))
    out.append((INGRESS, 50, f"reg5={n}", f"output:{n}"))  # ARP (not IP: no rules, as the nftables firewall)
    always = {"egress": ["udp,tp_src=68,tp_dst=67", "udp6,tp_src=546,tp_dst=547",
                         *(f"icmp6,icmp_type={t}" for t in EGRESS_ICMPV6)],
              "ingress": ["udp,tp_src=67,tp_dst=68", "udp6,tp_src=547,tp_dst=546",
                          *(f"icmp6,icmp_type={t}" for t in INGRESS_ICMPV6)]}
    for direction, table in (("egress", EGRESS_RULES), ("ingress", INGRESS_RULES)):
        accept = _accept(direction, stateful, n)
        out += [(table, 90, f"reg5={n},{m}", accept) for m in always[direction]]
        if stateful:
            out += [(table, 100, f"reg5={n},ct_state=+trk+inv", "drop"),
                    (table, 100, f"reg5={n},ct_state=+trk,ct_mark={CT_MARK_INVALID}", "drop"),
                    (table, 95, f"reg5={n},ct_state=+est-rel+rpl", _accept(direction, False, n)),
                    (table, 95, f"reg5={n},ct_state=-new-est+rel-inv", _accept(direction, False, n))]
            # the original direction of a connection no rule allows any more: marked, then dropped both ways
            out += [(table, 40, f"reg5={n},{family},ct_state=+est",
                     f"ct(commit,{ZONE},exec(set_field:{CT_MARK_INVALID}->ct_mark))") for family in ("ip", "ipv6")]
    return out


def _sources(port: PortFilter) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """(MAC, network) a port may send from: its fixed IPs with its MAC, allowed pairs with theirs."""
    by_mac: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for ip in port.ips:
        by_mac.setdefault(port.mac.lower(), []).append(ipaddress.ip_network(ip, strict=False))
    for ip, mac in port.allowed_pairs:
        by_mac.setdefault((mac or port.mac).lower(), []).append(ipaddress.ip_network(ip, strict=False))
    out = []
    for mac in sorted(by_mac):
        for version in (4, 6):
            nets = [x for x in by_mac[mac] if x.version == version]
            out += [(mac, x) for x in ipaddress.collapse_addresses(nets)]  # type: ignore[type-var]
    return out


def port_masks(low: int, high: int) -> list[tuple[int, int]]:
    """A port range as (value, mask) pairs; the whole range is [(0, 0)]."""
    out = []
    while low <= high:
        size = low & -low if low else 0x10000
        while size > high - low + 1:
            size >>= 1
        out.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return out


def rule_matches(rule: Rule) -> list[str]:
    """The protocol part of a rule's flows (one per port mask), without the remote address; [] when the rule
    can never match."""
    v6 = rule.ethertype == "IPv6"
    proto = ICMPV6 if v6 and rule.protocol == ICMP else rule.protocol  # Neutron: "icmp" on IPv6 is icmpv6
    family = "ipv6" if v6 else "ip"
    prefix = ""
    if rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != (6 if v6 else 4):
            return []
        if net.prefixlen:
            side = ("ipv6_" if v6 else "nw_") + ("src" if rule.direction == "ingress" else "dst")
            prefix = f",{side}={net}"
    if proto is None:
        return [family + prefix]
    name = (_V6_PROTO if v6 else _V4_PROTO).get(proto, f"{family},nw_proto={proto}") + prefix
    ranged = rule.port_min is not None or rule.port_max is not None
    if proto == (ICMPV6 if v6 else ICMP):
        if rule.port_min is None:
            return [name]
        code = f",icmp_code={rule.port_max}" if rule.port_max is not None else ""
        return [f"{name},icmp_type={rule.port_min}{code}"]
    if not ranged or proto not in _PORTS | _UNMATCHABLE_PORTS:
        return [name]
    if proto in _UNMATCHABLE_PORTS:
        return []  # fail closed
    low = rule.port_min if rule.port_min is not None else 0
    high = rule.port_max if rule.port_max is not None else 65535
    out = []
    for value, mask in port_masks(low, high):
        if mask == 0:
            out.append(name)
        elif mask == 0xFFFF:
            out.append(f"{name},tp_dst={value}")
        else:
            out.append(f"{name},tp_dst={value:#x}/{mask:#x}")
    return out


class _Conjunctions:
    """Rules with a remote group or address group as conjunctive matches: dimension 1 is (port, protocol,
    state), the others the remote addresses. One conjunction per (direction, group, ethertype, remotes,
    statefulness); its id comes from a hash of that key (probed on collision), so it does not move when other
    groups come or go."""

    def __init__(self, state: FirewallState) -> None:
        self.members = state.members
        self.address_groups = state.address_groups
        self.ids: dict[tuple[str, str, str, str, str, bool], int] = {}
        self.taken: set[int] = set()

    def _id(self, key: tuple[str, str, str, str, str, bool]) -> int:
        if key not in self.ids:
            n = zlib.crc32(repr(key).encode()) & 0x7FFFFFFF
            while n in self.taken:
                n = (n + 1) & 0x7FFFFFFF
            self.ids[key] = n
            self.taken.add(n)
        return self.ids[key]

    def id(self, group: str, rule: Rule, stateful: bool) -> int | None:
        """The conjunction of a rule with a remote group or address group (None: a plain rule)."""
        if not (rule.remote_group or rule.remote_address_group):
            return None
        return self._id((rule.direction, group, rule.ethertype, rule.remote_group or "",
                         rule.remote_address_group or "", stateful))

    def remotes(self) -> list[Flow]:
        out: list[Flow] = []
        for (direction, _group, ethertype, remote, address_group, stateful), conj in sorted(self.ids.items()):
            table = EGRESS_RULES if direction == "egress" else INGRESS_RULES
            v6 = ethertype == "IPv6"
            side = ("ipv6_" if v6 else "nw_") + ("src" if direction == "ingress" else "dst")
            family = "ipv6" if v6 else "ip"
            dims = [x for x in ((remote, self.members.get(remote, ())),
                                (address_group, self.address_groups.get(address_group, ()))) if x[0]]
            for k, (_, addresses) in enumerate(dims, start=2):
                for net in _nets(addresses, 6 if v6 else 4):
                    out.append((table, CONJ, f"{family},{side}={net}", f"conjunction({conj},{k}/{len(dims) + 1})"))
            for state in [NEW, ESTABLISHED] if stateful else [""]:
                out.append((table, CONJ_ID, f"conj_id={conj},{family}{',' + state if state else ''}",
                            _accept(direction, state == NEW, "NXM_NX_REG5[]")))
        return out


def _rule(rule: Rule, ofport: int, stateful: bool, conj: int | None) -> list[Flow]:
    """A rule's flows for one port; with a conjunction (conj): dimension 1, (port, protocol, state)."""
    table = EGRESS_RULES if rule.direction == "egress" else INGRESS_RULES
    states = [NEW, ESTABLISHED] if stateful else [""]
    matches = [(f"reg5={ofport},{m}{',' + s if s else ''}", s) for m in rule_matches(rule) for s in states]
    if conj is None:
        return [(table, RULE, m, _accept(rule.direction, s == NEW, ofport)) for m, s in matches]
    dims = len([r for r in (rule.remote_group, rule.remote_address_group) if r]) + 1
    return [(table, CONJ, m, f"conjunction({conj},1/{dims})") for m, _ in matches]


def _nets(addresses: Iterable[str], version: int) -> list[str]:
    nets = [ipaddress.ip_network(a, strict=False) for a in addresses]
    same = [x for x in nets if x.version == version]
    return [str(x) for x in ipaddress.collapse_addresses(same)]  # type: ignore[type-var]
