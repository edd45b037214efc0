"""Distributed virtual routing with real packets: three emulated hosts on a VXLAN underlay (h1 and h2 in
mode dvr with instances, h3 in mode dvr_snat holding the router's SNAT part), a flat external network
whose "internet" is a namespace on 198.18.100.0/24. The real Linux-bridge agent and L3 agent of each host
are driven with views built here (no server). Every namespace carries a unique prefix and is removed
afterwards, even on failure."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fermion.agent.l2.agent import LinuxBridgeAgent
from fermion.agent.l2.reconciler import L2Config
from fermion.agent.l3.agent import L3Agent
from fermion.dataplane import dvr, naming, netns
from fermion.rpc.contracts import (
    DvrRouter,
    FipGateway,
    FloatingIp,
    L2Network,
    L2Port,
    L2View,
    L3View,
    Neighbor,
    RemotePort,
    Router,
    RouterPort,
    Segment,
    encode,
)
from tests.dataplane.lab import capture, next_peer, ping_ns, require_root, tcp_connects, tcp_listener

TOOLS = ("ip", "nft", "arping", "ping", "tcpdump", "sysctl", "bridge")
HOSTS = {"h1": "198.18.0.11", "h2": "198.18.0.12", "h3": "198.18.0.13"}
DVR_MACS = {"h1": "fa:16:3f:00:00:01", "h2": "fa:16:3f:00:00:02", "h3": "fa:16:3f:00:00:03"}
MODES = {"h1": "dvr", "h2": "dvr", "h3": "dvr_snat"}
EXT_IP, GATEWAY_IP, FIP = "198.18.100.1", "198.18.100.20", "198.18.100.50"
NET_A, NET_B, NET_EXT = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b", \
    "eeeeeeee-0000-4000-8000-00000000000e"
VNI = {NET_A: 1001, NET_B: 1002}
ROUTER = "dddddddd-0000-4000-8000-000000000001"


def _port(pid: str, network: str, mac: str, address: str, mtu: int = 1450) -> RouterPort:
    return RouterPort(id=pid, network_id=network, mac=mac, mtu=mtu, addresses=[address])


QR_A = _port("1aaaaaaa-0000-4000-8000-000000000001", NET_A, "fa:16:3e:0a:00:01", "10.1.0.1/24")
QR_B = _port("1bbbbbbb-0000-4000-8000-000000000001", NET_B, "fa:16:3e:0b:00:01", "10.2.0.1/24")
SG_A = _port("2aaaaaaa-0000-4000-8000-000000000003", NET_A, "fa:16:3e:0a:00:03", "10.1.0.3/24")
SG_B = _port("2bbbbbbb-0000-4000-8000-000000000003", NET_B, "fa:16:3e:0b:00:03", "10.2.0.3/24")
QG = _port("3eeeeeee-0000-4000-8000-000000000020", NET_EXT, "fa:16:3e:0e:00:20", f"{GATEWAY_IP}/24", 1500)
FG = {"h1": _port("4eeeeeee-0000-4000-8000-000000000011", NET_EXT, "fa:16:3e:0e:00:11", "198.18.100.11/24", 1500),
      "h2": _port("4eeeeeee-0000-4000-8000-000000000012", NET_EXT, "fa:16:3e:0e:00:12", "198.18.100.12/24", 1500)}


@dataclass(frozen=True)
class Vm:
    name: str
    host: str
    network: str
    port: str
    mac: str
    ip: str
    gateway: str


VMS = [Vm("vm1", "h1", NET_A, "5aaaaaaa-0000-4000-8000-000000000011", "fa:16:3e:0a:00:11", "10.1.0.11", "10.1.0.1"),
       Vm("vm2", "h1", NET_B, "5bbbbbbb-0000-4000-8000-000000000012", "fa:16:3e:0b:00:12", "10.2.0.12", "10.2.0.1"),
       Vm("vm3", "h2", NET_B, "5bbbbbbb-0000-4000-8000-000000000013", "fa:16:3e:0b:00:13", "10.2.0.13", "10.2.0.1")]
VM = {vm.name: vm for vm in VMS}


@dataclass
class Cloud:
    prefix: str
    tmp: Path
    l2: dict[str, LinuxBridgeAgent] = field(default_factory=dict)
    l3: dict[str, L3Agent] = field(default_factory=dict)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def vm(self, name: str) -> str:
        return self.ns(name)

    # ---------------------------------------------------------------- views
    def l3_view(self, host: str, routers: bool = True, fip: bool = True) -> L3View:
        local, central = host in ("h1", "h2"), host == "h3"
        fips = [FloatingIp(FIP, VM["vm3"].ip, id="f1", revision=1, status="DOWN")] if host == "h2" and fip else []
        neighbors = [Neighbor(vm.ip, vm.mac) for vm in VMS] + \
            [Neighbor(p.addresses[0].split("/")[0], p.mac) for p in (SG_A, SG_B)]
        router = Router(id=ROUTER, revision=1, admin_state_up=True, interfaces=[QR_A, QR_B], gateway=QG,
                        gateway_ip=EXT_IP, floating_ips=fips,
                        distributed=DvrRouter(local=local, central=central, snat_ports=[SG_A, SG_B],
                                              neighbors=neighbors))
        gateways = [FipGateway(NET_EXT, FG[host], EXT_IP)] if host in FG and routers else []
        return L3View(host=host, routers=[router] if routers else [], dvr_mac=DVR_MACS[host], fip_gateways=gateways)

    def l2_view(self, host: str) -> L2View:
        others = [HOSTS[h] for h in HOSTS if h != host]
        mine: list[tuple[str, str]] = [(vm.port, vm.network) for vm in VMS if vm.host == host]
        if host in ("h1", "h2"):
            mine += [(QR_A.id, NET_A), (QR_B.id, NET_B), (FG[host].id, NET_EXT)]
        else:
            mine += [(SG_A.id, NET_A), (SG_B.id, NET_B), (QG.id, NET_EXT)]
        remote: dict[str, list[RemotePort]] = {NET_A: [], NET_B: []}
        for vm in VMS:
            if vm.host != host:
                remote[vm.network].append(RemotePort(vm.mac, [vm.ip], HOSTS[vm.host]))
        if host != "h3":
            for sg in (SG_A, SG_B):
                remote[sg.network_id].append(RemotePort(sg.mac, [sg.addresses[0].split("/")[0]], HOSTS["h3"]))
        networks = [L2Network(net, 1450, True, Segment("vxlan", None, VNI[net]), vteps=others, remote_ports=remote[net])
                    for net in (NET_A, NET_B)]
        networks.append(L2Network(NET_EXT, 1500, True, Segment("flat", "physnet1", None)))
        ports = [L2Port(pid, net, "", 1, True, "compute:nova") for pid, net in mine]
        return L2View(host=host, networks=networks, ports=ports)

    def sync(self, host: str, view: L3View | None = None) -> list[str]:
        """The host's L3 agent (full sync), then its L2 agent (which attaches the taps the L3 agent made)."""
        result = self.l3[host].sync(encode(view or self.l3_view(host)), None)
        assert not result.failed, f"L3 sync on {host} failed"
        changes = self.l3[host].last_changes
        assert not self.l2[host].sync(encode(self.l2_view(host)), None).failed
        return changes

    def sync_all(self) -> dict[str, list[str]]:
        return {host: self.sync(host) for host in HOSTS}


