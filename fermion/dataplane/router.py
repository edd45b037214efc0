"""A Neutron-style router: namespace qrouter-<id> with qr- (tenant) and qg- (external) veths, forwarding on,
the routes we own (our own route protocol number), and NAT as one nftables table replaced atomically in a
single `nft -f` transaction, so conntrack entries and their NAT bindings survive every change
(docs/kernel.md). Floating IPs are /32 addresses on qg- (the router answers ARP for them) plus map
elements for 1:1 DNAT/SNAT; a gratuitous ARP announces each newly added address. Address scopes: new
connections between devices of different scopes are dropped unless NAT applies (IPv4, in the NAT table's
forward chain) and always in IPv6 (`table ip6 fermion_scope6`, replaced in the same transaction). A
disabled router (admin_state_up false) keeps its namespace and its devices plugged, but down, with forwarding
off, no routes and no keepalived.

ensure() is idempotent and level-triggered: it observes the namespace, changes only what differs and
returns a short description of each change (empty when nothing changed)."""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import netaddr
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from fermion.dataplane import DataplaneError, conntrackd, keepalived, naming, netns, nftlist, veth
from fermion.dataplane import port_forwarding as pfwd

LOG = logging.getLogger(__name__)

NAT_TABLE = "fermion_nat"  # `table ip fermion_nat` in every router namespace
HELPER_TABLE = "fermion_cthelper"  # `table inet fermion_cthelper`: conntrack helpers, only when a router has some
# (Neutron's helper name, protocol) -> the kernel helper that exists for it (H.323 is two: Q.931 on TCP, RAS on
# UDP). Anything else (amanda over TCP, a name the kernel lacks) is left out: one unknown helper must not stop
# the whole table, NAT included, from loading.
KERNEL_HELPERS = {("amanda", "udp"): "amanda", ("ftp", "tcp"): "ftp", ("tftp", "udp"): "tftp", ("irc", "tcp"): "irc",
                  ("netbios-ns", "udp"): "netbios-ns", ("pptp", "tcp"): "pptp", ("sane", "tcp"): "sane",
                  ("sip", "tcp"): "sip", ("sip", "udp"): "sip", ("snmp", "udp"): "snmp",
                  ("h323", "tcp"): "Q.931", ("h323", "udp"): "RAS"}
SCOPE6_TABLE = "fermion_scope6"  # `table ip6 fermion_scope6`: IPv6 address scopes (no NAT in IPv6)
# the tables render_nat writes, replaced together (the helper and port-forwarding tables only when used)
NAT_TABLES = (("ip", NAT_TABLE), ("ip6", SCOPE6_TABLE), ("inet", HELPER_TABLE), ("ip", pfwd.TABLE))
ROUTE_PROTO = 77  # rtm_protocol of our routes: kernel (2) and anyone else's routes are left alone
MAIN_TABLE = 254
DEVICE_PREFIXES = ("qr-", "qg-", "ha-", "sg-")  # the only devices in the namespace that ensure() deletes
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.promote_secondaries")
# an HA router's devices get no IPv6 link-local address of their own: a standby must stay silent on its
# networks, or the bridges there would learn the router's MAC (shared with the active instance) on it.
# TCP tracking without the window check: an instance that becomes active again after a partition still
# holds its entries from before, whose windows the connections have long left (they would be invalid)
HA_SYSCTLS = ("net.ipv6.conf.default.addr_gen_mode=1", "net.netfilter.nf_conntrack_tcp_be_liberal=1")
# Nor may it send MLD reports, which the kernel sends from those devices when they come up in a forwarding
# namespace (all-routers group) and when keepalived adds or removes an IPv6 address: `table ip6 fermion_ha`
# drops them on every device but the HA one (a master's too: docs/kernel.md says what that costs).
HA_TABLE = "fermion_ha"
HA_RULES = (f"table ip6 {HA_TABLE} {{\n"
            "  chain output {\n"
            "    type filter hook output priority filter; policy accept;\n"
            '    oifname != "ha-*" icmpv6 type { mld-listener-report, mld-listener-done, mld2-listener-report } drop\n'
            "  }\n"
            "}\n")
IFF_UP = 0x1
GARP_TIMEOUT = 5.0  # a background arping still running after this long is killed
_DIGEST = re.compile(r'comment "fermion router [^"]* sha256=([0-9a-f]+)"')


@dataclass(frozen=True)
class Interface:
    port_id: str
    device: str  # qr-... or qg-... inside the router namespace
    tap: str  # tap<port-id[:11]> in the host namespace (the L2 agent attaches it to the network's bridge)
    mac: str
    mtu: int
    addresses: tuple[str, ...]  # CIDR notation: "10.0.1.1/24"
    address_scope: str | None = None  # IPv4 address scope of its subnet; None is a scope of its own
    address_scope6: str | None = None  # the same for its IPv6 subnet


