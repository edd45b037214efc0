"""Versioned RPC messages between the server and the agents.

Every message is a frozen dataclass. A change to a message's fields must bump VERSION and add a line to
HISTORY; tests/contract/test_rpc_contracts.py fingerprints the schemas so a silent change fails. The major
number changes only when an old agent could no longer talk to a new server (or the reverse).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

VERSION = "1.14"
HISTORY = {
    "1.0": "hints, host views (l2, dhcp), state reports with realized port revisions, dhcp port requests",
    "1.1": "router and security_group hints, L3 view, the L2 view's firewall (security groups)",
    "1.2": "PortSecurity.network_id: the firewall tracks each network's connections in its own zone",
    "1.3": "DhcpHost.hostname/fqdn/options (dns_assignment, extra DHCP options), DhcpNetwork.dns_domain",
    "1.4": "StateReport.availability_zone: the zone an agent's host is in (scheduling honours zone hints)",
    "1.5": "SecurityRule.remote_address_group and Firewall.address_groups (CIDRs): address groups as remotes",
    "1.6": "Router.conntrack_helpers: the router's conntrack helpers (l3-conntrack-helper)",
    "1.7": "RouterPort.ipv4/ipv6_address_scope: routers do not forward between address scopes without NAT",
    "1.8": "Router.ha (HA routers: VRID, this host's HA port, VRRP state) and HaStateReport (VRRP transitions)",
    "1.9": "FloatingIp.id/revision/status and FloatingIpReport: floating IPs are ACTIVE (or ERROR) as the L3 agent "
           "serving them reports",
    "1.10": "Router.distributed (DVR: this host's share of a distributed router, its SNAT ports and static "
            "neighbours), L3View.dvr_mac and L3View.fip_gateways (the host's floating-IP namespaces)",
    "1.11": "service plugins: QoS rules on L2Port, FloatingIp and Router.gateway_qos; Router.firewall_groups "
            "(FWaaS v2) with FirewallReport; Router.metering_labels with MeteringReport; Router.port_forwardings",
    "1.12": "trunks: L2Port.trunk_id on a trunk's parent, L2Port.parent_id and segmentation_id on its subports",
    "1.13": "DVR on Open vSwitch hosts: L2View.dvr_mac (the host's DVR MAC) and L2Port.ips (the addresses of "
            "distributed router interfaces), for the OVS agent's DVR flows",
    "1.14": "server -> agent requests: ProbeRequest answered by a ProbeReply (fermion trace --probe: the kernel "
            "objects behind ports, their filters and routers, compared with the host view)",
}
FIREWALL_KEY = "security-groups"  # the L2 agent's work-queue key for its host's firewall

T = TypeVar("T")


# ---------------------------------------------------------------- server -> agents
@dataclass(frozen=True)
class Hint:
    """Something changed. Carries no state: the agent pulls what it needs (level-triggered)."""

    kind: str  # network | subnet | port | agent | router | security_group
    id: str
    revision: int
    network_id: str | None = None
    host: str | None = None  # the host the object is bound to, when it has one


@dataclass(frozen=True)
class ProbeRequest:
    """Server -> one agent (a request with a reply): look at the kernel objects behind these model objects and
    say what differs from this host's view. Only what the agent's kind handles is looked at."""

    host: str
    ports: list[str] = field(default_factory=list)  # port ids: the device, its bridge, its network's forwarding
    filters: list[str] = field(default_factory=list)  # port ids: their security-group chains and set elements
    routers: list[str] = field(default_factory=list)  # router ids: namespace, devices, addresses, routes, NAT


@dataclass(frozen=True)
class ProbeResult:
    """What one probed object ("port <id>", "filters <id>", "router <id>") has on the host, against its view."""

    checked: list[str] = field(default_factory=list)  # the kernel objects looked at
    missing: list[str] = field(default_factory=list)  # wanted by the view, absent (or different) in the kernel
    extra: list[str] = field(default_factory=list)  # in the kernel, not wanted


@dataclass(frozen=True)
class ProbeReply:
    host: str
    agent_type: str
    results: dict[str, ProbeResult] = field(default_factory=dict)  # "port <id>" | "filters <id>" | "router <id>"


# ---------------------------------------------------------------- agents -> server
@dataclass(frozen=True)
class ViewRequest:
    host: str
    agent_type: str
    network_ids: list[str] | None = None  # the keys to look at (router ids for L3); None: the whole host view


@dataclass(frozen=True)
class StateReport:
    """Heartbeat with the agent's configuration. start_flag: the agent (re)started."""

    host: str
    agent_type: str
    binary: str
    topic: str
    configurations: dict[str, Any] = field(default_factory=dict)
    start_flag: bool = False
    availability_zone: str = "nova"  # Neutron's default zone; "" from a 1.6 agent means the same