def _ip(ns: str, *argv: str) -> str:
    return netns.run(["ip", "-n", ns, *argv]).stdout


def _in(ns: str, *argv: str, timeout: float = 20, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout,
                          check=False, input=input)


def _build(c: Cloud) -> None:
    ul, ext = c.ns("ul"), c.ns("ext")
    for ns in (ul, ext, *(c.ns(h) for h in HOSTS), *(c.vm(v.name) for v in VMS)):
        netns.create(ns)
    for br in ("br-ul", "br-ext"):
        _ip(ul, "link", "add", br, "type", "bridge")
        _ip(ul, "link", "set", br, "up")
    _in(ul, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
    for host, address in HOSTS.items():
        h = c.ns(host)
        _ip(h, "link", "add", "ul0", "type", "veth", "peer", "name", f"ul-{host}", "netns", ul)
        _ip(h, "link", "add", "eth1", "type", "veth", "peer", "name", f"ex-{host}", "netns", ul)
        _ip(ul, "link", "set", f"ul-{host}", "master", "br-ul", "up")
        _ip(ul, "link", "set", f"ex-{host}", "master", "br-ext", "up")
        _ip(h, "addr", "add", f"{address}/24", "dev", "ul0")
        _ip(h, "link", "set", "ul0", "up")
        _ip(h, "link", "set", "eth1", "up")
    _ip(ext, "link", "add", "eth0", "type", "veth", "peer", "name", "ex-ext", "netns", ul)
    _ip(ul, "link", "set", "ex-ext", "master", "br-ext", "up")
    _ip(ext, "addr", "add", f"{EXT_IP}/24", "dev", "eth0")
    _ip(ext, "link", "set", "eth0", "up")
    for vm in VMS:
        ns = c.vm(vm.name)
        _in(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        _ip(ns, "link", "add", "eth0", "address", vm.mac, "mtu", "1450", "type", "veth", "peer", "name",
            naming.tap(vm.port), "netns", c.ns(vm.host))
        _ip(ns, "link", "set", "eth0", "up")
        _ip(ns, "addr", "add", f"{vm.ip}/24", "dev", "eth0")
        _ip(ns, "route", "add", "default", "via", vm.gateway)
    for host in HOSTS:
        c.l2[host] = LinuxBridgeAgent(host, L2Config(HOSTS[host], {"physnet1": "eth1"}), c.ns(host))
        c.l3[host] = L3Agent(host, c.ns(host), c.tmp, agent_mode=MODES[host])


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    require_root(TOOLS, "DVR data-plane tests")
    c = Cloud("dv" + uuid.uuid4().hex[:6], tmp_path)
    try:
        _build(c)
        yield c
    finally:
        for agent in [*c.l3.values(), *c.l2.values()]:
            agent.stop()
        for ns in netns.names(c.prefix):
            netns.delete(ns)
        leftovers = netns.names(c.prefix)
        assert not leftovers, f"namespaces left behind: {leftovers}"


# in the underlay's bridge: VXLAN packets carrying ICMP (inner IPv4 protocol 1: 8 bytes of UDP, 8 of VXLAN,
# 14 of Ethernet and 9 into the IPv4 header), counted per host port and direction
COUNTERS = "table bridge icmp_count {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n" + \
    "".join(f'    {way}ifname "ul-{h}" udp dport 4789 @th,312,8 1 counter comment "{way}-{h}"\n'
            for h in HOSTS for way in ("i", "o")) + "  }\n}\n"


def _counters(c: Cloud) -> dict[str, int]:
    """ICMP packets through the underlay: "i-h1" (sent by h1), "o-h1" (delivered to h1) ..."""
    listed = _in(c.ns("ul"), "nft", "list", "table", "bridge", "icmp_count").stdout
    return {m[1]: int(m[0]) for m in re.findall(r'counter packets (\d+) bytes \d+ comment "([io]-h\d)"', listed)}


def _crossed(c: Cloud, before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in _counters(c).items() if v != before[k]}


def _ping(c: Cloud, src: str, dst: str, count: int = 10) -> bool:
    return _in(c.vm(src), "ping", "-q", "-c", str(count), "-i", "0.05", "-W", "1", dst).returncode == 0


def _wait(check: object, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _snapshot(c: Cloud) -> dict[str, str]:
    """What the kernel holds in every namespace of the cloud (but counters and neighbour states)."""
    out = {}
    for ns in netns.names(c.prefix):
        if ns in (c.ns("ul"), c.ns("ext")) or any(ns == c.vm(v.name) for v in VMS):
            continue
        parts = [_ip(ns, "-o", "link", "show"), _ip(ns, "-o", "addr", "show"), _ip(ns, "rule", "show"),
                 _ip(ns, "route", "show", "table", "all"), _ip(ns, "neigh", "show", "nud", "permanent"),
                 _in(ns, "nft", "list", "ruleset").stdout]
        out[ns] = re.sub(r"link-netns \S+|link-netnsid \d+", "", "\n".join(parts))
    return out


def test_dvr_routes_locally_across_hosts_serves_floating_ips_per_host_and_snats_centrally(cloud: Cloud) -> None:
    c = cloud
    c.sync_all()
    for vm in VMS:
        _wait(lambda vm=vm: ping_ns(c.vm(vm.name), vm.gateway, count=1), f"{vm.name} to reach its gateway")

    # (1) both instances on h1, different subnets: routed by h1's copy, nothing on the underlay
    _in(c.ns("ul"), "nft", "-f", "-", input=COUNTERS)
    before = _counters(c)
    assert _ping(c, "vm1", VM["vm2"].ip, count=20)
    assert _crossed(c, before) == {}

    # (2) vm1 (h1, A) to vm3 (h2, B): each packet crosses the underlay once, from the sender's DVR MAC
    before = _counters(c)
    with capture(c.ns("ul"), "udp", "port", "4789", device="ul-h1", link=True) as seen:
        assert _ping(c, "vm1", VM["vm3"].ip, count=5)
    assert _crossed(c, before) == {"i-h1": 5, "o-h2": 5, "i-h2": 5, "o-h1": 5}  # not h3: no detour
    requests = [line for line in seen if "ICMP echo request" in line]
    replies = [line for line in seen if "ICMP echo reply" in line]
    assert len(requests) == 5 and len(replies) == 5, seen
    # h1's copy routed the request (into B), h2's the reply (into A): each carries its host's DVR MAC
    assert all(f"{DVR_MACS['h1']} > {VM['vm3'].mac}" in line for line in requests), requests
    assert all(f"{DVR_MACS['h2']} > {VM['vm1'].mac}" in line for line in replies), replies
    assert not [line for line in seen if QR_A.mac in line or QR_B.mac in line]  # the shared MACs stay home

    # (3) vm3's floating IP is served by h2's fg-: the outside learns h2's fg MAC for it
    ext = c.ns("ext")
    _in(ext, "ip", "neigh", "flush", "all")
    _wait(lambda: ping_ns(ext, FIP, count=1), "the floating IP to answer")
    assert re.search(rf"{FIP} .*lladdr {FG['h2'].mac}", _ip(ext, "neigh", "show", FIP)), _ip(ext, "neigh")
    with tcp_listener(c.vm("vm3"), 22) as listener:
        assert tcp_connects(ext, FIP, 22)
        assert next_peer(listener) == EXT_IP  # DNAT keeps the client's address
    with tcp_listener(ext, 8081) as listener:
        assert tcp_connects(c.vm("vm3"), EXT_IP, 8081)
        assert next_peer(listener) == FIP  # the instance's own traffic leaves from its floating IP
    assert not _ip(c.ns("h1") + f"-fip-{NET_EXT}", "route", "show", f"{FIP}/32").strip()  # h1 has no route

    # (4) vm1 has no floating IP: out through the SNAT part on h3, from the router's gateway address
    with tcp_listener(ext, 8082) as listener:
        _wait(lambda: tcp_connects(c.vm("vm1"), EXT_IP, 8082), "vm1 to reach the outside through SNAT")
        assert next_peer(listener) == GATEWAY_IP
    with tcp_listener(ext, 8083) as listener:  # vm2 on another subnet, too
        assert tcp_connects(c.vm("vm2"), EXT_IP, 8083)
        assert next_peer(listener) == GATEWAY_IP

    # (5) syncing again changes nothing, in the agents' words and in the kernel
    before_state = _snapshot(c)
    assert c.sync_all() == {host: [] for host in HOSTS}
    assert _snapshot(c) == before_state
    # a fresh agent (a restart) converges without rebuilding anything either
    for host in HOSTS:
        c.l3[host].stop()
        c.l3[host] = L3Agent(host, c.ns(host), c.tmp, agent_mode=MODES[host])
    restarted = c.sync_all()
    assert all(not re.search(r"created|plugged|applied|rule from|bridge filter", " ".join(v))
               for v in restarted.values()), restarted
    assert _snapshot(c) == before_state
    assert _ping(c, "vm1", VM["vm3"].ip, count=2)


def test_floating_ip_moves_and_removing_the_router_leaves_nothing_behind(cloud: Cloud) -> None:
    c = cloud
    c.sync_all()
    ext = c.ns("ext")
    _wait(lambda: ping_ns(ext, FIP, count=1), "the floating IP to answer")
    fip_h2 = f"{c.ns('h2')}-fip-{NET_EXT}"
    assert naming.fpr(ROUTER) in _ip(fip_h2, "link", "show")

    # the floating IP disassociated: its route, fpr-/rfp- and its NAT go; h2 stops answering for it
    c.sync("h2", c.l3_view("h2", fip=False))
    qrouter_h2 = naming.router_namespace(ROUTER, c.ns("h2"))
    assert naming.rfp(ROUTER) not in _ip(qrouter_h2, "link", "show")
    assert naming.fpr(ROUTER) not in _ip(fip_h2, "link", "show")
    assert f"from {VM['vm3'].ip} lookup {dvr.FIP_TABLE}" not in _ip(qrouter_h2, "rule", "show")
    _in(ext, "ip", "neigh", "flush", "all")
    assert not ping_ns(ext, FIP, count=1)
    with tcp_listener(ext, 8084) as listener:  # vm3 now leaves through SNAT on h3
        _wait(lambda: tcp_connects(c.vm("vm3"), EXT_IP, 8084), "vm3 to reach the outside through SNAT")
        assert next_peer(listener) == GATEWAY_IP

    # the router gone everywhere: no namespace, device, rule or table of it is left
    for host in HOSTS:
        result = c.l3[host].sync(encode(c.l3_view(host, routers=False)), None)
        assert not result.failed
    for host in HOSTS:
        h = c.ns(host)
        assert [n for n in netns.names(h) if n != h] == []
        links = _ip(h, "-o", "link", "show")
        for port in (QR_A, QR_B, SG_A, SG_B, QG, *FG.values()):
            assert naming.tap(port.id) not in links
        assert dvr.TABLE not in _in(h, "nft", "list", "ruleset").stdout
    assert not ping_ns(c.vm("vm1"), VM["vm3"].ip, count=1)


def test_bridge_table_rewrites_drops_and_isolates(cloud: Cloud) -> None:
    """The host's bridge table as loaded: it holds exactly the local copies' taps."""
    c = cloud
    c.sync_all()
    listed = _in(c.ns("h1"), "nft", "list", "table", "bridge", dvr.TABLE).stdout
    assert naming.tap(QR_A.id) in listed and naming.tap(QR_B.id) in listed
    assert naming.tap(VM["vm1"].port) not in listed and naming.tap(FG["h1"].id) not in listed
    assert f"ether saddr set {DVR_MACS['h1']}" in listed
    assert dvr.TABLE not in _in(c.ns("h3"), "nft", "list", "ruleset").stdout  # no local copy on h3
    # h1's copy must not be reached from another host: vm3 (h2) asks for h1's... gateway MAC only at home
    _in(c.vm("vm3"), "ip", "neigh", "flush", "all")
    assert ping_ns(c.vm("vm3"), VM["vm3"].gateway, count=1)
    assert QR_B.mac in _ip(c.vm("vm3"), "neigh", "show", VM["vm3"].gateway)
    fdb = netns.run(["bridge", "-n", c.ns("h1"), "fdb", "show", "br", naming.bridge(NET_B)]).stdout
    assert not re.search(rf"{QR_B.mac} dev vxlan", fdb), fdb  # never learnt from the underlay
