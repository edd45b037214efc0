"""Distributed virtual routing (Neutron's DVR): what a DVR host adds around the router namespaces RouterManager
builds. The same on Linux-bridge and Open vSwitch hosts, except for the bridge table below: on an OVS host the
qr- taps are on br-int, where the OVS agent's flows do its work (fermion/agent/ovs/dvr.py) and the table sees
nothing.

- A local copy (qrouter-<router>, built by RouterManager without gateway) gets static neighbours for every
  port on its subnets (its gateway addresses and MACs exist on every host: it must never ARP across hosts),
  ICMP redirects off, policy rules sending what main cannot route to the SNAT port of the source's subnet
  (table and priority: the SNAT address as an integer, as Neutron does, so after main and the floating-IP
  rules), and for floating IPs a veth rfp-/fpr- into the external network's floating-IP namespace: a rule per
  fixed address into FIP_TABLE (default via fpr-) and `table ip fermion_dvr` doing the 1:1 NAT on rfp-.
- fip-<network> holds the host's gateway port fg- on the external network; it answers ARP for the floating
  IPs by proxy ARP (each has a /32 route out of its router's fpr-) and announces new ones.
- `table bridge fermion_dvr` in the host namespace: frames the local copies send to other hosts carry the
  host's DVR MAC and no ARP/ND; frames from other hosts never reach a local copy (their own copy serves
  them).
"""

from __future__ import annotations

import errno
import hashlib
import re
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import netaddr
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from fermion.dataplane import DataplaneError, naming, netns, veth
from fermion.dataplane.router import ROUTE_PROTO, FloatingIp, Interface

TABLE = "fermion_dvr"  # `table ip` in a local copy, `table bridge` in the host namespace
FIP_TABLE = 16  # a local copy's routing table of floating-IP traffic (Neutron's number)
FIP_PRIORITY = 32768  # its rules: after main (32766) and default (32767), before the SNAT redirects
RFP_ADDRESS = "169.254.106.115/31"  # the same on every rfp-/fpr- pair: routes name the device
FPR_ADDRESS = "169.254.106.114/31"
NUD_PERMANENT = 0x80
# ICMPv6 router solicitation/advertisement, neighbour solicitation/advertisement, redirect
ND_TYPES = "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect"
_DIGEST = re.compile(r'comment "fermion dvr [^"]* sha256=([0-9a-f]+)"')


@dataclass(frozen=True)
class SnatRedirect:
    subnet: str  # a qr- device's IPv4 subnet
    via: str  # the router's SNAT port address in it
    device: str  # that qr- device

    @property
    def table(self) -> int:
        return int(netaddr.IPAddress(self.via))


@dataclass(frozen=True)
class LocalCopy:
    """What a distributed router's local copy needs besides its qr- devices and main-table routes."""

    router_id: str
    interfaces: tuple[Interface, ...]  # its qr- devices
    neighbors: tuple[tuple[str, str], ...] = ()  # (address, MAC) of the ports on its subnets
    snat: tuple[SnatRedirect, ...] = ()
    floating_ips: tuple[FloatingIp, ...] = ()  # of instances on this host
    fip_namespace: str | None = None  # where those are served; None: no floating IP here


@dataclass(frozen=True)
class FipNamespace:
    network_id: str
    gateway: Interface  # fg-
    gateway_ip: str | None
    routes: tuple[tuple[str, str], ...] = ()  # (floating IP, router id): /32 out of the router's fpr-


# ------------------------------------------------------------------------------------------- pure parts
def _networks(iface: Interface) -> list[netaddr.IPNetwork]:
    return [netaddr.IPNetwork(a) for a in iface.addresses]


def neighbors_by_device(copy: LocalCopy) -> dict[str, set[tuple[str, str]]]:
    """qr- device -> the (address, MAC) neighbours it carries: each on the device whose subnet holds it,
    the router's own addresses left out."""
    own = {net.ip for i in copy.interfaces for net in _networks(i)}
    out: dict[str, set[tuple[str, str]]] = {i.device: set() for i in copy.interfaces}
    for ip, mac in copy.neighbors:
        address = netaddr.IPAddress(ip)
        if address in own:
            continue
        for iface in copy.interfaces:
            if any(address in net.cidr for net in _networks(iface)):
                out[iface.device].add((str(address), mac.lower()))
                break
    return out