@dataclass(frozen=True)
class HaStateReport:
    """VRRP transitions of the host's HA routers: router id -> active | standby."""

    host: str
    states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FloatingIpStatus:
    revision: int  # the floating IP's revision the agent acted on (FloatingIp.revision in its view)
    status: str  # ACTIVE (realized) | DOWN (its router removed from the host) | ERROR (the router failed)


@dataclass(frozen=True)
class FloatingIpReport:
    """Floating IPs whose state on the L3 agent's host differs from the status the server sent in the view.
    The server heeds only the host serving the floating IP's router, and only at (at least) its revision."""

    host: str
    statuses: dict[str, FloatingIpStatus] = field(default_factory=dict)


@dataclass(frozen=True)
class FirewallStatus:
    revision: int  # the group's revision the agent acted on (FirewallGroup.revision in its view)
    status: str  # ACTIVE | INACTIVE (on none of this host's ports) | ERROR


@dataclass(frozen=True)
class FirewallReport:
    """The firewall groups whose state on an L3 agent's host differs from the status the server sent."""

    host: str
    statuses: dict[str, FirewallStatus] = field(default_factory=dict)


@dataclass(frozen=True)
class MeteringCounter:
    router_id: str
    label_id: str
    packets: int
    bytes: int
    epoch: str  # changes whenever the counters restart from zero (a new namespace or table)


@dataclass(frozen=True)
class MeteringReport:
    """Cumulative packet and byte counts per (router, label) on an L3 agent's host since each epoch."""

    host: str
    counters: list[MeteringCounter] = field(default_factory=list)


@dataclass(frozen=True)
class PortReport:
    """Ports the agent has realized (port id -> revision, device present and wired) and ports whose device
    is gone. A port becomes ACTIVE only from here."""

    host: str
    up: dict[str, int] = field(default_factory=dict)
    down: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- host views (answers to ViewRequest)
@dataclass(frozen=True)
class Segment:
    network_type: str
    physical_network: str | None
    segmentation_id: int | None


@dataclass(frozen=True)
class RemotePort:
    mac: str
    ips: list[str]
    vtep: str  # tunnel address of the host the port is bound to


@dataclass(frozen=True)
class L2Network:
    id: str
    mtu: int
    admin_state_up: bool
    segment: Segment
    vteps: list[str] = field(default_factory=list)  # other hosts with ports on the network (flooding)
    remote_ports: list[RemotePort] = field(default_factory=list)


@dataclass(frozen=True)
class L2Port:
    id: str
    network_id: str
    mac: str
    revision: int
    admin_state_up: bool
    device_owner: str
    qos: QosRules | None = None  # the port's effective QoS policy (its own, else its network's); None: none
    trunk_id: str = ""  # the trunk this port is the parent of ("": none)
    parent_id: str = ""  # a trunk's subport: the trunk's parent port, whose tap carries it tagged
    segmentation_id: int = 0  # a subport: its VLAN on the parent's tap
    # a distributed router's interface: its addresses (no prefix length), whose ARP and neighbour discovery
    # the OVS agent keeps off the fabric; empty for other ports
    ips: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BandwidthLimit:
    max_kbps: int
    max_burst_kbps: int = 0  # 0: the backend's default burst


@dataclass(frozen=True)
class QosRules:
    """What a port, floating IP or router gateway is held to: the rules of its effective QoS policy that this
    backend enforces. Directions as Neutron's: egress leaves the instance (or goes out to the external network
    through a floating IP or gateway), ingress comes towards it."""

    policy_id: str
    egress: BandwidthLimit | None = None
    ingress: BandwidthLimit | None = None
    dscp_mark: int | None = None  # DSCP value set on the egress packets