@dataclass(frozen=True)
class FloatingIp:
    floating_ip: str  # external address
    fixed_ip: str  # the instance's internal address


@dataclass(frozen=True)
class Ha:
    """An HA router's instance here: keepalived elects the active one over the HA device; the qr-/qg-
    addresses, floating IPs and routes are its virtual addresses and routes (only the active has them)."""

    vr_id: int
    interface: Interface  # ha-... on the project's HA network, with this instance's address


@dataclass(frozen=True)
class Router:
    id: str
    interfaces: tuple[Interface, ...]  # qr- (tenant subnets)
    gateway: Interface | None = None  # qg- (external network)
    gateway_ip: str | None = None  # the external subnet's gateway: default route
    enable_snat: bool = True
    floating_ips: tuple[FloatingIp, ...] = ()
    routes: tuple[tuple[str, str], ...] = ()  # extra routes (destination CIDR, nexthop)
    conntrack_helpers: tuple[tuple[str, int, str], ...] = ()  # (protocol, port, helper), Neutron's names
    port_forwardings: tuple[pfwd.Forward, ...] = ()  # of floating IPs that have no port (DNAT by port)
    ha: Ha | None = None
    # admin_state_up False: the ports stay plugged (so they are ACTIVE, as in Neutron with OVN) but their
    # devices are down, forwarding is off, no route is installed and an HA router's keepalived is stopped:
    # nothing is answered or forwarded
    enabled: bool = True
    # a distributed router's local copy: it sees one direction of the flows routed by another host's copy
    # (or sent to the SNAT namespace), which conntrack would call invalid, so those are not dropped
    distributed: bool = False


@dataclass(frozen=True)
class Device:
    name: str
    mac: str
    mtu: int
    up: bool
    addresses: frozenset[str]  # CIDR notation, canonical; link-local IPv6 left out


@dataclass(frozen=True)
class Observed:
    """What the kernel holds for one router."""

    namespace: str
    devices: Mapping[str, Device]  # the router's qr-/qg- devices
    routes: Mapping[str, tuple[str, ...]]  # our routes: destination -> nexthops
    forwarding: bool  # IPv4 and IPv6 forwarding (and promote_secondaries) on
    nat_digest: str | None  # the digest in our NAT table's comment; None: no table


# ------------------------------------------------------------------------------------------- pure parts
def _cidr(address: str) -> str:
    """Host address with prefix length, written the way the kernel reports it."""
    try:
        net = netaddr.IPNetwork(address)
    except (netaddr.AddrFormatError, ValueError) as err:
        raise DataplaneError(f"bad address {address!r}: {err}") from err
    return f"{net.ip}/{net.prefixlen}"


def _ip(address: str) -> netaddr.IPAddress:
    try:
        return netaddr.IPAddress(address)
    except (netaddr.AddrFormatError, ValueError) as err:
        raise DataplaneError(f"bad address {address!r}: {err}") from err


def floating_ips(router: Router) -> list[FloatingIp]:
    """The IPv4 floating IPs that take effect (they need a gateway), sorted, one per floating address."""
    if router.gateway is None:
        return []
    seen: dict[str, FloatingIp] = {}
    for fip in router.floating_ips:
        if _ip(fip.floating_ip).version == 4 and _ip(fip.fixed_ip).version == 4:
            seen.setdefault(str(_ip(fip.floating_ip)), FloatingIp(str(_ip(fip.floating_ip)), str(_ip(fip.fixed_ip))))
    return sorted(seen.values(), key=lambda f: netaddr.IPAddress(f.floating_ip))


def desired_addresses(router: Router) -> dict[str, frozenset[str]]:
    """Device -> the exact address set it must carry; the gateway also carries each floating IP as /32."""
    out = {i.device: frozenset(_cidr(a) for a in i.addresses) for i in router.interfaces}
    if router.gateway is not None:
        fips = {f"{f.floating_ip}/32" for f in floating_ips(router)}
        out[router.gateway.device] = (frozenset(_cidr(a) for a in router.gateway.addresses) | fips
                                      | pfwd.addresses(router.port_forwardings))
    return out


def snat_address(router: Router) -> str | None:
    """The gateway's first IPv4 address: the source of SNAT'd traffic."""
    if router.gateway is None:
        return None
    for address in router.gateway.addresses:
        net = netaddr.IPNetwork(_cidr(address))
        if net.version == 4:
            return str(net.ip)
    return None


def desired_routes(router: Router) -> dict[str, tuple[str, ...]]:
    """Destination -> nexthops (several nexthops for one destination become a multipath route)."""
    want: dict[str, set[str]] = {}
    if router.gateway is not None and router.gateway_ip:
        gw = _ip(router.gateway_ip)
        want.setdefault("0.0.0.0/0" if gw.version == 4 else "::/0", set()).add(str(gw))
    for destination, nexthop in router.routes:
        try:
            dst = str(netaddr.IPNetwork(destination).cidr)
        except (netaddr.AddrFormatError, ValueError) as err:
            raise DataplaneError(f"bad route destination {destination!r}: {err}") from err
        want.setdefault(dst, set()).add(str(_ip(nexthop)))
    return {dst: tuple(sorted(hops, key=netaddr.IPAddress)) for dst, hops in want.items()}


