"""Security groups on a Linux-bridge host, enforced with nftables (Neutron's semantics).

The kernel has no conntrack in the nft bridge family (docs/kernel.md), so the work is split in two
tables of ours, both named ``fermion_sg``.  Ports with the same groups (and statefulness) share a *profile*;
the tables hold one small chain set per profile and per group, and a port adds only set and map elements, so
loading 1,000 ports is a handful of commands rather than tens of thousands.

``table bridge fermion_sg`` (stateless, sees the real bridge ports)
    ``prerouting``: resets the packet mark, sets mark bits 0-15 to the sending port's profile
    (``iifname map @port_profile``; bit 15: its groups are stateless) and, for filtered ports, jumps to
    ``antispoof``, which drops frames whose source MAC is not the port's (``port_macs``), ethertypes other
    than IPv4, IPv6 and ARP, ARP sender or IPv4/IPv6 source not allowed (``port_v4``/``port_v6``:
    ``ifname . mac . address`` sets built from the fixed IPs and the allowed address pairs, with ``*_nets``
    interval sets for pairs with a prefix), DHCP server replies and router advertisements.
    ``forward``: ``oifname vmap @to_port`` jumps to ``to-p<n>``, which ORs the receiving port's profile into
    mark bits 16-31.  ``postrouting`` clears the mark again.

``table inet fermion_sg`` (stateful, reached through br_netfilter, where iif/oif are the bridge)
    ``forward``: established connections between stateful (or unfiltered) sides pass at once; otherwise
    ``meta mark and 0xffff vmap @egress`` jumps to ``out-p<n>`` of the sender's profile;
    ``meta mark and 0xffff0000 vmap @ingress`` jumps to ``in-p<n>`` of the receiver's.  A profile chain holds
    the conntrack shortcut (stateful groups only), the always-allowed traffic (DHCP, ND), one
    ``jump sg-<group>-in|out`` per security group and a final ``drop``.  Group chains are shared by every
    profile that has the group; a matching ingress rule accepts, a matching egress rule continues
    (``goto admit``) with the receiver's ingress chain.  Remote groups are the named sets ``rg-<group>-v4|v6``,
    address groups the interval sets ``ag-<address group>-v4|v6``.
    ``zone`` (prerouting, raw priority): ``ct zone set iifname map @zones`` puts each network's traffic in
    its own conntrack zone, named by its bridge, so equal addresses in two networks never share state.

Traffic from or to a device that is not a managed port (port_security False, router and DHCP ports, vxlan)
carries no profile for that side and is not filtered there.

``render`` (pure) turns a FirewallState into a Model of both tables; ``diff`` turns two models into the nft
commands that change only what differs (a group's rules: the rules added appended, the rules taken away
deleted by handle; membership and ports: set and map elements; a new group combination: its profile
chains); ``Firewall`` keeps the last applied model, runs one ``nft -f`` transaction per apply and then cuts
the tracked connections the change no longer allows (revoke.py). On full resyncs (``repair``) it also reads
both tables back and puts back what drifted from the model (``drifts``, ``repair_commands``; the probe
reports the same comparison).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import re
import subprocess
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from fermion.dataplane import DataplaneError, netns, nftlist
from fermion.dataplane.conntrack import Conntrack
from fermion.dataplane.revoke import changed_ports, doomed
from fermion.dataplane.secgroups import (
    ICMP,
    ICMPV6,
    SRC_PORT_PROTOCOLS,
    FirewallState,
    Group,
    PortFilter,
    Rule,
    zone_bridges,
)

LOG = logging.getLogger(__name__)

TABLE = "fermion_sg"
MAX_PROFILES = 0x7FFF  # a profile's index fills 15 bits of the packet mark, one half per direction...
STATELESS = 0x8000  # ...and the 16th says its groups are stateless
MAX_ZONE = 0xFFFF  # conntrack zones are 16 bits; 0 is the default zone (traffic that is not bridged)
SRC_MASK = 0x0000FFFF
DST_MASK = 0xFFFF0000
ICMPV6_EGRESS_TYPES = "{ 130, 131, 132, 133, 135, 136, 143 }"  # MLD, RS, NS, NA, MLDv2 (never RA: 134)
ICMPV6_INGRESS_TYPES = "130-136"  # MLD, RS, RA, NS, NA
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_DEVICE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_NFT_LINE = re.compile(r"stdin:(\d+):")


# ------------------------------------------------------------------------------------------------ model
@dataclass(frozen=True)
class NftSet:
    """A named set (values all None) or map (key -> value). Shared between models: never mutated."""

    kind: str  # "set" | "map"
    spec: str  # "type ...; flags ...;"
    elements: Mapping[str, str | None]


@dataclass
class Table:
    family: str
    hooks: dict[str, str]  # base chain -> "type filter hook ... ;"
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every chain (base ones too) -> rules
    sets: dict[str, NftSet] = field(default_factory=dict)


@dataclass
class Model:
    bridge: Table
    inet: Table

    def tables(self) -> tuple[Table, Table]:
        return self.bridge, self.inet


K = TypeVar("K")
Profile = tuple[tuple[str, ...], bool]  # (sorted group ids, stateful): ports with equal profiles share chains


def _check_id(kind: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"{kind} id {value!r} cannot name an nft object")
    return value


def _mac(value: str) -> str:
    mac = value.lower()
    if not _MAC.fullmatch(mac):
        raise ValueError(f"bad MAC address {value!r}")
    return mac


def _elem_net(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def port_profile(port: PortFilter, stateful_groups: Mapping[str, bool]) -> Profile:
    # Neutron refuses to mix stateful and stateless groups on one port
    return tuple(sorted(set(port.groups))), all(stateful_groups.get(g, True) for g in port.groups)


def profiles(state: FirewallState) -> list[Profile]:
    """The profiles of the filtered ports, each once, in port order."""
    stateful = {g.id: g.stateful for g in state.groups}
    return list(dict.fromkeys(port_profile(p, stateful) for p in state.ports if p.port_security))


def allocate(wanted: Iterable[K], previous: Mapping[K, int], limit: int, what: str) -> dict[K, int]:
    """A stable number (1..limit) per key: kept while it is in use, the lowest free one when new."""
    wanted = list(wanted)
    numbers = {key: previous[key] for key in wanted if key in previous}
    used = set(numbers.values())
    free = 1
    for key in wanted:
        if key in numbers:
            continue
        while free in used:
            free += 1
        if free > limit:
            raise DataplaneError(f"more than {limit} {what} on one host")
        numbers[key] = free
        used.add(free)
    return numbers


def allocate_marks(wanted: Iterable[Profile], previous: Mapping[Profile, int]) -> dict[Profile, int]:
    return allocate(wanted, previous, MAX_PROFILES, "distinct security-group combinations")


def allocate_zones(state: FirewallState, previous: Mapping[str, int]) -> dict[str, int]:
    """A conntrack zone per network with a port on the host (Neutron: one zone per network)."""
    return allocate(sorted(set(zone_bridges(state).values())), previous, MAX_ZONE, "networks")


def remote_set(group_id: str, v6: bool) -> str:
    return f"rg-{_check_id('group', group_id)}-{'v6' if v6 else 'v4'}"


def address_set(address_group_id: str, v6: bool) -> str:
    return f"ag-{_check_id('address group', address_group_id)}-{'v6' if v6 else 'v4'}"


def group_chain(group_id: str, direction: str) -> str:
    return f"sg-{_check_id('group', group_id)}-{'in' if direction == 'ingress' else 'out'}"


@functools.lru_cache(maxsize=65536)  # a changed group re-renders only its new rules
def _rule_match(rule: Rule) -> str | None:
    """The nft match of one security-group rule, or None when it can never match (family mismatch)."""
    if rule.ethertype not in ("IPv4", "IPv6") or rule.direction not in ("ingress", "egress"):
        raise ValueError(f"bad rule {rule}")
    v6 = rule.ethertype == "IPv6"
    family = "ip6" if v6 else "ip"
    parts = ["meta nfproto ipv6" if v6 else "meta nfproto ipv4"]
    proto = ICMPV6 if v6 and rule.protocol == ICMP else rule.protocol  # Neutron: "icmp" on IPv6 is icmpv6
    if proto is not None:
        parts.append(f"meta l4proto {proto}")
        if proto == (ICMPV6 if v6 else ICMP):
            keyword = "icmpv6" if v6 else "icmp"
            if rule.port_min is not None:
                parts.append(f"{keyword} type {rule.port_min}")
                if rule.port_max is not None:
                    parts.append(f"{keyword} code {rule.port_max}")
        elif proto in SRC_PORT_PROTOCOLS and (rule.port_min is not None or rule.port_max is not None):
            low = rule.port_min if rule.port_min is not None else 0
            high = rule.port_max if rule.port_max is not None else 65535
            parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
    side = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != (6 if v6 else 4):
            return None
        if net.prefixlen:
            parts.append(f"{family} {side} {_elem_net(net)}")
    if rule.remote_group:
        parts.append(f"{family} {side} @{remote_set(rule.remote_group, v6)}")
    if rule.remote_address_group:
        parts.append(f"{family} {side} @{address_set(rule.remote_address_group, v6)}")
    return " ".join(parts)


@functools.lru_cache(maxsize=4096)
def _group_chains(group: Group) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str], frozenset[str]]:
    """(ingress rules, egress rules, remote groups used, address groups used) of one group's two shared
    chains."""
    chains: dict[str, list[str]] = {"ingress": [], "egress": []}
    remotes: set[str] = set()
    address_groups: set[str] = set()
    for rule in group.rules:
        match = _rule_match(rule)
        if match is None:
            continue
        if rule.remote_group:
            remotes.add(rule.remote_group)
        if rule.remote_address_group:
            address_groups.add(rule.remote_address_group)
        chains[rule.direction].append(f"{match} accept" if rule.direction == "ingress" else f"{match} goto admit")
    return tuple(chains["ingress"]), tuple(chains["egress"]), frozenset(remotes), frozenset(address_groups)


def _address_elements(port: PortFilter, v6: bool) -> tuple[list[str], list[str]]:
    """(single addresses, networks) as mac . address pairs a port may send from: fixed IPs with its MAC,
    allowed pairs with theirs; overlapping networks collapsed (the kernel rejects overlaps).  Link-local
    IPv6 is allowed by a rule for any of the port's MACs, so it is in neither."""
    by_mac: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    own = _mac(port.mac)
    for ip in port.ips:
        net = ipaddress.ip_network(ip, strict=False)
        if (net.version == 6) == v6:
            by_mac.setdefault(own, []).append(net)
    for ip, mac in port.allowed_pairs:
        net = ipaddress.ip_network(ip, strict=False)
        if (net.version == 6) == v6:
            by_mac.setdefault(_mac(mac or port.mac), []).append(net)
    single: list[str] = []
    nets: list[str] = []
    for mac in sorted(by_mac):
        for net in ipaddress.collapse_addresses(by_mac[mac]):  # type: ignore[type-var]
            (single if net.prefixlen == net.max_prefixlen else nets).append(f"{mac} . {_elem_net(net)}")
    return single, nets