@dataclass(frozen=True)
class SecurityRule:
    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: int | None = None  # IP protocol number; None: any
    port_min: int | None = None  # port range, or ICMP type
    port_max: int | None = None  # port range, or ICMP code
    remote_ip_prefix: str | None = None
    remote_group: str | None = None
    remote_address_group: str | None = None  # id of an address group (its CIDRs: Firewall.address_groups)


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    stateful: bool
    rules: list[SecurityRule]


@dataclass(frozen=True)
class PortSecurity:
    id: str
    mac: str
    ips: list[str]
    allowed_pairs: list[list[str]]  # [ip or cidr, mac]
    groups: list[str]
    port_security: bool
    network_id: str = ""  # "" from a 1.1 server: the agent then knows the zone from the L2 view alone


@dataclass(frozen=True)
class Firewall:
    """Every port bound to the host with what filters it: its groups, their rules, the members (addresses)
    of the groups those rules name as remote."""

    ports: list[PortSecurity]
    groups: list[SecurityGroup]
    members: dict[str, list[str]]
    address_groups: dict[str, list[str]] = field(default_factory=dict)  # id -> CIDRs, of the rules' remotes


@dataclass(frozen=True)
class L2View:
    host: str
    networks: list[L2Network]
    ports: list[L2Port]
    partial: bool = False  # True when the request named networks: absent ones are to be removed
    firewall: Firewall | None = None  # present when asked for (FIREWALL_KEY) and in full views
    # this host's DVR MAC when it runs copies of distributed routers ("": none, or a server before 1.13): the
    # OVS agent's flows give it to the frames those copies send to other hosts
    dvr_mac: str = ""


@dataclass(frozen=True)
class RouterPort:
    id: str
    network_id: str
    mac: str
    mtu: int
    addresses: list[str]  # with prefix length, e.g. 10.0.0.1/24
    # the address scopes of the port's IPv4 and IPv6 subnets (their pools'; None: no scope)
    ipv4_address_scope: str | None = None
    ipv6_address_scope: str | None = None


@dataclass(frozen=True)
class FloatingIp:
    floating_ip: str
    fixed_ip: str
    id: str = ""  # "" from a 1.8 server: the agent then reports nothing
    revision: int = 0
    status: str = ""  # what the server last heard: DOWN, ACTIVE or ERROR
    qos: QosRules | None = None  # the floating IP's QoS policy (qos-fip)


@dataclass(frozen=True)
class ConntrackHelper:
    protocol: str  # tcp | udp
    port: int
    helper: str  # Neutron's helper name (ftp, tftp, h323, ...)


@dataclass(frozen=True)
class HaRouter:
    """What keepalived needs on this host: the router's VRID and this host's port on the HA network."""

    vr_id: int
    interface: RouterPort
    state: str  # what the server last heard from this host: active | standby


@dataclass(frozen=True)
class Router:
    id: str
    revision: int
    admin_state_up: bool
    interfaces: list[RouterPort]
    gateway: RouterPort | None = None
    gateway_ip: str | None = None  # the external subnet's gateway (the default route)
    enable_snat: bool = True
    floating_ips: list[FloatingIp] = field(default_factory=list)
    routes: list[list[str]] = field(default_factory=list)  # [destination, nexthop]
    conntrack_helpers: list[ConntrackHelper] = field(default_factory=list)
    ha: HaRouter | None = None  # None: a legacy router (a distributed router's: its SNAT part is HA)
    distributed: DvrRouter | None = None  # None: a centralized router (legacy or HA)
    gateway_qos: QosRules | None = None  # the gateway's QoS policy (qos-gateway-ip)
    firewall_groups: list[FirewallGroup] = field(default_factory=list)  # those on the router's ports
    metering_labels: list[MeteringLabel] = field(default_factory=list)  # the labels of the router's project
    port_forwardings: list[PortForwarding] = field(default_factory=list)  # of the router's floating IPs


@dataclass(frozen=True)
class FirewallRule:
    """An enabled rule of a firewall policy, in the policy's order (first match wins)."""

    action: str  # allow | deny | reject
    ip_version: int  # 4 | 6
    protocol: int | None = None  # IANA number; None: any
    source_ip: str | None = None  # CIDR
    destination_ip: str | None = None
    source_port: str | None = None  # "80" or "8000:8080"
    destination_port: str | None = None


