"""Whether a security-group rule admits a connection's first packet, as the nftables firewall and the Open
vSwitch firewall match it. Shared by the data plane (dataplane/revoke.py: which tracked connections a change
cuts) and the server (services/trace: why A can or cannot reach B), so the two can never disagree. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Protocol

ICMP, ICMPV6 = 1, 58
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})  # tcp, udp, dccp, sctp, udplite: port ranges apply
IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class SgRule(Protocol):
    """The fields of a security-group rule that matching reads (the RPC contract's and the data plane's)."""

    @property
    def ethertype(self) -> str: ...
    @property
    def protocol(self) -> int | None: ...
    @property
    def port_min(self) -> int | None: ...
    @property
    def port_max(self) -> int | None: ...
    @property
    def remote_ip_prefix(self) -> str | None: ...
    @property
    def remote_group(self) -> str | None: ...
    @property
    def remote_address_group(self) -> str | None: ...


@lru_cache(maxsize=65536)
def net(value: str) -> IpNet:
    return ipaddress.ip_network(value, strict=False)


@lru_cache(maxsize=65536)
def ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(value)


def within(address: str, cidrs: Iterable[str]) -> bool:
    """Whether the address is in one of the CIDRs (or equals one of the addresses)."""
    a = ip(address)
    return any(a in net(c) for c in cidrs)


def admits(
    rule: SgRule,
    version: int,
    protocol: int,
    dport: tuple[int, int] | None,
    icmp_type: int | None,
    icmp_code: int | None,
    remote: str,
    members: Mapping[str, Iterable[str]],
    address_groups: Mapping[str, Iterable[str]],
) -> bool:
    """Whether the rule matches the packet. dport: the range of destination ports the packet may have (the
    rule must hold all of it); remote: the other side's address; members: the remote groups' addresses;
    address_groups: the address groups' CIDRs."""
    v6 = rule.ethertype == "IPv6"
    if (version == 6) != v6:
        return False
    proto = ICMPV6 if v6 and rule.protocol == ICMP else rule.protocol  # "icmp" in an IPv6 rule is ICMPv6
    if proto is not None:
        if protocol != proto:
            return False
        if proto == (ICMPV6 if v6 else ICMP):
            if rule.port_min is not None:
                if icmp_type != rule.port_min:
                    return False
                if rule.port_max is not None and icmp_code != rule.port_max:
                    return False
        elif proto in PORT_PROTOCOLS and (rule.port_min is not None or rule.port_max is not None):
            low = rule.port_min if rule.port_min is not None else 0
            high = rule.port_max if rule.port_max is not None else 65535
            if dport is None or not (low <= dport[0] and dport[1] <= high):
                return False
    if rule.remote_ip_prefix:
        prefix = net(rule.remote_ip_prefix)
        if prefix.version != version or (prefix.prefixlen and ip(remote) not in prefix):
            return False
    if rule.remote_group and not within(remote, members.get(rule.remote_group, ())):
        return False
    if rule.remote_address_group and not within(remote, address_groups.get(rule.remote_address_group, ())):
        return False
    return True