@dataclass(frozen=True)
class _PortElements:
    """What one filtered port adds to the bridge table: elements of the shared sets and maps."""

    sets: Mapping[str, tuple[str, ...]]  # set name -> elements
    profile: tuple[str, str]  # port_profile map element
    to_port: tuple[str, str]  # to_port map element


@functools.lru_cache(maxsize=16384)
def _port_elements(port: PortFilter, mark: int, value: int) -> _PortElements:
    _check_id("port", port.id)
    if not _DEVICE.fullmatch(port.device):
        raise ValueError(f"bad device name {port.device!r}")
    dev = f'"{port.device}"'
    macs = sorted({_mac(port.mac), *(_mac(m or port.mac) for _, m in port.allowed_pairs)})
    v4, v4_nets = _address_elements(port, v6=False)
    v6, v6_nets = _address_elements(port, v6=True)
    found = {"port_macs": macs, "port_v4": v4, "port_v4_nets": v4_nets, "port_v6": v6, "port_v6_nets": v6_nets}
    return _PortElements({name: tuple(f"{dev} . {e}" for e in items) for name, items in found.items()},
                         (dev, f"{value:#x}"), (dev, f"jump to-p{mark}"))


@functools.lru_cache(maxsize=4096)
def _profile_chains(profile: Profile, mark: int) -> dict[str, tuple[str, ...]]:
    """The inet chains of one profile: the conntrack shortcut (stateful only), the traffic always allowed,
    one jump per group and the default drop."""
    groups, stateful = profile
    out: list[str] = []
    into: list[str] = []
    if stateful:
        out += ["ct state established,related goto admit", "ct state invalid drop"]
        into += ["ct state established,related accept", "ct state invalid drop"]
    out += ["meta nfproto ipv4 udp sport 68 udp dport 67 goto admit",  # DHCP client
            "meta nfproto ipv6 udp sport 546 udp dport 547 goto admit",
            f"icmpv6 type {ICMPV6_EGRESS_TYPES} goto admit"]
    into += ["meta nfproto ipv4 udp sport 67 udp dport 68 accept",
             "meta nfproto ipv6 udp sport 547 udp dport 546 accept",
             f"icmpv6 type {ICMPV6_INGRESS_TYPES} accept"]
    out += [f"jump {group_chain(g, 'egress')}" for g in groups] + ["drop"]
    into += [f"jump {group_chain(g, 'ingress')}" for g in groups] + ["drop"]
    return {f"out-p{mark}": tuple(out), f"in-p{mark}": tuple(into)}