@dataclass(frozen=True)
class FirewallGroup:
    """A firewall group on some of the router's ports. A direction without a policy is None; a policy's rules
    are followed by FWaaS's implicit deny."""

    id: str
    revision: int
    ports: list[str]  # ids of the router's ports it applies to
    ingress: list[FirewallRule] | None = None  # traffic towards the router's networks through those ports
    egress: list[FirewallRule] | None = None
    admin_state_up: bool = True
    status: str = ""  # what the server last heard


@dataclass(frozen=True)
class MeteringRule:
    direction: str  # ingress | egress (as seen from the router's internal networks)
    excluded: bool = False
    remote_ip_prefix: str | None = None
    source_ip_prefix: str | None = None
    destination_ip_prefix: str | None = None


@dataclass(frozen=True)
class MeteringLabel:
    id: str
    rules: list[MeteringRule]


@dataclass(frozen=True)
class PortForwarding:
    """DNAT of a floating IP's external port (range) to an internal address and port (range)."""

    id: str
    floating_ip: str
    protocol: str  # tcp | udp
    external_port: str  # "80" or "8000:8010"
    internal_ip: str
    internal_port: str  # a range of the same length as external_port's


@dataclass(frozen=True)
class Neighbor:
    ip: str
    mac: str


@dataclass(frozen=True)
class DvrRouter:
    """This host's share of a distributed router. Router.interfaces are its qr- ports (the same addresses and
    MACs on every host), Router.gateway its gateway port (qg-, in the SNAT namespace where central; on the
    other hosts it names the external network), Router.floating_ips those of instances bound to this host."""

    local: bool  # instances on the router's subnets are bound here: a qrouter copy routes for them
    central: bool  # the router's SNAT part is scheduled here (a dvr_snat agent): snat-<router> namespace
    # the router's SNAT ports (sg- in the SNAT namespace), one per interface; their addresses are the next hops
    # of the local copies' default routes (matched to a qr- port by subnet)
    snat_ports: list[RouterPort] = field(default_factory=list)
    # every port with an address on the router's internal subnets: static neighbours in the local copy, which
    # must not ARP across hosts (its gateway address and MAC exist on every host)
    neighbors: list[Neighbor] = field(default_factory=list)


@dataclass(frozen=True)
class FipGateway:
    """This host's floating-IP agent gateway port on an external network (fg- in fip-<network>)."""

    network_id: str
    port: RouterPort
    gateway_ip: str | None  # the external subnet's gateway: the fip namespace's default route


@dataclass(frozen=True)
class L3View:
    host: str
    routers: list[Router]
    partial: bool = False  # True when the request named routers: absent ones are to be removed
    dvr_mac: str = ""  # this host's DVR MAC (frames its router copies send to other hosts carry it); "": none
    fip_gateways: list[FipGateway] = field(default_factory=list)


@dataclass(frozen=True)
class DhcpSubnet:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    dns_nameservers: list[str]
    host_routes: list[dict[str, str]]
    allocation_pools: list[dict[str, str]]
    ipv6_address_mode: str | None = None
    ipv6_ra_mode: str | None = None


@dataclass(frozen=True)
class DhcpOption:
    """A port's extra DHCP option (Neutron's extra_dhcp_opts entry)."""

    name: str
    value: str
    ip_version: int = 4


@dataclass(frozen=True)
class DhcpHost:
    port_id: str
    mac: str
    ip: str
    subnet_id: str
    hostname: str = ""  # the port's dns_assignment for this address; "" from a 1.2 server: host-<address>
    fqdn: str = ""
    options: list[DhcpOption] = field(default_factory=list)


@dataclass(frozen=True)
class DhcpNetwork:
    id: str
    mtu: int
    revision: int
    port_id: str  # this agent's DHCP port on the network
    port_mac: str
    port_ips: list[str]  # with prefix length, e.g. 10.0.0.2/24
    subnets: list[DhcpSubnet]
    hosts: list[DhcpHost]
    dns_domain: str = "openstacklocal."  # the server's configured domain (dnsmasq's --domain); "": none