def snat_redirects(interfaces: Iterable[Interface], snat_addresses: Iterable[str]) -> tuple[SnatRedirect, ...]:
    """Per qr- IPv4 subnet holding a SNAT port address: its redirect (one per subnet, the lowest address)."""
    addresses = sorted({netaddr.IPAddress(a.split("/")[0]) for a in snat_addresses})
    out = []
    for iface in interfaces:
        for net in _networks(iface):
            if net.version != 4:
                continue
            via = next((a for a in addresses if a in net.cidr and a != net.ip), None)
            if via is not None:
                out.append(SnatRedirect(str(net.cidr), str(via), iface.device))
    return tuple(sorted(set(out), key=lambda r: netaddr.IPNetwork(r.subnet)))


def fip_maps(fips: Iterable[FloatingIp]) -> tuple[dict[str, str], dict[str, str]]:
    """(floating -> fixed, fixed -> floating) for IPv4 floating IPs; a fixed address with several takes the
    lowest as its source."""
    dnat: dict[str, str] = {}
    snat: dict[str, str] = {}
    for fip in sorted(fips, key=lambda f: netaddr.IPAddress(f.floating_ip)):
        floating, fixed = netaddr.IPAddress(fip.floating_ip), netaddr.IPAddress(fip.fixed_ip)
        if floating.version == 4 and fixed.version == 4:
            dnat.setdefault(str(floating), str(fixed))
            snat.setdefault(str(fixed), str(floating))
    return dnat, snat


def _elements(pairs: dict[str, str]) -> str:
    items = ", ".join(f"{k} : {v}" for k, v in sorted(pairs.items(), key=lambda kv: netaddr.IPAddress(kv[0])))
    return f"    elements = {{ {items} }}\n" if items else ""


def _digested(head: str, body: str, what: str) -> str:
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    return f'{head} {{\n  comment "fermion dvr {what} sha256={digest}"\n{body}}}\n'


def render_fip_nat(copy: LocalCopy) -> str:
    """The local copy's 1:1 NAT of its floating IPs, on its rfp- device only."""
    dnat, snat = fip_maps(copy.floating_ips)
    rfp = naming.rfp(copy.router_id)
    body = ("  map fip_dnat {\n    type ipv4_addr : ipv4_addr\n" + _elements(dnat) + "  }\n"
            "  map fip_snat {\n    type ipv4_addr : ipv4_addr\n" + _elements(snat) + "  }\n"
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
            f'    iifname "{rfp}" dnat to ip daddr map @fip_dnat\n  }}\n'
            "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{rfp}" snat to ip saddr map @fip_snat\n  }}\n')
    return _digested(f"table ip {TABLE}", body, copy.router_id[:8])


def render_bridge(taps: Iterable[str], dvr_mac: str) -> str:
    """The host's bridge filter for its local copies' qr- taps (their set), as one table. Priority 10: after
    the filters at the default priority."""
    names = sorted(set(taps))
    elements = ("    elements = { " + ", ".join(f'"{t}"' for t in names) + " }\n") if names else ""
    rewrite = f'    iifname @local_taps oifname != "tap*" ether saddr set {dvr_mac.lower()}\n' if dvr_mac else ""
    body = ("  set local_taps {\n    type ifname\n" + elements + "  }\n"
            "  chain forward {\n    type filter hook forward priority 10; policy accept;\n"
            '    iifname @local_taps oifname != "tap*" ether type arp drop\n'
            f'    iifname @local_taps oifname != "tap*" icmpv6 type {{ {ND_TYPES} }} drop\n'
            + rewrite +
            '    iifname != "tap*" oifname @local_taps drop\n  }\n')
    return _digested(f"table bridge {TABLE}", body, "host")


