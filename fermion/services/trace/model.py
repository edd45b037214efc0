"""What a trace reads: the part of the database's model around two endpoints, as plain frozen values (load.py
fills it, walk.py reads it), and what a trace answers (hops and a verdict)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fermion.rpc.contracts import FirewallRule, SecurityRule

PASS, BLOCK, NOT_ROUTABLE = "pass", "block", "not_routable"
REACHABLE, BLOCKED = "reachable", "blocked"
EXTERNAL = "external"


@dataclass(frozen=True)
class Agent:
    host: str
    agent_type: str
    alive: bool


@dataclass(frozen=True)
class FixedIp:
    subnet_id: str
    ip: str


@dataclass(frozen=True)
class Port:
    id: str
    name: str
    project_id: str
    network_id: str
    mac: str
    admin_state_up: bool
    status: str
    device_owner: str
    device_id: str
    host: str  # binding:host_id ("": unbound)
    revision: int
    fixed_ips: tuple[FixedIp, ...]
    allowed_pairs: tuple[tuple[str, str], ...] = ()  # (ip or cidr, mac)
    port_security: bool = True  # as the agents filter it: off for ports the network owns (router, DHCP)
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    network_id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination, nexthop)
    address_scope: str | None = None  # of its subnet pool; None is a scope of its own


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    admin_state_up: bool
    external: bool


@dataclass(frozen=True)
class SgRule:
    id: str
    rule: SecurityRule


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    stateful: bool
    rules: tuple[SgRule, ...]


@dataclass(frozen=True)
class FwRule:
    id: str
    name: str
    rule: FirewallRule


@dataclass(frozen=True)
class FirewallGroup:
    id: str
    name: str
    admin_state_up: bool
    status: str
    ports: tuple[str, ...]  # router interface ports it applies to
    ingress: tuple[FwRule, ...] | None  # None: no policy in that direction (passes)
    egress: tuple[FwRule, ...] | None


@dataclass(frozen=True)
class Binding:
    """A router's place on an L3 agent (an HA router has one per agent, with its VRRP state)."""

    host: str
    alive: bool
    ha_state: str | None = None


@dataclass(frozen=True)
class Router:
    id: str
    name: str
    admin_state_up: bool
    interfaces: tuple[str, ...]  # port ids (qr-)
    gateway: str | None = None  # port id (qg-)
    enable_snat: bool = True
    routes: tuple[tuple[str, str], ...] = ()  # extra routes (destination, nexthop)
    distributed: bool = False
    ha: bool = False
    bindings: tuple[Binding, ...] = ()
    copies: tuple[str, ...] = ()  # hosts with a copy of a distributed router


@dataclass(frozen=True)
class FloatingIp:
    id: str
    address: str
    network_id: str
    port_id: str | None
    fixed_ip: str | None
    router_id: str | None
    status: str


@dataclass(frozen=True)
class Forwarding:
    id: str
    floatingip_id: str
    protocol: str
    external: tuple[int, int]
    internal_port_id: str
    internal_ip: str
    internal: tuple[int, int]


@dataclass
class Model:
    ports: dict[str, Port] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    routers: dict[str, Router] = field(default_factory=dict)
    groups: dict[str, SecurityGroup] = field(default_factory=dict)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)  # remote group -> member addresses
    address_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # address group -> CIDRs
    firewall_groups: dict[str, FirewallGroup] = field(default_factory=dict)  # router port id -> its group
    floating_ips: tuple[FloatingIp, ...] = ()
    forwardings: tuple[Forwarding, ...] = ()
    agents: dict[str, tuple[Agent, ...]] = field(default_factory=dict)  # host -> its agents


@dataclass(frozen=True)
class Endpoint:
    """A resolved source or destination: a port and the address it uses, or the external network."""

    given: str
    port_id: str | None = None  # None: external
    address: str | None = None

    @property
    def external(self) -> bool:
        return self.port_id is None


@dataclass(frozen=True)
class Query:
    source: Endpoint
    destination: Endpoint
    protocol: str  # tcp | udp | icmp
    port: int | None = None  # tcp/udp destination port (as the sender connects to it)


@dataclass
class Hop:
    name: str
    kind: str
    decision: str
    reason: str
    resource: dict[str, str] | None = None  # {"type", "id", "name"}
    rule_id: str | None = None
    group: str | None = None  # the security or firewall group (its name, else its id)
    attribute: str | None = None  # the attribute that decided
    realized: dict[str, Any] | None = None
    port_id: str | None = None  # security groups, anti-spoofing: the port filtered (a probe asks its host)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "decision": self.decision, "reason": self.reason,
                "resource": self.resource, "rule_id": self.rule_id, "group": self.group,
                "attribute": self.attribute, "realized": self.realized}


@dataclass
class Trace:
    query: Query
    ip_version: int
    source_address: str | None
    destination_address: str | None
    hops: list[Hop]

    @property
    def failed(self) -> int | None:
        """The index of the first hop that did not pass."""
        return next((i for i, h in enumerate(self.hops) if h.decision != PASS), None)

    @property
    def verdict(self) -> str:
        index = self.failed
        if index is None:
            return REACHABLE
        return BLOCKED if self.hops[index].decision == BLOCK else NOT_ROUTABLE

    @property
    def summary(self) -> str:
        index = self.failed
        if index is None:
            return "reachable"
        hop = self.hops[index]
        what = "blocked" if hop.decision == BLOCK else "not routable"
        return f"{what} at hop {index + 1} ({hop.name}): {hop.reason}"