@dataclass(frozen=True)
class DhcpView:
    host: str
    networks: list[DhcpNetwork]
    partial: bool = False


MESSAGES: tuple[type, ...] = (Hint, ViewRequest, StateReport, PortReport, Segment, RemotePort, L2Network,
                              L2Port, SecurityRule, SecurityGroup, PortSecurity, Firewall, L2View, DhcpSubnet,
                              DhcpOption, DhcpHost, DhcpNetwork, DhcpView, RouterPort, FloatingIp, ConntrackHelper,
                              Router, L3View, HaRouter, HaStateReport, FloatingIpStatus, FloatingIpReport, Neighbor,
                              DvrRouter, FipGateway, BandwidthLimit, QosRules, FirewallRule, FirewallGroup,
                              FirewallStatus, FirewallReport, MeteringRule, MeteringLabel, MeteringCounter,
                              MeteringReport, PortForwarding, ProbeRequest, ProbeResult, ProbeReply)


# ---------------------------------------------------------------- codec
def encode(msg: Any) -> dict[str, Any]:
    out: dict[str, Any] = _plain(msg)
    return out


def _plain(value: Any) -> Any:
    """Like dataclasses.asdict, without its deep copies (views carry thousands of rules)."""
    kind = type(value)
    if kind in _SCALARS or value is None:
        return value
    if kind is list:
        return [_plain(v) for v in value]
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    names = _field_names(kind) if dataclasses.is_dataclass(value) else None  # type: ignore[arg-type]
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    return value


_SCALARS = frozenset({str, int, float, bool})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def _hints(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def decode(cls: type[T], data: Any) -> T:
    """Build a message from plain data, checking field names and nested types (extra keys from a newer
    minor version are ignored, as a minor bump only adds optional fields)."""
    return _decoder(cls)(data)  # type: ignore[arg-type]


Converter = Callable[[Any, str, str], Any]  # (value, owner, field name) -> value; the names locate errors


@functools.cache
def _decoder(cls: type) -> Callable[[Any], Any]:
    """The decoder of one message class, its fields' converters worked out once (views hold thousands of
    nested messages)."""
    fields = [(name, _converter(tp)) for name, tp in _hints(cls)]
    owner = cls.__name__

    def decode_one(data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"{owner}: expected an object")
        kwargs = {name: convert(data[name], owner, name) for name, convert in fields if name in data}
        try:
            return cls(**kwargs)
        except TypeError as err:  # a required field is missing
            raise ValueError(f"{owner}: {err}") from None

    return decode_one


@functools.cache
def _converter(tp: Any) -> Converter:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = _converter(next(o for o in typing.get_args(tp) if o is not type(None)))
        optional = type(None) in typing.get_args(tp)
        return lambda v, owner, name: None if v is None and optional else inner(v, owner, name)
    if origin is list:
        item = _converter(typing.get_args(tp)[0])

        def convert_list(value: Any, owner: str, name: str) -> Any:
            if not isinstance(value, list):
                raise ValueError(f"{owner}.{name}: expected a list")
            return [item(v, owner, name) for v in value]

        return convert_list
    if origin is dict:
        member = _converter(typing.get_args(tp)[1])

        def convert_dict(value: Any, owner: str, name: str) -> Any:
            if not isinstance(value, dict):
                raise ValueError(f"{owner}.{name}: expected an object")
            return {str(k): member(v, owner, name) for k, v in value.items()}

        return convert_dict
    if dataclasses.is_dataclass(tp):
        nested = _decoder(tp)  # type: ignore[arg-type]
        return lambda v, owner, name: nested(v)
    if tp is Any:
        return lambda v, owner, name: v

    def convert_scalar(value: Any, owner: str, name: str) -> Any:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ValueError(f"{owner}.{name}: expected {tp.__name__}")
        return value

    return convert_scalar


def fingerprint(cls: type) -> str:
    hints = typing.get_type_hints(cls)
    return ";".join(f"{f.name}:{_type_name(hints[f.name])}" for f in dataclasses.fields(cls))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) if typing.get_origin(tp) is None else str(tp)  # type: ignore[return-value]


def compatible(version: str) -> bool:
    return version.split(".")[0] == VERSION.split(".")[0]