@functools.lru_cache(maxsize=4096)
def _remote_sets(group_id: str, members: tuple[str, ...]) -> tuple[NftSet, NftSet]:
    addresses = [ipaddress.ip_address(a) for a in members]
    v4 = sorted(a for a in addresses if a.version == 4)
    v6 = sorted(a for a in addresses if a.version == 6)
    return (NftSet("set", "type ipv4_addr;", {str(a): None for a in v4}),
            NftSet("set", "type ipv6_addr;", {str(a): None for a in v6}))


@functools.lru_cache(maxsize=4096)
def _address_sets(cidrs: tuple[str, ...]) -> tuple[NftSet, NftSet]:
    """An address group's CIDRs as two interval sets. Overlaps are collapsed (the kernel refuses them), so
    a change of the group's addresses is a change of a few elements."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    out = []
    for version in (4, 6):
        same = [n for n in nets if n.version == version]
        merged = ipaddress.collapse_addresses(same)  # type: ignore[type-var]
        out.append(NftSet("set", f"type {'ipv6_addr' if version == 6 else 'ipv4_addr'}; flags interval;",
                          {_elem_net(n): None for n in sorted(merged)}))
    return out[0], out[1]


BRIDGE_HOOKS = {
    "prerouting": "type filter hook prerouting priority -200; policy accept;",
    "forward": "type filter hook forward priority -200; policy accept;",  # before br_netfilter (0)
    "postrouting": "type filter hook postrouting priority 100; policy accept;",
}
INET_HOOKS = {
    "forward": "type filter hook forward priority 0; policy accept;",
    "zone": "type filter hook prerouting priority -300; policy accept;",  # before conntrack (-200)
}
NOTRACK_HOOKS = {  # raw priority: before conntrack sees the packet
    "tunnel-in": "type filter hook prerouting priority -300; policy accept;",
    "tunnel-out": "type filter hook output priority -300; policy accept;",
}
VXLAN_PORT = 4789
_V4 = "iifname . ether saddr . ip saddr"
_V6 = "iifname . ether saddr . ip6 saddr"
_ARP = "iifname . arp saddr ether . arp saddr ip"


def _antispoof(v4_nets: bool, v6_nets: bool) -> tuple[str, ...]:
    """The shared anti-spoofing chain. Single addresses are hash lookups; the interval sets of networks
    (allowed address pairs with a prefix) are only consulted when some port on the host has one."""
    v4 = " @port_v4" + (f" {_V4} != @port_v4_nets" if v4_nets else "")
    arp = " @port_v4" + (f" {_ARP} != @port_v4_nets" if v4_nets else "")
    v6 = " @port_v6" + (f" {_V6} != @port_v6_nets" if v6_nets else "")
    return (
        "iifname . ether saddr != @port_macs drop",
        # anything but IP and ARP (802.1Q-tagged frames included) would bypass the checks below and the inet
        # hooks (br_netfilter skips tagged frames)
        "ether type != { ip, ip6, arp } drop",
        "arp saddr ip 0.0.0.0 iifname . arp saddr ether @port_macs return",  # ARP probe (conflict detection)
        f"{_ARP} !={arp} drop",
        "ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 return",  # DHCP discover
        f"{_V4} !={v4} drop",
        "ip6 saddr :: icmpv6 type { nd-neighbor-solicit, mld-listener-report, mld2-listener-report } return",
        f"ip6 saddr != fe80::/64 {_V6} !={v6} drop",  # link-local: any of the port's MACs (checked above)
        "udp sport 67 udp dport 68 drop",  # no DHCP server in an instance
        "udp sport 547 udp dport 546 drop",
        "icmpv6 type nd-router-advert drop",  # no router advertisements either
    )


_SETS = {  # name -> (kind, spec) of the bridge table's shared sets, filled per port
    "port_macs": ("set", "type ifname . ether_addr;"),
    "port_v4": ("set", "type ifname . ether_addr . ipv4_addr;"),
    "port_v4_nets": ("set", "type ifname . ether_addr . ipv4_addr; flags interval;"),
    "port_v6": ("set", "type ifname . ether_addr . ipv6_addr;"),
    "port_v6_nets": ("set", "type ifname . ether_addr . ipv6_addr; flags interval;"),
    "port_profile": ("map", "type ifname : mark;"),
    "to_port": ("map", "type ifname : verdict;"),
}


def render(state: FirewallState, marks: Mapping[Profile, int], zones: Mapping[str, int] | None = None) -> Model:
    """The complete content of our two tables for this state (marks: from allocate_marks(profiles(state)),
    zones: from allocate_zones(state, ...)). Pure; the pieces are memoized on their (immutable) inputs."""
    if zones is None:
        zones = allocate_zones(state, {})
    groups = {g.id: g for g in state.groups}
    stateful = {g.id: g.stateful for g in state.groups}
    bridge = Table("bridge", dict(BRIDGE_HOOKS), {
        "prerouting": ("meta mark set 0x0", "meta mark set iifname map @port_profile",
                       f"meta mark and {SRC_MASK:#x} != 0x0 jump antispoof"),
        "forward": ("oifname vmap @to_port",),
        "postrouting": ("meta mark set 0x0",),  # the mark never leaves the bridge (vxlan routing, qdiscs)
    })
    inet = Table("inet", dict(INET_HOOKS), {
        "forward": (
            # replies and the rest of allowed connections, unless a side is stateless: one rule, no lookups
            f"meta mark and {STATELESS | STATELESS << 16:#x} == 0x0 ct state established,related accept",
            f"meta mark and {SRC_MASK:#x} vmap @egress", f"meta mark and {DST_MASK:#x} vmap @ingress"),
        "admit": (f"meta mark and {DST_MASK:#x} vmap @ingress", "accept"),
        # two networks with the same addresses never share connection state: each has its own zone (the
        # input device of a bridged packet is its bridge here)
        "zone": ("ct zone set iifname map @zones",),
    })
    inet.sets["zones"] = NftSet("map", "typeof iifname : ct zone;", {
        f'"{bridge}"': str(zones[network]) for bridge, network in sorted(zone_bridges(state).items())})
    if state.tunnel_ip:
        # our ct rules turn conntrack on for the whole host; the encapsulated copies of the instances'
        # packets need none of it and would cost a second lookup each (about a tenth of the throughput)
        ip = ipaddress.ip_address(state.tunnel_ip)
        family = "ip6" if ip.version == 6 else "ip"
        inet.hooks.update(NOTRACK_HOOKS)
        inet.chains["tunnel-in"] = (f"{family} daddr {ip} udp dport {VXLAN_PORT} notrack",)
        inet.chains["tunnel-out"] = (f"{family} saddr {ip} udp dport {VXLAN_PORT} notrack",)
    elements: dict[str, dict[str, str | None]] = {name: {} for name in _SETS}
    used: dict[Profile, int] = {}
    for port in state.ports:
        if not port.port_security:
            continue
        profile = port_profile(port, stateful)
        mark = marks[profile]
        used[profile] = mark
        e = _port_elements(port, mark, mark if profile[1] else mark | STATELESS)
        for name, items in e.sets.items():
            elements[name].update(dict.fromkeys(items))
        elements["port_profile"][e.profile[0]] = e.profile[1]
        elements["to_port"][e.to_port[0]] = e.to_port[1]
    for name, (kind, spec) in _SETS.items():
        bridge.sets[name] = NftSet(kind, spec, elements[name])
    bridge.chains["antispoof"] = _antispoof(bool(elements["port_v4_nets"]), bool(elements["port_v6_nets"]))
    egress: dict[str, str | None] = {}
    ingress: dict[str, str | None] = {}
    used_groups: set[str] = set()
    for profile, mark in sorted(used.items(), key=lambda item: item[1]):
        value = mark if profile[1] else mark | STATELESS
        bridge.chains[f"to-p{mark}"] = (f"meta mark set meta mark or {value << 16:#x}",)
        inet.chains.update(_profile_chains(profile, mark))
        egress[f"{value:#x}"] = f"jump out-p{mark}"
        ingress[f"{value << 16:#x}"] = f"jump in-p{mark}"
        used_groups.update(profile[0])
    inet.sets["egress"] = NftSet("map", "type mark : verdict;", egress)
    inet.sets["ingress"] = NftSet("map", "type mark : verdict;", ingress)
    remotes: set[str] = set()
    address_groups: set[str] = set()
    for gid in sorted(used_groups):
        into, out, used_remotes, used_address_groups = _group_chains(groups.get(gid, Group(gid, True, ())))
        inet.chains[group_chain(gid, "ingress")] = into
        inet.chains[group_chain(gid, "egress")] = out
        remotes |= used_remotes
        address_groups |= used_address_groups
    for gid in sorted(remotes):
        v4, v6 = _remote_sets(gid, tuple(state.members.get(gid, ())))
        inet.sets[remote_set(gid, False)] = v4
        inet.sets[remote_set(gid, True)] = v6
    for agid in sorted(address_groups):
        v4, v6 = _address_sets(tuple(sorted(state.address_groups.get(agid, ()))))
        inet.sets[address_set(agid, False)] = v4
        inet.sets[address_set(agid, True)] = v6
    return Model(bridge, inet)


# ------------------------------------------------------------------------------------------------ commands
def _elements(items: Iterable[tuple[str, str | None]]) -> str:
    return ", ".join(k if v is None else f"{k} : {v}" for k, v in items)


def full_commands(model: Model) -> list[str]:
    """Replace both tables in one transaction (conntrack entries are not touched)."""
    return [line for t in model.tables() for line in table_commands(t)]


def table_commands(t: Table) -> list[str]:
    """Replace one table (or make it)."""
    ref = f"{t.family} {TABLE}"
    lines = [f"add table {ref}", f"delete table {ref}", f"add table {ref}"]
    for name in t.chains:
        hook = t.hooks.get(name)
        lines.append(f"add chain {ref} {name} {{ {hook} }}" if hook else f"add chain {ref} {name}")
    for name, s in t.sets.items():
        lines.append(f"add {s.kind} {ref} {name} {{ {s.spec} }}")
    for name, s in t.sets.items():
        if s.elements:
            lines.append(f"add element {ref} {name} {{ {_elements(s.elements.items())} }}")
    for name, rules in t.chains.items():
        lines += [f"add rule {ref} {name} {r}" for r in rules]
    return lines


def listing(t: Table) -> nftlist.Listing:
    """A table of the model as its listing reads back (nftlist.read of `nft list table`)."""
    return nftlist.Listing(
        chains=dict(t.chains), hooks=dict(t.hooks), specs={n: (s.kind, f"{s.spec} ") for n, s in t.sets.items()},
        sets={n: {nftlist.normalize(k if v is None else f"{k} : {v}") for k, v in s.elements.items()}
              for n, s in t.sets.items()})


def drifts(model: Model, kernel: Mapping[str, nftlist.Listing | None]) -> dict[str, nftlist.Drift]:
    """family -> how the kernel's table (kernel: family -> its listing read back, None: none) differs from
    the model's."""
    return {t.family: nftlist.drift(listing(t), kernel.get(t.family)) for t in model.tables()}