def digest(text: str) -> str | None:
    found = _DIGEST.search(text)
    return found.group(1) if found else None


# ------------------------------------------------------------------------------------------- kernel side
def _ipr(ns: str | None) -> IPRoute:
    return IPRoute(netns=ns) if ns else IPRoute()


def _run(ns: str | None, argv: list[str], stdin: str | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    full = ["ip", "netns", "exec", ns, *argv] if ns else argv
    try:
        proc = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataplaneError(f"{argv[0]} in {ns or 'root namespace'}: {err}") from err
    if check and proc.returncode != 0:
        raise DataplaneError(f"{argv[0]} in {ns or 'root namespace'}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _sysctl(ns: str, values: dict[str, str], changes: list[str], what: str) -> None:
    """Set the sysctls that differ (one process to read them all, one to write)."""
    keys = list(values)
    have = _run(ns, ["sysctl", "-n", *keys], check=False).stdout.split()
    if have != [values[k] for k in keys]:
        _run(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])
        changes.append(what)


def _our_routes(ipr: IPRoute, table: int) -> dict[str, tuple[str | None, int | None]]:
    """Our IPv4 routes in a table: destination -> (gateway, output device index)."""
    out = {}
    for msg in ipr.get_routes(family=socket.AF_INET, table=table):
        if msg["proto"] == ROUTE_PROTO and (msg.get("RTA_TABLE") or msg["table"]) == table:
            out[f"{msg.get('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}"] = (msg.get("RTA_GATEWAY"), msg.get("RTA_OIF"))
    return out


def _our_rules(ipr: IPRoute) -> set[tuple[str, int, int]]:
    """Our IPv4 rules: (source CIDR, table, priority)."""
    return {(f"{r.get('FRA_SRC')}/{r['src_len']}", r.get("FRA_TABLE"), r.get("FRA_PRIORITY"))
            for r in ipr.get_rules(family=socket.AF_INET) if r.get("FRA_PROTOCOL") == ROUTE_PROTO}


def _rule(ipr: IPRoute, op: str, rule: tuple[str, int, int]) -> None:
    src, plen = rule[0].split("/")
    ipr.rule(op, family=socket.AF_INET, src=src, src_len=int(plen), table=rule[1], priority=rule[2],
             protocol=ROUTE_PROTO)


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


class DvrManager:
    """The DVR parts of one host's routers (host_netns: the namespace playing the host's root). Memory holds
    only caches of what was applied (table digests, sysctls checked), rebuilt from the kernel after a
    restart. garp(namespace, device, address) sends a gratuitous ARP (RouterManager.garp)."""

    def __init__(self, host_netns: str | None = None,
                 garp: Callable[[str, str, str], None] | None = None) -> None:
        self.host_netns = host_netns
        self.garp = garp
        self._fip_prefix = naming.fip_namespace("", host_netns)
        self._nat: dict[str, str] = {}  # router id -> digest of its fermion_dvr table
        self._redirects: dict[str, tuple[str, ...]] = {}  # router id -> qr- devices with redirects found off
        self._fip_sysctls: set[str] = set()  # fip namespaces whose sysctls were checked
        self._bridge: str | None = None  # digest of the host's bridge table

    def router_namespace(self, router_id: str) -> str:
        return naming.router_namespace(router_id, self.host_netns)

    def fip_namespace(self, network_id: str) -> str:
        return naming.fip_namespace(network_id, self.host_netns)

    # ------------------------------------------------------------------------------------ local copies
    def ensure_local(self, copy: LocalCopy) -> list[str]:
        """The local copy's DVR parts; its namespace and qr- devices exist (RouterManager.ensure)."""
        ns = self.router_namespace(copy.router_id)
        changes: list[str] = []
        devices = tuple(sorted(i.device for i in copy.interfaces))
        if self._redirects.get(copy.router_id) != devices:
            keys = ["all", "default", *devices]
            _sysctl(ns, {f"net.ipv4.conf.{k}.send_redirects": "0" for k in keys}, changes, "redirects off")
            self._redirects[copy.router_id] = devices
        fip_ns = copy.fip_namespace if copy.floating_ips else None
        try:
            with _ipr(ns) as ipr:
                self._ensure_neighbors(ipr, copy, changes)
                if fip_ns is not None:
                    self._plug_rfp(ipr, ns, copy.router_id, fip_ns, changes)
                else:
                    rfp = _index(ipr, naming.rfp(copy.router_id))
                    if rfp is not None:
                        ipr.link("del", index=rfp)
                        changes.append(f"deleted {naming.rfp(copy.router_id)}")
                self._ensure_rules(ipr, copy, fip_ns is not None, changes)
        except NetlinkError as err:
            raise DataplaneError(f"local copy of router {copy.router_id} in {ns}: {err}") from err
        self._ensure_nat(ns, copy, changes)
        return changes

    def _ensure_neighbors(self, ipr: IPRoute, copy: LocalCopy, changes: list[str]) -> None:
        for device, want in sorted(neighbors_by_device(copy).items()):
            index = _index(ipr, device)
            if index is None:
                continue
            have = {(str(netaddr.IPAddress(n.get("NDA_DST"))), str(n.get("NDA_LLADDR")).lower())
                    for n in ipr.neigh("dump", ifindex=index)
                    if n["state"] & NUD_PERMANENT and n.get("NDA_LLADDR")}
            for ip, mac in sorted(have - want):
                ipr.neigh("del", dst=ip, lladdr=mac, ifindex=index)
            for ip, mac in sorted(want - have):
                ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=index, state=NUD_PERMANENT)
            if have != want:
                changes.append(f"neighbours on {device}: +{len(want - have)} -{len(have - want)}")

    def _plug_rfp(self, ipr: IPRoute, ns: str, router_id: str, fip_ns: str, changes: list[str]) -> None:
        """rfp- here, fpr- in the floating-IP namespace (re-made when its peer sits in another one)."""
        rfp, fpr = naming.rfp(router_id), naming.fpr(router_id)
        if not netns.exists(fip_ns):
            raise DataplaneError(f"router {router_id}: floating-IP namespace {fip_ns} missing")
        with _ipr(fip_ns) as far:
            index, peer = _index(ipr, rfp), _index(far, fpr)
            if index is not None and peer is None:  # linked to another floating-IP namespace
                ipr.link("del", index=index)
                index = None
            if index is None:
                if peer is not None:
                    far.link("del", index=peer)
                ipr.link("add", ifname=rfp, kind="veth", peer={"ifname": fpr, "net_ns_fd": fip_ns})
                index, peer = _index(ipr, rfp), _index(far, fpr)
                changes.append(f"plugged {rfp}")
            assert index is not None and peer is not None
            for conn, i, cidr in ((ipr, index, RFP_ADDRESS), (far, peer, FPR_ADDRESS)):
                ip, plen = cidr.split("/")
                have = {(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in conn.get_addr(index=i)
                        if a["family"] == socket.AF_INET}
                if (ip, int(plen)) not in have:
                    conn.addr("add", index=i, address=ip, prefixlen=int(plen))
                if not conn.get_links(i)[0]["flags"] & 1:
                    conn.link("set", index=i, state="up")

    def _ensure_rules(self, ipr: IPRoute, copy: LocalCopy, fips: bool, changes: list[str]) -> None:
        """SNAT redirects and floating-IP rules with their tables' default routes."""
        want = {(r.subnet, r.table, r.table) for r in copy.snat}
        _, snat = fip_maps(copy.floating_ips) if fips else ({}, {})
        want |= {(f"{fixed}/32", FIP_TABLE, FIP_PRIORITY) for fixed in snat}
        have = _our_rules(ipr)
        for rule in sorted(have - want):
            _rule(ipr, "del", rule)
            changes.append(f"removed rule from {rule[0]} lookup {rule[1]}")
        routes = {r.table: (r.via, r.device) for r in copy.snat}
        if fips:
            routes[FIP_TABLE] = (FPR_ADDRESS.split("/")[0], naming.rfp(copy.router_id))
        for table in sorted({t for _, t, _ in have} - set(routes)):
            for dst in _our_routes(ipr, table):
                ipr.route("del", dst=dst, table=table, proto=ROUTE_PROTO)
        for table, (via, device) in sorted(routes.items()):
            index = _index(ipr, device)
            if index is None:
                raise DataplaneError(f"router {copy.router_id}: no device {device}")
            if _our_routes(ipr, table).get("0.0.0.0/0") != (via, index):
                ipr.route("replace", dst="0.0.0.0/0", gateway=via, oif=index, table=table, proto=ROUTE_PROTO)
                changes.append(f"table {table}: default via {via} dev {device}")
        for rule in sorted(want - have):
            _rule(ipr, "add", rule)
            changes.append(f"rule from {rule[0]} lookup {rule[1]}")

    def _ensure_nat(self, ns: str, copy: LocalCopy, changes: list[str]) -> None:
        text = render_fip_nat(copy)
        want = digest(text)
        if self._nat.get(copy.router_id) == want:
            return
        listed = _run(ns, ["nft", "list", "table", "ip", TABLE], check=False)
        if listed.returncode != 0 or digest(listed.stdout) != want:
            _run(ns, ["nft", "-f", "-"], stdin=f"table ip {TABLE}\ndelete table ip {TABLE}\n{text}")
            changes.append("applied floating-IP nat")
        self._nat[copy.router_id] = want or ""

    def unplug(self, router_id: str) -> None:
        """Before a local copy's namespace goes: its rfp-/fpr- pair, which would otherwise linger in the
        floating-IP namespace while the kernel dismantles the namespace."""
        self._nat.pop(router_id, None)
        self._redirects.pop(router_id, None)
        ns = self.router_namespace(router_id)
        if netns.exists(ns):
            veth.delete(ns, naming.rfp(router_id))

    # ------------------------------------------------------------------------------------ fip namespaces
    def present_fips(self) -> set[str]:
        return {name[len(self._fip_prefix):] for name in netns.names(self._fip_prefix)}

    def ensure_fip(self, fip: FipNamespace) -> list[str]:
        """The namespace with its fg- device, default route and sysctls (the floating IPs: route_fips)."""
        ns = self.fip_namespace(fip.network_id)
        changes: list[str] = []
        if not netns.exists(ns):
            netns.create(ns)
            self._fip_sysctls.discard(ns)
            changes.append(f"created namespace {ns}")
        fg = fip.gateway
        try:
            with _ipr(ns) as ipr:
                index = _index(ipr, fg.device)
                want = {f"{netaddr.IPNetwork(a).ip}/{netaddr.IPNetwork(a).prefixlen}" for a in fg.addresses}
                have: set[str] = set()
                if index is not None:
                    link = ipr.get_links(index)[0]
                    have = {f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)
                            if not str(a.get("IFA_ADDRESS")).startswith("fe80:")}
                    same = (str(link.get("IFLA_ADDRESS")).lower(), link.get("IFLA_MTU"), bool(link["flags"] & 1))
                if index is None or have != want or same != (fg.mac.lower(), fg.mtu, True):
                    veth.plug(self.host_netns, fg.tap, ns, fg.device, fg.mac, fg.mtu, sorted(want))
                    changes.append(f"plugged {fg.device}")
                    self._fip_sysctls.discard(ns)
                if fip.gateway_ip:
                    gw = str(netaddr.IPAddress(fip.gateway_ip))
                    index = _index(ipr, fg.device)
                    if _our_routes(ipr, 254).get("0.0.0.0/0") != (gw, index):
                        ipr.route("replace", dst="0.0.0.0/0", gateway=gw, oif=index, table=254, proto=ROUTE_PROTO)
                        changes.append(f"default via {gw}")
        except NetlinkError as err:
            raise DataplaneError(f"floating-IP namespace {ns}: {err}") from err
        if ns not in self._fip_sysctls:
            # proxy ARP answers at once (a broadcast request is otherwise answered after up to 0.8 s)
            _sysctl(ns, {"net.ipv4.ip_forward": "1", f"net.ipv4.conf.{fg.device}.proxy_arp": "1",
                         f"net.ipv4.neigh.{fg.device}.proxy_delay": "0", "net.ipv4.conf.all.send_redirects": "0"},
                    changes, "forwarding and proxy ARP on")
            self._fip_sysctls.add(ns)
        return changes

    def route_fips(self, fip: FipNamespace) -> list[str]:
        """A /32 route per floating IP out of its router's fpr- (proxy ARP then answers for it on fg-), a
        gratuitous ARP for each new one; fpr- devices of routers without floating IPs here deleted."""
        ns = self.fip_namespace(fip.network_id)
        changes: list[str] = []
        hop = RFP_ADDRESS.split("/")[0]
        try:
            with _ipr(ns) as ipr:
                links = {m.get("IFLA_IFNAME"): m["index"] for m in ipr.get_links()}
                routers = {router_id for _, router_id in fip.routes}
                for name, index in sorted(links.items()):
                    if name.startswith("fpr-") and name not in {naming.fpr(r) for r in routers}:
                        ipr.link("del", index=index)
                        changes.append(f"deleted {name}")
                want = {f"{netaddr.IPAddress(ip)}/32": links[naming.fpr(router_id)] for ip, router_id in fip.routes
                        if naming.fpr(router_id) in links}
                have = {dst: oif for dst, (gw, oif) in _our_routes(ipr, 254).items() if dst.endswith("/32")}
                for dst in sorted(set(have) - set(want)):
                    try:
                        ipr.route("del", dst=dst, table=254, proto=ROUTE_PROTO)
                    except NetlinkError as err:
                        if err.code != errno.ESRCH:
                            raise
                    changes.append(f"removed route {dst}")
                new = []
                for dst, oif in sorted(want.items()):
                    if have.get(dst) != oif:
                        ipr.route("replace", dst=dst, gateway=hop, oif=oif, table=254, proto=ROUTE_PROTO,
                                  flags=4)  # RTNH_F_ONLINK: every fpr- has the same /31
                        changes.append(f"route {dst}")
                        new.append(dst.split("/")[0])
        except NetlinkError as err:
            raise DataplaneError(f"floating IPs in {ns}: {err}") from err
        if self.garp is not None:
            for ip in new:
                self.garp(ns, fip.gateway.device, ip)
        return changes

    def remove_fip(self, network_id: str) -> list[str]:
        """Its devices first (the fg- tap would linger while the kernel dismantles the namespace)."""
        ns = self.fip_namespace(network_id)
        self._fip_sysctls.discard(ns)
        if not netns.exists(ns):
            return []
        with _ipr(ns) as ipr:
            names = [m.get("IFLA_IFNAME") for m in ipr.get_links()]
        for name in names:
            if name and name.startswith(("fg-", "fpr-")):
                veth.delete(ns, name)
        netns.delete(ns)
        return [f"removed namespace {ns}"]

    # ------------------------------------------------------------------------------------ host bridges
    def ensure_bridge(self, taps: Iterable[str], dvr_mac: str) -> list[str]:
        """The host's bridge table for these qr- taps; none left: the table goes."""
        taps = sorted(set(taps))
        if not taps:
            return self.remove_bridge()
        text = render_bridge(taps, dvr_mac)
        want = digest(text)
        if self._bridge == want:
            return []
        listed = _run(self.host_netns, ["nft", "list", "table", "bridge", TABLE], check=False)
        changes = []
        if listed.returncode != 0 or digest(listed.stdout) != want:
            _run(self.host_netns, ["nft", "-f", "-"],
                 stdin=f"table bridge {TABLE}\ndelete table bridge {TABLE}\n{text}")
            changes.append(f"bridge filter for {len(taps)} router taps")
        self._bridge = want
        return changes

    def remove_bridge(self) -> list[str]:
        if self._bridge == "":
            return []
        gone = _run(self.host_netns, ["nft", "delete", "table", "bridge", TABLE], check=False).returncode == 0
        self._bridge = ""
        return ["removed bridge filter"] if gone else []