def _block(head: str, items: Iterable[str]) -> list[str]:
    elements = list(items)
    lines = [f"  {head}"]
    if elements:
        lines.append("    elements = { " + ", ".join(elements) + " }")
    return lines + ["  }"]


def render_helpers(router: Router) -> list[str]:
    """The conntrack helper table (both families): a `ct helper` object per helper and protocol, assigned to
    new connections to the helper's port as they enter the router (Neutron: `-j CT --helper` in raw
    PREROUTING). Empty when the router has no helpers."""
    if not router.conntrack_helpers:
        return []
    objects: dict[tuple[str, str], str] = {}
    rules: list[str] = []
    for proto, port, helper in sorted(set(router.conntrack_helpers)):
        if (helper, proto) not in KERNEL_HELPERS or not 0 < int(port) < 65536:
            LOG.warning("router %s: no kernel conntrack helper for %s/%s port %s", router.id, helper, proto, port)
            continue
        name = objects.setdefault((helper, proto), f"h-{helper}-{proto}")
        rules.append(f'    {proto} dport {int(port)} ct helper set "{name}"')
    if not objects:
        return []
    lines = [f"table inet {HELPER_TABLE} {{"]
    for (helper, proto), name in sorted(objects.items()):
        lines.append(f'  ct helper {name} {{ type "{KERNEL_HELPERS[(helper, proto)]}" protocol {proto}; }}')
    lines += ["  chain prerouting {", "    type filter hook prerouting priority filter; policy accept;",
              *rules, "  }", "}"]
    return lines


def _v4(iface: Interface) -> list[netaddr.IPNetwork]:
    return [netaddr.IPNetwork(_cidr(a)).cidr for a in iface.addresses if netaddr.IPNetwork(_cidr(a)).version == 4]


def _routed_to_gateway(router: Router, iface: Interface) -> bool:
    """Neutron: an internal subnet in the external network's address scope reaches it without SNAT."""
    gw = router.gateway
    return gw is not None and iface.address_scope is not None and iface.address_scope == gw.address_scope


def scope_blocked(router: Router) -> list[tuple[str, str]]:
    """(in device, out device) pairs the router must not forward new IPv4 connections between, as Neutron's
    address scopes: the two sides are in different scopes (no scope counts as one) and no NAT applies.
    Traffic out of the gateway that SNAT rewrites is allowed; floating IPs (DNAT) and the replies of NATed
    connections pass by their conntrack status before this check."""
    sides = [(i.device, i.address_scope) for i in router.interfaces if _v4(i)]
    gw = router.gateway
    snat = router.enable_snat and snat_address(router) is not None
    if gw is not None and _v4(gw):
        sides.append((gw.device, gw.address_scope))
    out = []
    for a, scope_a in sides:
        for b, scope_b in sides:
            if a == b or scope_a == scope_b:
                continue
            if gw is not None and b == gw.device and snat:
                continue  # leaves through SNAT
            out.append((a, b))
    return sorted(out)


def _has_v6(iface: Interface) -> bool:
    return any(netaddr.IPNetwork(_cidr(a)).version == 6 for a in iface.addresses)


def scope6_blocked(router: Router) -> list[tuple[str, str]]:
    """(in device, out device) pairs in different IPv6 address scopes: never forwarded (IPv6 has no NAT)."""
    ifaces = [*router.interfaces, *([router.gateway] if router.gateway is not None else [])]
    sides = [(i.device, i.address_scope6) for i in ifaces if _has_v6(i)]
    return sorted((a, b) for a, sa in sides for b, sb in sides if a != b and sa != sb)


