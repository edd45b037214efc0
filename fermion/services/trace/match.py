"""Packet matching as the data plane does it: security-group rules as the nftables firewall and the Open vSwitch
firewall match them (fermion/rules.py, which the data plane uses too), FWaaS rules as dataplane/fwaas.py renders
them (first match wins), and longest-prefix route lookups. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from fermion import rules
from fermion.rpc.contracts import FirewallRule, SecurityRule
from fermion.rules import ICMP, ICMPV6, ip, net

TCP, UDP = 6, 17
PROTOCOLS = {"tcp": TCP, "udp": UDP, "icmp": ICMP}
EPHEMERAL = (32768, 60999)  # Linux's default local port range: the client side of a connection
ECHO = {4: (8, 0), 6: (128, 129)}  # (request, reply) ICMP types
T = TypeVar("T")


def contains(cidr: str, address: str) -> bool:
    n, a = net(cidr), ip(address)
    return n.version == a.version and a in n


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection (or, reversed, its replies). dport: a range, so that the replies'
    destination (the client's ephemeral port) is any port of EPHEMERAL."""

    version: int
    src: str
    dst: str
    protocol: int
    dport: tuple[int, int] | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None

    @classmethod
    def first(cls, version: int, src: str, dst: str, protocol: str, port: int | None) -> Packet:
        number = PROTOCOLS[protocol]
        if number == ICMP:
            return cls(version, src, dst, ICMPV6 if version == 6 else ICMP, None, ECHO[version][0], 0)
        return cls(version, src, dst, number, (port, port) if port is not None else None)

    def reply(self) -> Packet:
        if self.protocol in (ICMP, ICMPV6):
            return replace(self, src=self.dst, dst=self.src, icmp_type=ECHO[self.version][1])
        return replace(self, src=self.dst, dst=self.src, dport=EPHEMERAL)

    def to(self, dst: str) -> Packet:
        return replace(self, dst=dst)

    def from_(self, src: str) -> Packet:
        return replace(self, src=src)

    def with_port(self, port: int) -> Packet:
        return replace(self, dport=(port, port))


def sg_rule_matches(rule: SecurityRule, packet: Packet, remote: str, members: Mapping[str, Sequence[str]],
                    address_groups: Mapping[str, Sequence[str]]) -> bool:
    """Whether a security-group rule admits the packet (remote: the other side's address)."""
    return rules.admits(rule, packet.version, packet.protocol, packet.dport, packet.icmp_type, packet.icmp_code,
                        remote, members, address_groups)


def _range(text: str) -> tuple[int, int]:
    first, _, last = text.partition(":")
    return int(first), int(last or first)


def fw_rule_matches(rule: FirewallRule, packet: Packet) -> bool:
    """Whether a FWaaS rule matches the packet. The source port is the client's ephemeral port: a rule naming
    source ports matches only when its range holds all of EPHEMERAL."""
    if rule.ip_version != packet.version:
        return False
    if rule.source_ip and not contains(rule.source_ip, packet.src):
        return False
    if rule.destination_ip and not contains(rule.destination_ip, packet.dst):
        return False
    if rule.protocol is not None and rule.protocol != packet.protocol:
        return False
    if rule.source_port:
        low, high = _range(rule.source_port)
        if not (low <= EPHEMERAL[0] and EPHEMERAL[1] <= high):
            return False
    if rule.destination_port:
        low, high = _range(rule.destination_port)
        if packet.dport is None or not (low <= packet.dport[0] and packet.dport[1] <= high):
            return False
    return True


def lookup(routes: Iterable[tuple[str, T]], address: str) -> T | None:
    """The value of the longest prefix holding the address (the first given wins a tie)."""
    best: tuple[int, T] | None = None
    for cidr, value in routes:
        if contains(cidr, address):
            length = net(cidr).prefixlen
            if best is None or length > best[0]:
                best = (length, value)
    return best[1] if best is not None else None
