"""What a host's security groups are, as the firewall takes them: its ports with their groups and
addresses, the groups' rules, the remote groups' members and the bridge ports of each network."""

from __future__ import annotations

from dataclasses import dataclass, field

from fermion.dataplane import naming
from fermion.rules import ICMP as ICMP  # re-exported for the firewalls
from fermion.rules import ICMPV6 as ICMPV6
from fermion.rules import PORT_PROTOCOLS

SRC_PORT_PROTOCOLS = PORT_PROTOCOLS  # tcp, udp, dccp, sctp, udplite: port ranges apply


@dataclass(frozen=True)
class Rule:
    direction: str  # "ingress" | "egress" (as seen from the instance)
    ethertype: str  # "IPv4" | "IPv6"
    protocol: int | None  # IP protocol number; None = any
    port_min: int | None = None  # tcp/udp/sctp/udplite/dccp port range; for icmp/icmpv6: type
    port_max: int | None = None  # ...; for icmp/icmpv6: code
    remote_ip_prefix: str | None = None  # CIDR
    remote_group: str | None = None  # id of a group whose member addresses are a named set
    remote_address_group: str | None = None  # id of an address group whose CIDRs are a named interval set


@dataclass(frozen=True)
class Group:
    id: str
    stateful: bool
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class PortFilter:
    id: str  # port id
    device: str  # tap name on the host
    mac: str
    ips: tuple[str, ...]  # fixed IPs, plain addresses (v4 and v6)
    allowed_pairs: tuple[tuple[str, str], ...] = ()  # (ip or cidr, mac)
    groups: tuple[str, ...] = ()
    port_security: bool = True  # False: no filtering and no anti-spoofing for this port
    network: str = ""  # network id: its connections are tracked in that network's zone


@dataclass(frozen=True)
class FirewallState:
    ports: tuple[PortFilter, ...]
    groups: tuple[Group, ...]  # every group referenced by a port (and remote groups)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group id -> member addresses
    address_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # address group id -> CIDRs
    tunnel_ip: str | None = None  # this host's VXLAN endpoint: its UDP packets skip conntrack


def zone_bridges(state: FirewallState) -> dict[str, str]:
    """The bridge of each network with a port on the host -> the network id.  What a bridge forwards
    reaches the inet hooks with the bridge as its input device (br_netfilter), so the bridge names the
    network's conntrack zone."""
    return {naming.bridge(p.network): p.network for p in state.ports if p.network}