def render_nat(router: Router) -> str:
    """The router's NAT table as nft input. Deterministic: equal routers render equal text, whose digest is
    kept in the table's comment so a restarted agent can tell whether the kernel already has it."""
    nets = netaddr.cidr_merge([n for i in router.interfaces if not _routed_to_gateway(router, i) for n in _v4(i)])
    fips = floating_ips(router)
    fip_snat: dict[str, str] = {}
    for fip in fips:  # one source per fixed address: the lowest floating IP wins if the input has several
        fip_snat.setdefault(fip.fixed_ip, fip.floating_ip)
    source = snat_address(router)
    qg = router.gateway.device if router.gateway is not None else None
    post: list[str] = []
    if qg is not None:
        post.append(f'oifname "{qg}" snat to ip saddr map @fip_snat')  # floating IPs first
        if router.enable_snat and source:
            post.append(f'oifname "{qg}" ip saddr @snat_nets snat to {source}')
    if source:
        # an instance reaching a floating IP from inside (hairpin): the reply must come back through us
        post.append("ct status dnat ip saddr @snat_nets snat to ip saddr map @fip_snat")
        post.append(f"ct status dnat ip saddr @snat_nets snat to {source}")
    body = [
        *_block("set snat_nets { type ipv4_addr; flags interval", (str(n) for n in nets)),
        *_block("map fip_dnat { type ipv4_addr : ipv4_addr", (f"{f.floating_ip} : {f.fixed_ip}" for f in fips)),
        *_block("map fip_snat { type ipv4_addr : ipv4_addr",
                (f"{fixed} : {fip_snat[fixed]}" for fixed in sorted(fip_snat, key=netaddr.IPAddress))),
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    dnat to ip daddr map @fip_dnat",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    dnat to ip daddr map @fip_dnat",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        *(f"    {rule}" for rule in post),
        "  }",
        *_block("set scope_block { type ifname . ifname", (f'"{a}" . "{b}"' for a, b in scope_blocked(router))),
        "  chain filter_forward {",
        "    type filter hook forward priority filter; policy accept;",
        *([] if router.distributed else ["    ct state invalid drop"]),
        "    ct status dnat accept",
        "    ct status snat accept",
        "    iifname . oifname @scope_block drop",
        "  }",
    ]
    scope6 = [
        f"table ip6 {SCOPE6_TABLE} {{",
        *_block("set scope_block { type ifname . ifname", (f'"{a}" . "{b}"' for a, b in scope6_blocked(router))),
        "  chain filter_forward {",
        "    type filter hook forward priority filter; policy accept;",
        "    iifname . oifname @scope_block drop",
        "  }",
        "}",
    ]
    helpers = render_helpers(router) + pfwd.render(router.port_forwardings)
    # one digest for the tables: they are replaced together, in one transaction
    digest = hashlib.sha256("\n".join([*body, *scope6, *helpers]).encode()).hexdigest()[:16]
    head = [f"table ip {NAT_TABLE} {{", f'  comment "fermion router {router.id[:8]} sha256={digest}"']
    return "\n".join([*head, *body, "}", *scope6, *helpers]) + "\n"


def nat_digest(text: str) -> str | None:
    """The digest in a rendered table or in `nft list table` output."""
    found = _DIGEST.search(text)
    return found.group(1) if found else None


# ------------------------------------------------------------------------------------------- kernel side
def _devices(ipr: IPRoute) -> dict[str, Device]:
    addresses: dict[int, set[str]] = {}
    for msg in ipr.get_addr():
        ip = msg.get("IFA_ADDRESS")
        if ip and not (":" in ip and netaddr.IPAddress(ip).is_link_local()):  # the kernel's own fe80::
            addresses.setdefault(msg["index"], set()).add(f"{ip}/{msg['prefixlen']}")
    out = {}
    for msg in ipr.get_links():
        name = msg.get("IFLA_IFNAME")
        if name and name.startswith(DEVICE_PREFIXES):
            out[name] = Device(name=name, mac=str(msg.get("IFLA_ADDRESS") or "").lower(), mtu=msg.get("IFLA_MTU"),
                               up=bool(msg["flags"] & IFF_UP), addresses=frozenset(addresses.get(msg["index"], ())))
    return out


def _routes(ipr: IPRoute) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for family, anywhere in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for msg in ipr.get_routes(family=family):
            if msg["proto"] != ROUTE_PROTO or (msg.get("RTA_TABLE") or msg["table"]) != MAIN_TABLE:
                continue
            hops = [msg.get("RTA_GATEWAY")]
            hops += [nh.get("RTA_GATEWAY") for nh in msg.get("RTA_MULTIPATH") or ()]
            dst = f"{msg.get('RTA_DST') or anywhere}/{msg['dst_len']}"
            out[dst] = tuple(sorted({h for h in hops if h} | set(out.get(dst, ())), key=netaddr.IPAddress))
    return out