def repair_commands(model: Model, found: Mapping[str, nftlist.Drift]) -> list[str]:
    """The commands that put back what drifted (one transaction): a missing table whole, in a table that is
    there only what differs (elements, chains refilled), so established connections see nothing."""
    lines: list[str] = []
    for t in model.tables():
        drift = found[t.family]
        if drift.table:
            lines += table_commands(t)
        elif drift:
            lines += nftlist.repair(f"{t.family} {TABLE}", listing(t), drift)
    return lines


Handles = dict[tuple[str, str], list[int | None]]  # (family, chain) -> kernel handle of each rule, in order


def rule_edit(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[list[int], list[int], list[str]]:
    """(positions of old kept, positions of old removed, rules to append) turning a group chain into new.
    A group chain's rules only accept or only continue, so their order does not matter: what stays keeps
    its place."""
    want = Counter(new)
    kept: list[int] = []
    removed: list[int] = []
    for i, rule in enumerate(old):
        if want[rule] > 0:
            want[rule] -= 1
            kept.append(i)
        else:
            removed.append(i)
    return kept, removed, list(want.elements())


def diff(old: Model, new: Model, handles: Handles | None = None, handles_after: Handles | None = None,
         ) -> list[str] | None:
    """Commands turning old into new, touching only what changed; None when a base chain or a set's type
    changed (never expected: the caller then replaces the tables).

    A group's chain is edited rule by rule when that is cheaper than a refill and the handles of the rules
    it loses are known (handles: aligned with old's chains), else flushed and refilled; new's group chains
    are updated to the order the kernel will hold, and handles_after (when given) receives the handles
    still known, aligned with them."""
    heads: list[str] = []
    drops: list[str] = []
    fills: list[str] = []
    adds: list[str] = []
    tails: list[str] = []
    for o, n in zip(old.tables(), new.tables(), strict=True):
        ref = f"{n.family} {TABLE}"
        if o.hooks != n.hooks:
            return None
        for name, s in n.sets.items():
            before = o.sets.get(name)
            if before is s:
                continue
            if before is None:
                heads.append(f"add {s.kind} {ref} {name} {{ {s.spec} }}")
                before = NftSet(s.kind, s.spec, {})
            elif (before.kind, before.spec) != (s.kind, s.spec):
                return None
            gone = [k for k, v in before.elements.items() if k not in s.elements or s.elements[k] != v]
            came = [(k, v) for k, v in s.elements.items() if k not in before.elements or before.elements[k] != v]
            if gone:
                drops.append(f"delete element {ref} {name} {{ {', '.join(gone)} }}")
            if came:
                adds.append(f"add element {ref} {name} {{ {_elements(came)} }}")
        for name, rules in list(n.chains.items()):
            key = (n.family, name)
            if name not in o.chains:
                heads.append(f"add chain {ref} {name}")
                fills += [f"add rule {ref} {name} {r}" for r in rules]
                continue
            was = o.chains[name]
            known = (handles or {}).get(key)
            if known is None or len(known) != len(was):
                known = [None] * len(was)
            if was == rules:
                if handles_after is not None:
                    handles_after[key] = known
                continue
            if name.startswith("sg-"):
                kept, removed, added = rule_edit(was, rules)
                if len(removed) + len(added) <= len(rules) and all(known[i] is not None for i in removed):
                    fills += [f"delete rule {ref} {name} handle {known[i]}" for i in removed]
                    fills += [f"add rule {ref} {name} {r}" for r in added]
                    n.chains[name] = (*(was[i] for i in kept), *added)
                    if handles_after is not None:
                        handles_after[key] = [known[i] for i in kept] + [None] * len(added)
                    continue
            fills.append(f"flush chain {ref} {name}")
            fills += [f"add rule {ref} {name} {r}" for r in rules]
        for name in o.chains:
            if name not in n.chains:
                fills.append(f"flush chain {ref} {name}")  # before any chain or set it refers to goes
                tails.append(f"delete chain {ref} {name}")
        tails += [f"delete {s.kind} {ref} {name}" for name, s in o.sets.items() if name not in n.sets]
    return heads + drops + fills + adds + tails


def canonical(model: Model) -> Model:
    """The model with each group chain's rules sorted: the same rules in any order enforce the same."""
    return Model(*(Table(t.family, t.hooks, {k: tuple(sorted(v)) if k.startswith("sg-") else v
                                             for k, v in t.chains.items()}, t.sets) for t in model.tables()))


_HANDLE = re.compile(r"# handle (\d+)$")


def parse_handles(listing: str) -> list[int]:
    """The handles of a chain's rules, in order, from ``nft --handle list chain``."""
    return [int(m.group(1)) for line in listing.splitlines()[1:]
            if (m := _HANDLE.search(line.strip())) and not line.strip().startswith(("chain ", "table "))]


# ------------------------------------------------------------------------------------------------ shell
STAMP_TABLE = f"{TABLE}_applied"  # holds only a comment: the digest of the rules in our tables


def _digest(lines: list[str]) -> str:
    return "sha256=" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def _stamp(digest: str) -> list[str]:
    ref = f"inet {STAMP_TABLE}"
    return [f"add table {ref}", f"delete table {ref}", f'add table {ref} {{ comment "{digest}"; }}']


class Firewall:
    """Security groups of one host (netns: the namespace playing the host's root; None: the real root).

    apply() keeps the last applied model in memory; an incremental apply is one ``nft -f`` transaction with
    only the differences, a full one replaces our two tables atomically.  Then the tracked connections the
    change may concern are checked against the new rules and the refused ones deleted, so a revoked flow
    stops at its next packet.  Not thread-safe across instances managing the same namespace; one instance
    may be shared by threads.
    """

    def __init__(self, netns: str | None = None, timeout: float = 60.0, conntrack: Conntrack | None = None) -> None:
        self.netns = netns
        self.timeout = timeout
        self.conntrack = conntrack or Conntrack(netns)
        self._model: Model | None = None
        self._marks: dict[Profile, int] = {}
        self._zones: dict[str, int] = {}
        self._state: FirewallState | None = None
        self._handles: Handles = {}  # of the group chains' rules, aligned with the model; learnt when needed
        self._unchecked: set[str] | None = None  # ports whose connections still need checking (None: all)
        self._purge: set[int] = set()  # zones of networks that left the host: their connections go
        self._lock = threading.Lock()
        self.revoked = 0  # connections deleted so far (tests, logs)

    def apply(self, state: FirewallState, full: bool = False, audit: bool = False, repair: bool = False) -> int:
        """Make the kernel enforce state; return the number of nft commands run (0: nothing changed).
        audit: check every tracked connection in our zones against the rules, not only those a change
        concerns (full resyncs: a change made while the agent was away is caught too).
        repair: then read our two tables back from the kernel (one listing each) and put back what differs
        from the model, such as an element or a chain deleted by hand (full resyncs).

        The digest of what is applied is kept in a tiny table beside ours, so an agent that restarts finds
        the kernel already right and replaces nothing (and established traffic sees no change at all)."""
        with self._lock:
            first = self._model is None
            marks = allocate_marks(profiles(state), self._marks)
            if first:
                known = self._kernel_zones()
                bridges = zone_bridges(state)
                self._zones = {bridges[b]: z for b, z in known.items() if b in bridges}
                if len(set(self._zones.values())) < len(self._zones):
                    self._zones = {}  # not ours to trust: start afresh
                self._purge |= set(known.values())
            zones = allocate_zones(state, self._zones)
            model = render(state, marks, zones)
            lines: list[str] | None = None
            after: Handles = {}
            if not full and self._model is not None:
                self._learn_handles(self._model, model)
                lines = diff(self._model, model, self._handles, after)
            replaced = False
            if lines is None or lines:
                lines, incremental = self._commit(model, lines, full, first)
                self._handles = after if incremental else {}
                replaced = bool(lines) and not incremental
            if repair and not replaced:
                lines = lines + self._repair(model)
            old_state, old_zones = self._state, self._zones
            self._purge |= set(old_zones.values())
            self._model, self._marks, self._zones, self._state = model, marks, zones, state
            if first or audit:
                self._unchecked = None
            elif old_state is not None and self._unchecked is not None:
                self._unchecked |= changed_ports(old_state, state, old_zones, zones)
            self._revoke(old_state, old_zones)
            return len(lines)

    def _commit(self, model: Model, lines: list[str] | None, full: bool, first: bool) -> tuple[list[str], bool]:
        """Run the changes (lines; None: replace the tables); return what ran and whether it was them."""
        stamp = _stamp(_digest(full_commands(canonical(model))))
        if lines is None:
            if not full and first and self._applied() == stamp[-1]:
                return [], False  # a restart: the kernel already enforces it
            self._enable_br_netfilter()
        else:
            # guards: no-ops while both tables exist, an error when one vanished behind our back
            try:
                self._nft([f"add chain bridge {TABLE} prerouting", f"add chain inet {TABLE} admit", *lines, *stamp])
                return lines, True
            except DataplaneError as err:  # our tables were changed behind our back: rebuild them
                LOG.warning("incremental firewall update in %s failed (%s); replacing the tables",
                            self.netns or "root namespace", err)
        everything = full_commands(model)  # only when the tables are replaced: an incremental apply needs none
        self._nft(everything + stamp)
        return everything, False

    def _repair(self, model: Model) -> list[str]:
        """Put back what the kernel's tables lost or gained behind our back; return the commands run."""
        found = drifts(model, {t.family: self._listing(t.family) for t in model.tables()})
        if not any(found.values()):
            return []
        missing: list[str] = []
        extra: list[str] = []
        for family, drift in found.items():
            lost, more = nftlist.describe(drift, f"chain {family} {TABLE} {{}}", f"set {family} {TABLE} {{}}")
            missing += [f"table {family} {TABLE}"] if drift.table else lost
            extra += more
        LOG.warning("%s: firewall drifted from what was applied (missing: %s; extra: %s): repairing",
                    self.netns or "root namespace", "; ".join(missing[:10]) or "none", "; ".join(extra[:10]) or "none")
        if any(d.table for d in found.values()):
            self._enable_br_netfilter()
        lines = repair_commands(model, found)
        stamp = _stamp(_digest(full_commands(canonical(model))))
        self._handles = {}  # refilled chains have new handles
        try:
            self._nft(lines + stamp)
            return lines
        except DataplaneError as err:  # e.g. a chain of ours someone else's rule jumps to
            LOG.warning("repairing the firewall in %s failed (%s); replacing the tables",
                        self.netns or "root namespace", err)
        everything = full_commands(model)
        self._nft(everything + stamp)
        return everything

    def _learn_handles(self, old: Model, new: Model) -> None:
        """Read the handles of the group chains that are to lose rules whose handles we do not know (after
        a full load or a refill): one short listing per such chain, instead of refilling it."""
        for name, rules in new.inet.chains.items():
            before = old.inet.chains.get(name)
            if not name.startswith("sg-") or before is None or before == rules:
                continue
            _, removed, added = rule_edit(before, rules)
            known = self._handles.get(("inet", name))
            if not removed or len(removed) + len(added) > len(rules):
                continue
            if known is not None and len(known) == len(before) and all(known[i] is not None for i in removed):
                continue
            try:
                found = self._chain_handles(name)
            except DataplaneError:
                continue  # the chain is refilled instead
            if len(found) == len(before):
                self._handles[("inet", name)] = list(found)

    def _chain_handles(self, chain: str) -> list[int]:
        return parse_handles(self._run(["nft", "--handle", "list", "chain", "inet", TABLE, chain], None).stdout)

    def _revoke(self, old: FirewallState | None, old_zones: Mapping[str, int]) -> None:
        """Delete the tracked connections the rules now refuse; what fails is checked again next time."""
        self._purge -= set(self._zones.values())
        if self._unchecked is not None and not self._unchecked and not self._purge:
            return
        assert self._state is not None
        try:
            flows = self.conntrack.flows()
            gone = doomed(flows, old, self._state, old_zones, self._zones, self._unchecked, self._purge)
            if gone:
                count = self.conntrack.delete(gone)
                self.revoked += count
                LOG.info("%s: %d connection(s) no longer allowed were cut", self.netns or "root namespace", count)
            self._unchecked, self._purge = set(), set()
        except DataplaneError as err:
            LOG.warning("connection tracking in %s: %s (checked again at the next change)",
                        self.netns or "root namespace", err)

    def _kernel_zones(self) -> dict[str, int]:
        """bridge -> zone as a previous run left them in our map: a restart keeps the zones, and with them
        the connections they track."""
        try:
            out = self._run(["nft", "list", "map", "inet", TABLE, "zones"], None).stdout
        except DataplaneError:
            return {}
        return {device: int(zone) for device, zone in re.findall(r'"([^"]+)" : (\d+)', out)}

    def _applied(self) -> str | None:
        """The stamp line of what the kernel holds, or None."""
        try:
            out = self._run(["nft", "list", "table", "inet", STAMP_TABLE], None).stdout
        except DataplaneError:
            return None
        found = re.search(r'comment "([^"]*)"', out)
        return _stamp(found.group(1))[-1] if found else None

    def probe(self, state: FirewallState, device: str) -> tuple[list[str], list[str], list[str]]:
        """(checked, missing, extra) for one port's filters: what state renders for it (its set and map
        elements, its profile's and groups' chains, the remote and address sets they use) against what the
        kernel's two tables hold: the part of what the next full resync would repair (_repair) that
        concerns the port."""
        with self._lock:
            model = render(state, allocate_marks(profiles(state), self._marks), allocate_zones(state, self._zones))
        key = f'"{device}"'
        value = model.bridge.sets["port_profile"].elements.get(key)
        jump = model.bridge.sets["to_port"].elements.get(key)
        if value is None or jump is None:  # no filters for it (port security off, or not on this host)
            return [f"filters of {device}: none wanted"], [], []
        found = drifts(model, {t.family: self._listing(t.family) for t in model.tables()})
        mark = int(jump.rsplit("-p", 1)[1])
        chains = {"bridge": [f"to-p{mark}"], "inet": [f"out-p{mark}", f"in-p{mark}"]}
        chains["inet"] += sorted({r.split()[1] for c in chains["inet"] for r in model.inet.chains.get(c, ())
                                  if r.startswith("jump sg-")})
        used = {n for c in chains["inet"] for r in model.inet.chains.get(c, ()) for n in re.findall(r"@([\w.-]+)", r)}
        marks = {"egress": value, "ingress": f"{int(value, 16) << 16:#x}"}
        sets = {"bridge": set(model.bridge.sets), "inet": used | set(marks)}

        def mine(family: str, kind: str, name: str, element: str | None) -> bool:
            if kind == "chain":
                return name in chains[family]
            if name not in sets[family] or element is None:
                return name in sets[family]
            if family == "bridge":  # shared sets: only this port's elements count
                return element.startswith(f"{key} ") or element == key
            return name not in marks or element.split(" : ")[0] == marks[name]

        checked = [f"chain {family} {TABLE} {name}" for family, names in chains.items() for name in names]
        checked += [f"set {family} {TABLE} {name}" for family, names in sets.items() for name in sorted(names)
                    if name in getattr(model, family).sets]
        missing: list[str] = []
        extra: list[str] = []
        for family, drift in found.items():
            if drift.table:
                missing.append(f"table {family} {TABLE}")
                continue
            lost, more = nftlist.describe(drift, f"chain {family} {TABLE} {{}}", f"set {family} {TABLE} {{}}",
                                          functools.partial(mine, family))
            missing += lost
            extra += more
        return checked, missing, extra

    def _listing(self, family: str) -> nftlist.Listing | None:
        """Our table of that family as the kernel holds it; None when there is none."""
        try:
            return nftlist.read(self._run(["nft", "list", "table", family, TABLE], None).stdout)
        except DataplaneError as err:
            if "No such file or directory" in str(err):
                return None
            raise

    def observe(self) -> bool:
        """Whether both of our tables exist in the kernel."""
        out = self._run(["nft", "list", "tables"], None).stdout.split("\n")
        have = {line.strip() for line in out}
        return {f"table bridge {TABLE}", f"table inet {TABLE}"} <= have

    def remove(self) -> None:
        """Delete our tables (and forget what was applied); other tables are never touched."""
        with self._lock:
            self._nft([f"{cmd} table {family} {TABLE}" for family in ("bridge", "inet") for cmd in ("add", "delete")]
                      + [f"add table inet {STAMP_TABLE}", f"delete table inet {STAMP_TABLE}"])
            self._model, self._marks, self._zones, self._state, self._handles = None, {}, {}, None, {}

    def close(self) -> None:
        self.conntrack.close()

    # ------------------------------------------------------------ kernel
    def _argv(self, argv: list[str]) -> list[str]:
        if self.netns is None:
            return argv
        return ["nsenter", f"--net={netns.RUN}/{self.netns}", *argv]

    def _run(self, argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(self._argv(argv), input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DataplaneError(f"{' '.join(argv)} in {self.netns or 'root namespace'}: {err}") from err
        if proc.returncode != 0:
            raise DataplaneError(f"{' '.join(argv)} in {self.netns or 'root namespace'}: "
                                 f"{proc.stderr.strip() or proc.returncode}")
        return proc

    def _nft(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n"
        try:
            self._run(["nft", "-f", "-"], text)
        except DataplaneError as err:
            found = _NFT_LINE.search(str(err))
            if found and 0 < int(found.group(1)) <= len(lines):
                raise DataplaneError(f"{err}\noffending line {found.group(1)}: {lines[int(found.group(1)) - 1]}") \
                    from err
            raise

    def _enable_br_netfilter(self) -> None:
        """Bridged traffic must reach the inet hooks (the default in a new namespace, but make sure)."""
        self._run(["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1",
                   "net.bridge.bridge-nf-call-ip6tables=1"], None)