def _exec(ns: str, argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["ip", "netns", "exec", ns, *argv], input=stdin, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataplaneError(f"{argv[0]} in {ns}: {err}") from err
    if check and proc.returncode != 0:
        raise DataplaneError(f"{argv[0]} in {ns}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _sysctl_values(enabled: bool) -> list[str]:
    """SYSCTLS' values: forwarding on only while the router is enabled; promote_secondaries always."""
    forwarding = "1" if enabled else "0"
    return [forwarding, forwarding, "1"]


def _sysctls(ns: str) -> list[str]:
    return _exec(ns, ["sysctl", "-n", *SYSCTLS], check=False).stdout.split()


def _forwarding(ns: str) -> bool:
    return _sysctls(ns) == _sysctl_values(True)


class RouterManager:
    """The routers of one host (host_netns: the namespace that plays the host's root; None: the real root).
    Pure construction; state kept in memory is only a cache of what was applied (NAT digests, sysctls
    checked), rebuilt from the kernel after a restart."""

    def __init__(self, host_netns: str | None = None,
                 on_nat_applied: Callable[[float], None] | None = None, state_dir: Path | None = None,
                 notify_socket: Path | None = None, sync_conntrack: bool | None = None,
                 kind: str = "qrouter") -> None:
        self.host_netns = host_netns
        self.kind = kind  # qrouter, or snat: the central parts of distributed routers
        self.on_nat_applied = on_nat_applied  # called with the seconds each NAT table replace took
        self.state_dir = state_dir  # HA routers: a keepalived workdir per router under it
        self.notify_socket = notify_socket  # where HA routers' keepalived announce transitions
        # HA routers share their connection tracking state (conntrackd); None: wherever conntrackd is installed
        self.sync_conntrack = shutil.which("conntrackd") is not None if sync_conntrack is None else sync_conntrack
        self._prefix = naming.router_namespace("", host_netns, kind)
        self._nat: dict[str, str] = {}  # router id -> digest of the NAT table applied
        self._sysctl_ok: dict[str, bool] = {}  # router id -> the enabled state its sysctls were checked for
        self._silent: set[str] = set()  # HA routers whose namespace has HA_TABLE
        self._garps: list[tuple[float, subprocess.Popen[bytes]]] = []
        self._lock = threading.Lock()

    def namespace(self, router_id: str) -> str:
        return naming.router_namespace(router_id, self.host_netns, self.kind)

    def present(self) -> set[str]:
        return {name[len(self._prefix):] for name in netns.names(self._prefix)}

    # ------------------------------------------------------------------------------------------ ensure
    def ensure(self, router: Router, repair: bool = False) -> list[str]:
        """Make the kernel match router; returns what changed (empty: nothing). Raises DataplaneError.
        repair (full resyncs): also read the NAT tables back and put back what drifted from what was applied.
        Route failures (e.g. an unreachable nexthop) do not stop the rest: NAT and gratuitous ARPs are still
        applied, then the route errors are raised together. Any other failure raises at once; calling
        ensure() again continues from whatever the kernel then holds."""
        self._reap()
        if not router.enabled:
            router = replace(router, ha=None)  # a disabled router elects nothing
        ns = self.namespace(router.id)
        changes: list[str] = []
        fresh = not netns.exists(ns)
        if fresh:
            self._forget(router.id)
            netns.create(ns)
            changes.append(f"created namespace {ns}")
        if router.ha is None and self.state_dir is not None and (self.state_dir / router.id).is_dir():
            # disabled, or no longer HA: its keepalived stops now rather than at the next full sync
            keepalived.cleanup(self.state_dir, [r for r in keepalived.instances(self.state_dir) if r != router.id])
            changes.append("stopped keepalived")
        if not router.enabled:  # forwarding off first
            self._ensure_forwarding(ns, router, fresh, changes)
        if fresh and router.ha is not None:  # before any device is made
            _exec(ns, ["sysctl", "-q", "-w", *HA_SYSCTLS])
        if router.ha is not None and router.id not in self._silent:  # before any device comes up
            _exec(ns, ["nft", "-f", "-"], stdin=f"table ip6 {HA_TABLE}\ndelete table ip6 {HA_TABLE}\n{HA_RULES}")
            self._silent.add(router.id)
        want = desired_addresses(router)
        ifaces = [*router.interfaces, *([router.gateway] if router.gateway is not None else [])]
        ha = router.ha
        errors: list[str] = []
        try:
            with IPRoute(netns=ns) as ipr:
                have = _devices(ipr)
                for name in sorted(set(have) - set(want) - ({ha.interface.device} if ha else set())):
                    veth.delete(ns, name)
                    changes.append(f"deleted {name}")
                announce: list[tuple[str, str]] = []
                if ha is not None:
                    self._ensure_ha_devices(ipr, ns, ha, ifaces, have, changes)
                    ifaces = []  # keepalived gives them their addresses
                for iface in ifaces:
                    found = have.get(iface.device)
                    if found == Device(iface.device, iface.mac.lower(), iface.mtu, router.enabled,
                                       want[iface.device]):
                        continue
                    addresses = sorted(want[iface.device])
                    veth.plug(self.host_netns, iface.tap, ns, iface.device, iface.mac, iface.mtu, addresses,
                              up=router.enabled)
                    changes.append(f"plugged {iface.device}" if found is None else f"updated {iface.device}")
                    if router.enabled and router.gateway is not None and iface.device == router.gateway.device:
                        # a device coming up announces all its addresses again
                        old = found.addresses if found is not None and found.up else frozenset()
                        announce += [(iface.device, a.split("/")[0]) for a in addresses
                                     if a not in old and netaddr.IPNetwork(a).version == 4]
                self._ensure_routes(ipr, router, changes, errors)
        except NetlinkError as err:
            raise DataplaneError(f"router {router.id} in {ns}: {err}") from err
        self._ensure_nat(ns, router, fresh, changes, repair)
        if router.enabled:
            # forwarding last: a packet forwarded before the NAT table is in place would leave its connection
            # tracked without SNAT, and a flow that keeps going (a ping, a router moved under traffic) would
            # stay un-NATed for as long as it lasts
            self._ensure_forwarding(ns, router, fresh, changes)
        for device, ip in announce:
            self.garp(ns, device, ip)
        if ha is not None:
            self._ensure_keepalived(router, ns, ha, changes)
        if errors:
            raise DataplaneError(f"router {router.id}: " + "; ".join(errors))
        return changes

    def _ensure_ha_devices(self, ipr: IPRoute, ns: str, ha: Ha, ifaces: list[Interface], have: dict[str, Device],
                           changes: list[str]) -> None:
        """qr-/qg- plugged with their MAC and MTU, addresses left to keepalived; the HA device with its own
        address (keepalived adds the primary VIP beside it)."""
        for iface in [*ifaces, ha.interface]:
            found = have.get(iface.device)
            own = frozenset(_cidr(a) for a in iface.addresses) if iface is ha.interface else frozenset()
            if found is not None and (found.mac, found.mtu, found.up) == (iface.mac.lower(), iface.mtu, True) \
                    and own <= found.addresses:
                continue
            veth.plug(self.host_netns, iface.tap, ns, iface.device, iface.mac, iface.mtu, None)
            index = ipr.link_lookup(ifname=iface.device)[0]
            for cidr in sorted(own - (found.addresses if found is not None else frozenset())):
                ip, plen = cidr.split("/")
                ipr.addr("add", index=index, address=ip, prefixlen=int(plen))
            changes.append(f"plugged {iface.device}" if found is None else f"updated {iface.device}")

    def _ensure_keepalived(self, router: Router, ns: str, ha: Ha, changes: list[str]) -> None:
        """conntrackd first, so that it hears keepalived's first transition."""
        hook = None
        v4 = [a for a in ha.interface.addresses if netaddr.IPNetwork(a).version == 4]
        if self.sync_conntrack and v4:
            sync = self.conntrackd(router.id)
            done = sync.ensure(conntrackd.Config(router.id, ns, ha.interface.device, v4[0], ha.vr_id))
            if done != "unchanged":
                changes.append(f"conntrackd {done}")
            hook = sync.script
        done = self.keepalived(router.id).ensure(keepalived.from_router(
            router, ns, ha.interface.device, ha.vr_id,
            keepalived.primary_vip(ha.vr_id, [str(netaddr.IPNetwork(a).cidr) for a in ha.interface.addresses]),
            on_transition=hook))
        if done != "unchanged":
            changes.append(f"keepalived {done}")

    def conntrackd(self, router_id: str) -> conntrackd.Conntrackd:
        if self.state_dir is None:
            raise DataplaneError(f"router {router_id} is HA: the router manager needs a state directory")
        return conntrackd.Conntrackd(self.state_dir / router_id)

    def keepalived(self, router_id: str) -> keepalived.Keepalived:
        if self.state_dir is None:
            raise DataplaneError(f"router {router_id} is HA: the router manager needs a state directory")
        return keepalived.Keepalived(self.state_dir / router_id, self.notify_socket)

    def ha_state(self, router_id: str) -> str:
        """An HA router's state here, as Neutron's ha_state: active or standby. keepalived's notify script
        records its transitions; one it missed (seen: both instances standby for good) must not hide a master,
        so a running instance that holds its primary virtual address is active whatever the record says."""
        k = self.keepalived(router_id)
        state = k.state()
        if state == "backup":
            primary = k.primary()
            if primary is not None and self._holds(router_id, *primary):
                return "active"
        return keepalived.HA_STATE[state]

    def _holds(self, router_id: str, address: str, device: str) -> bool:
        out = netns.run(["ip", "-n", self.namespace(router_id), "-br", "addr", "show", "dev", device],
                        check=False).stdout
        return any(a.split("/")[0] == address for line in out.splitlines() for a in line.split()[2:])

    def last_transition(self, router_id: str) -> float:
        """When keepalived last changed the HA router's state here (unix time; 0.0: never)."""
        found = self.keepalived(router_id).transitions()
        return found[-1].at if found else 0.0

    def cleanup_keepalived(self, keep: Iterable[str]) -> list[str]:
        """Stop the keepalived and conntrackd of HA routers no longer here (or no longer HA)."""
        return keepalived.cleanup(self.state_dir, keep) if self.state_dir is not None else []

    def _ensure_forwarding(self, ns: str, router: Router, fresh: bool, changes: list[str]) -> None:
        if self._sysctl_ok.get(router.id) == router.enabled:
            return
        values = _sysctl_values(router.enabled)
        if fresh or _sysctls(ns) != values:
            settings = [f"{key}={value}" for key, value in zip(SYSCTLS, values, strict=True)]
            _exec(ns, ["sysctl", "-q", "-w", *settings, *(HA_SYSCTLS if router.ha is not None else ())])
            changes.append("enabled forwarding" if router.enabled else "disabled forwarding")
        self._sysctl_ok[router.id] = router.enabled

    def _ensure_routes(self, ipr: IPRoute, router: Router, changes: list[str], errors: list[str]) -> None:
        # an HA router's are keepalived's; the kernel drops those via a disabled router's down devices
        want = desired_routes(router) if router.ha is None and router.enabled else {}
        have = _routes(ipr)
        for dst in sorted(set(have) - set(want)):
            try:
                ipr.route("del", dst=dst, table=MAIN_TABLE, proto=ROUTE_PROTO)
                changes.append(f"removed route {dst}")
            except NetlinkError as err:
                if err.code != errno.ESRCH:
                    errors.append(f"removing route {dst}: {err}")
        qg = ipr.link_lookup(ifname=router.gateway.device) if router.gateway is not None else []
        default_via = str(_ip(router.gateway_ip)) if router.gateway_ip else None
        for dst, hops in sorted(want.items()):
            if have.get(dst) == hops:
                continue
            spec: dict[str, object] = {"dst": dst, "table": MAIN_TABLE, "proto": ROUTE_PROTO}
            if len(hops) == 1:
                spec["gateway"] = hops[0]
                if qg and dst in ("0.0.0.0/0", "::/0") and hops[0] == default_via:
                    spec["oif"] = qg[0]  # the default route leaves through the gateway device
            else:
                spec["multipath"] = [{"gateway": hop} for hop in hops]
            try:
                ipr.route("replace" if dst in have else "add", **spec)
                changes.append(f"route {dst} via {','.join(hops)}")
            except NetlinkError as err:
                errors.append(f"route {dst} via {','.join(hops)}: {err}")

    def _ensure_nat(self, ns: str, router: Router, fresh: bool, changes: list[str], repair: bool) -> None:
        text = render_nat(router)
        digest = nat_digest(text)
        assert digest is not None
        if self._nat.get(router.id) == digest:
            if repair:
                self._repair_nat(ns, text, changes)
            return
        if not fresh and router.id not in self._nat:  # first look after a start: the kernel may have it
            listed = _exec(ns, ["nft", "list", "table", "ip", NAT_TABLE], check=False)
            has6 = _exec(ns, ["nft", "list", "table", "ip6", SCOPE6_TABLE], check=False).returncode == 0
            if listed.returncode == 0 and has6 and nat_digest(listed.stdout) == digest:
                self._nat[router.id] = digest
                if repair:
                    self._repair_nat(ns, text, changes)
                return
        # declare (no-op if present), delete and recreate in ONE transaction: atomic, conntrack untouched
        script = (f"table ip {NAT_TABLE}\ndelete table ip {NAT_TABLE}\n"
                  f"table ip6 {SCOPE6_TABLE}\ndelete table ip6 {SCOPE6_TABLE}\n"
                  f"table inet {HELPER_TABLE}\ndelete table inet {HELPER_TABLE}\n"
                  f"table ip {pfwd.TABLE}\ndelete table ip {pfwd.TABLE}\n{text}")
        started = time.monotonic()
        _exec(ns, ["nft", "-f", "-"], stdin=script)
        if self.on_nat_applied is not None:
            self.on_nat_applied(time.monotonic() - started)
        self._nat[router.id] = digest
        changes.append("applied nat")

    def _repair_nat(self, ns: str, text: str, changes: list[str]) -> None:
        """Full resyncs: the NAT tables read back (one listing of the namespace's ruleset) and what drifted
        from text put back, in one transaction that touches nothing else (conntrack's NAT bindings stay)."""
        lines, found = nftlist.reconcile(text, _exec(ns, ["nft", "list", "ruleset"]).stdout, NAT_TABLES)
        if not lines:
            return
        missing, extra = nftlist.described(found)
        LOG.warning("%s: NAT tables drifted (missing: %s; extra: %s): repairing", ns, "; ".join(missing[:10]) or "none",
                    "; ".join(extra[:10]) or "none")
        _exec(ns, ["nft", "-f", "-"], stdin="\n".join(lines) + "\n")
        changes.append(f"repaired nat ({len(missing)} missing, {len(extra)} extra)")

    # ------------------------------------------------------------------------------------------ gARP
    def garp(self, ns: str, device: str, ip: str) -> None:
        """One gratuitous ARP in the background (Habets arping; rc 1 is normal: nobody answers)."""
        argv = ["ip", "netns", "exec", ns, "arping", "-q", "-U", "-i", device, "-S", ip, "-c", "1", "-w", "1", ip]
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as err:
            LOG.warning("gratuitous ARP for %s on %s in %s: %s", ip, device, ns, err)
            return
        with self._lock:
            self._garps.append((time.monotonic(), proc))

    def _reap(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        with self._lock:
            pending = []
            for started, proc in self._garps:
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                if proc.poll() is None and time.monotonic() - started > GARP_TIMEOUT:
                    proc.kill()
                    proc.wait()
                if proc.poll() is None:
                    pending.append((started, proc))
                elif proc.returncode > 1:  # 1: nobody answered (normal); < 0: killed with its namespace
                    LOG.warning("gratuitous ARP %s exited with %s", proc.args, proc.returncode)
            self._garps = pending

    def close(self, wait: float = 2.0) -> None:
        """Reap the background gratuitous ARPs (waits up to wait seconds, then kills what is left)."""
        self._reap(wait)
        with self._lock:
            for _, proc in self._garps:
                proc.kill()
                proc.wait()
            self._garps = []

    # ------------------------------------------------------------------------------------------ the rest
    def remove(self, router_id: str) -> None:
        """Delete the router's devices (their tap ends go with them), then the namespace. The devices go
        first because the kernel dismantles a deleted namespace asynchronously: the taps would linger."""
        ns = self.namespace(router_id)
        self._forget(router_id)
        if self.state_dir is not None and (self.state_dir / router_id).exists():
            self.cleanup_keepalived(keep=[r for r in self.present() if r != router_id])
        if netns.exists(ns):
            try:
                with IPRoute(netns=ns) as ipr:
                    for name in _devices(ipr):
                        veth.delete(ns, name)
            except NetlinkError as err:
                raise DataplaneError(f"removing router {router_id} from {ns}: {err}") from err
            netns.delete(ns)
            if netns.exists(ns):
                raise DataplaneError(f"namespace {ns} is still there after deleting it")
        self._reap()

    def observe(self, router_id: str) -> Observed | None:
        """What the kernel holds for a router; None when its namespace does not exist."""
        ns = self.namespace(router_id)
        if not netns.exists(ns):
            return None
        try:
            with IPRoute(netns=ns) as ipr:
                devices, routes = _devices(ipr), _routes(ipr)
        except NetlinkError as err:
            raise DataplaneError(f"observing {ns}: {err}") from err
        listed = _exec(ns, ["nft", "list", "table", "ip", NAT_TABLE], check=False)
        return Observed(namespace=ns, devices=devices, routes=routes, forwarding=_forwarding(ns),
                        nat_digest=nat_digest(listed.stdout) if listed.returncode == 0 else None)

    def probe(self, router: Router, addresses: bool = True) -> tuple[list[str], list[str], list[str]]:
        """(checked, missing, extra): the namespace, its devices, their addresses and our routes (addresses
        False: an HA router's standby instance, which carries none), then the NAT tables' chains (their
        number of rules), sets and maps (SNAT networks, floating-IP DNAT and SNAT maps, address scopes, port
        forwardings) against what router renders: what the next full sync's repair would change."""
        ns = self.namespace(router.id)
        observed = self.observe(router.id)
        if observed is None:
            return [f"namespace {ns}"], [f"namespace {ns}"], []
        checked, missing, extra = [f"namespace {ns}"], [], []
        for device, want in sorted(desired_addresses(router).items()):
            checked.append(f"{device} in {ns}")
            have = observed.devices.get(device)
            if have is None:
                missing.append(f"{device} in {ns}")
            elif addresses:
                missing += [f"address {a} on {device}" for a in sorted(want - have.addresses)]
                extra += [f"address {a} on {device}" for a in sorted(have.addresses - want)]
        extra += [f"{d} in {ns}" for d in sorted(set(observed.devices) - set(desired_addresses(router)))
                  if not d.startswith("ha-")]
        if addresses:
            checked.append(f"routes in {ns}")
            want_routes, have_routes = desired_routes(router), observed.routes
            missing += [f"route {d} via {','.join(h)}" for d, h in sorted(want_routes.items())
                        if have_routes.get(d) != h]
            extra += [f"route {d} via {','.join(h)}" for d, h in sorted(have_routes.items())
                      if d not in want_routes]
        rendered = render_nat(router)
        _, found = nftlist.reconcile(rendered, _exec(ns, ["nft", "list", "ruleset"]).stdout, NAT_TABLES)
        checked += [f"{table.split(' {')[0]} in {ns}" for table in nftlist.tables(rendered).values()]
        lost, more = nftlist.described(found)
        return checked, missing + lost, extra + more

    def _forget(self, router_id: str) -> None:
        self._nat.pop(router_id, None)
        self._sysctl_ok.pop(router_id, None)
        self._silent.discard(router_id)
