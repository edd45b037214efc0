"""The router namespace with real packets: an emulated host with three bridges (br-a, br-b, br-ext), two
instances (10.10.1.10, 10.10.2.10), an "external" namespace (198.18.200.1, no routes to 10.x) and routers
built by RouterManager. Every namespace carries a unique prefix and is removed afterwards, even on failure."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import pytest

from fermion.dataplane import DataplaneError, naming, netns
from fermion.dataplane.router import (
    HA_RULES,
    HELPER_TABLE,
    NAT_TABLE,
    ROUTE_PROTO,
    FloatingIp,
    Ha,
    Interface,
    Router,
    RouterManager,
    nat_digest,
    render_nat,
    scope_blocked,
)
from tests.dataplane.ftp import FTP_CLIENT, FTP_PORT, FTP_SERVER
from tests.dataplane.lab import capture, require_root

TOOLS = ("ip", "nft", "arping", "ping", "tcpdump", "sysctl")
GW = "198.18.200.10"
EXT = "198.18.200.1"
VM1, VM2 = "10.10.1.10", "10.10.2.10"
FIP1, FIP2 = "198.18.200.50", "198.18.200.51"
PORT = 5201

# a TCP server that tells each client the peer address it sees, then echoes lines
SERVER = r"""
import socket, sys, threading
def serve(c, peer):
    f = c.makefile("rwb", buffering=0)
    f.write(("peer " + peer[0] + "\n").encode())
    for line in f:
        f.write(b"echo " + line)
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""
# connects, prints what the server saw as our address (or "error ...")
CLIENT = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(c.makefile().readline().split()[1])
except (OSError, IndexError) as e:
    print("error", e)
"""
# keeps one connection open: each line on stdin goes to the server, each answer comes back on stdout
LONG_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = c.makefile("rwb", buffering=0)
print(f.readline().decode().strip(), flush=True)
for line in sys.stdin:
    f.write(line.encode())
    try:
        print(f.readline().decode().strip(), flush=True)
    except OSError as e:
        print("error", e, flush=True)
"""



# ------------------------------------------------------------------------------------------- pure rendering
def _interface(port: str, prefix: str, mac: str, *addresses: str) -> Interface:
    device = naming.router_gateway(port) if prefix == "qg" else naming.router_interface(port)
    return Interface(port_id=port, device=device, tap=naming.tap(port), mac=mac, mtu=1500, addresses=addresses)


def _sample(**changes: object) -> Router:
    router = Router(id="r1", interfaces=(_interface("aaaaaaaaaaaa-1", "qr", "fa:16:3e:00:00:01", "10.10.1.1/24"),
                                         _interface("bbbbbbbbbbbb-1", "qr", "fa:16:3e:00:00:02", "10.10.2.1/24")),
                    gateway=_interface("cccccccccccc-1", "qg", "fa:16:3e:00:00:03", "198.18.200.10/24"),
                    gateway_ip="198.18.200.1", floating_ips=(FloatingIp("198.18.200.51", "10.10.2.5"),
                                                             FloatingIp("198.18.200.50", "10.10.1.5")))
    return replace(router, **changes)  # type: ignore[arg-type]


def test_rendered_nat_table_is_deterministic_and_follows_the_router() -> None:
    text = render_nat(_sample())
    assert text == render_nat(_sample(floating_ips=tuple(reversed(_sample().floating_ips))))
    assert "elements = { 10.10.1.0/24, 10.10.2.0/24 }" in text
    assert "elements = { 198.18.200.50 : 10.10.1.5, 198.18.200.51 : 10.10.2.5 }" in text
    post = text[text.index("chain postrouting"):]
    assert post.index("snat to ip saddr map @fip_snat") < post.index("snat to 198.18.200.10")  # FIPs first
    assert 'oifname "qg-ccccccccccc" ip saddr @snat_nets snat to 198.18.200.10' in text
    no_snat = render_nat(_sample(enable_snat=False))
    assert 'ip saddr @snat_nets snat to 198.18.200.10' in no_snat  # only the hairpin rule is left
    assert 'oifname "qg-ccccccccccc" ip saddr @snat_nets' not in no_snat
    no_gateway = render_nat(_sample(gateway=None, gateway_ip=None))
    assert "snat to" not in no_gateway and "198.18.200.50" not in no_gateway
    digests = {nat_digest(render_nat(r)) for r in (_sample(), _sample(enable_snat=False), _sample(floating_ips=()),
                                                    _sample(conntrack_helpers=(("tcp", 21, "ftp"),)))}
    assert len(digests) == 4 and None not in digests


def test_rendered_conntrack_helpers() -> None:
    assert HELPER_TABLE not in render_nat(_sample())
    text = render_nat(_sample(conntrack_helpers=(("udp", 69, "tftp"), ("tcp", 21, "ftp"), ("tcp", 2121, "ftp"),
                                                 ("tcp", 1720, "h323"), ("tcp", 10080, "amanda"))))
    helpers = text[text.index(f"table inet {HELPER_TABLE}"):]
    assert 'ct helper h-ftp-tcp { type "ftp" protocol tcp; }' in helpers
    assert 'ct helper h-h323-tcp { type "Q.931" protocol tcp; }' in helpers  # the kernel's name for H.323/TCP
    assert helpers.count("ct helper h-ftp-tcp {") == 1  # one object, two ports
    assert 'tcp dport 21 ct helper set "h-ftp-tcp"' in helpers and 'tcp dport 2121 ct helper set "h-ftp-tcp"' in helpers
    assert 'udp dport 69 ct helper set "h-tftp-udp"' in helpers
    assert "amanda" not in helpers  # the kernel has no amanda helper for TCP: left out, the rest still loads


def test_a_standby_sends_no_mld_report_from_the_shared_mac(tmp_path: object) -> None:
    """An HA router's device coming up on a standby (no address: keepalived has them) must send nothing, or
    the networks' learning bridges move the router's MAC, shared with the active instance, to it. The
    kernel would send MLD reports from :: for the groups forwarding joins; HA_RULES drop them."""
    require_root(TOOLS)
    prefix = "rs" + uuid.uuid4().hex[:6]
    router, wire = f"{prefix}-r", f"{prefix}-w"
    ha = Ha(1, _interface("dddddddddddd-1", "qr", "fa:16:3e:00:00:04", "169.254.192.1/18"))
    try:
        for ns in (router, wire):
            netns.create(ns)
        netns.run(["ip", "link", "add", "qr-x", "netns", router, "type", "veth", "peer", "name", "p", "netns", wire])
        netns.run(["ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1",
                   "net.ipv6.conf.default.addr_gen_mode=1"])
        netns.run(["ip", "-n", router, "link", "set", "qr-x", "addrgenmode", "none"])
        netns.run(["ip", "-n", wire, "link", "set", "p", "up"])
        heard = {}
        for label, ha_or_not in (("legacy", None), ("ha", ha)):
            subprocess.run(["ip", "netns", "exec", router, "nft", "-f", "-"], check=True, text=True,
                           input=f"flush ruleset\n{render_nat(_sample(ha=ha_or_not))}{HA_RULES if ha_or_not else ''}")
            dump = subprocess.Popen(["ip", "netns", "exec", wire, "tcpdump", "-nli", "p", "-Q", "in", "ip6"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(1.0)
            netns.run(["ip", "-n", router, "link", "set", "qr-x", "up"])
            time.sleep(2.0)  # the kernel repeats its reports within about a second
            netns.run(["ip", "-n", router, "link", "set", "qr-x", "down"])
            dump.terminate()
            heard[label] = dump.communicate(timeout=10)[0]
        assert "multicast listener report" in heard["legacy"]  # what the kernel sends (the test can see it)
        assert heard["ha"].strip() == ""
    finally:
        for ns in (router, wire):
            netns.delete(ns)


def test_scope_blocked_pairs() -> None:
    a, b = _sample().interfaces
    qr_a, qr_b, qg = a.device, b.device, _sample().gateway.device  # type: ignore[union-attr]
    assert scope_blocked(_sample()) == []  # no scopes anywhere: one (empty) scope, nothing blocked
    split = _sample(interfaces=(replace(a, address_scope="s1"), b))
    # a and b in different scopes; the gateway (no scope) reaches a only through SNAT
    assert scope_blocked(split) == sorted([(qr_a, qr_b), (qr_b, qr_a), (qg, qr_a)])
    assert sorted(scope_blocked(replace(split, enable_snat=False))) == sorted(
        [(qr_a, qr_b), (qr_b, qr_a), (qg, qr_a), (qr_a, qg)])
    # a subnet in the external network's scope is routed to it, not SNATed
    same = _sample(interfaces=(replace(a, address_scope="s1"), b),
                   gateway=replace(_sample().gateway, address_scope="s1"))  # type: ignore[type-var]
    assert "elements = { 10.10.2.0/24 }" in render_nat(same)
    assert (qr_a, qg) not in scope_blocked(same) and (qg, qr_a) not in scope_blocked(same)
    assert (qg, qr_b) in scope_blocked(same)


# ------------------------------------------------------------------------------------------- real kernel
def _require() -> None:
    require_root(TOOLS, "router data-plane tests")


def _ip(*argv: str) -> str:
    return netns.run(["ip", *argv]).stdout


def _in(ns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout,
                          check=False)


@dataclass
class Topo:
    prefix: str
    host: str
    vm1: str
    vm2: str
    ext: str
    procs: list[subprocess.Popen[str]]

    def ping(self, src: str, dst: str) -> bool:
        return _in(src, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", dst).returncode == 0

    def unreachable(self, src: str, dst: str) -> bool:
        return _in(src, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1", dst).returncode != 0

    def peer(self, src: str, dst: str, port: int = PORT) -> str:
        """The address the server at dst:port sees us coming from."""
        return _in(src, sys.executable, "-c", CLIENT, dst, str(port)).stdout.strip()

    def ftp(self, src: str, dst: str, port: int = FTP_PORT) -> str:
        """An active-mode FTP download from dst: what the server was told to connect back to, or an error."""
        return _in(src, sys.executable, "-c", FTP_CLIENT, dst, str(port)).stdout.strip()

    def serve(self, ns: str, port: int = PORT, script: str = SERVER) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, str(port)],
                                stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"


def _veth(host: str, host_end: str, inner: str, bridge: str, address: str, gateway: str | None) -> None:
    _ip("-n", host, "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", inner)
    _ip("-n", host, "link", "set", host_end, "master", bridge, "up")
    _ip("-n", inner, "link", "set", "eth0", "up")
    _ip("-n", inner, "addr", "add", address, "dev", "eth0")
    if gateway:
        _ip("-n", inner, "route", "add", "default", "via", gateway)


@pytest.fixture(scope="module")
def topo() -> Iterator[Topo]:
    _require()
    prefix = "rt" + uuid.uuid4().hex[:4]
    t = Topo(prefix, f"{prefix}-host", f"{prefix}-vm1", f"{prefix}-vm2", f"{prefix}-ext", [])
    try:
        for ns in (t.host, t.vm1, t.vm2, t.ext):
            netns.create(ns)
        for br in ("br-a", "br-b", "br-ext"):
            _ip("-n", t.host, "link", "add", br, "type", "bridge")
            _ip("-n", t.host, "link", "set", br, "up")
        _in(t.host, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
        _veth(t.host, "v-vm1", t.vm1, "br-a", f"{VM1}/24", "10.10.1.1")
        _veth(t.host, "v-vm2", t.vm2, "br-b", f"{VM2}/24", "10.10.2.1")
        _veth(t.host, "v-ext", t.ext, "br-ext", f"{EXT}/24", None)  # no route to 10.x on purpose
        _ip("-n", t.vm2, "addr", "add", "10.99.0.1/32", "dev", "lo")  # behind vm2: for the extra route
        for ns in (t.vm1, t.vm2, t.ext):
            t.serve(ns)
        t.serve(t.ext, FTP_PORT, FTP_SERVER)
        yield t
    finally:
        for proc in t.procs:
            proc.kill()
            proc.wait()
        for ns in netns.names(prefix):
            netns.delete(ns)
        leftovers = netns.names(prefix)
        assert not leftovers, f"namespaces left behind: {leftovers}"


@dataclass
class Ports:
    """Fresh port ids per router, so taps never collide with a router an earlier test removed."""

    a: str
    b: str
    g: str

    @classmethod
    def new(cls) -> Ports:
        return cls(*(str(uuid.uuid4()) for _ in range(3)))


def _router(ports: Ports, **changes: object) -> Router:
    router = Router(
        id=str(uuid.uuid4()),
        interfaces=(_interface(ports.a, "qr", "fa:16:3e:0a:00:01", "10.10.1.1/24"),
                    _interface(ports.b, "qr", "fa:16:3e:0b:00:01", "10.10.2.1/24")),
        gateway=_interface(ports.g, "qg", "fa:16:3e:0c:00:01", f"{GW}/24"),
        gateway_ip=EXT)
    return replace(router, **changes)  # type: ignore[arg-type]


@pytest.fixture
def mgr(topo: Topo) -> Iterator[RouterManager]:
    manager = RouterManager(topo.host)
    try:
        yield manager
    finally:
        for router_id in manager.present():
            manager.remove(router_id)
        manager.close()


def _ensure(topo: Topo, mgr: RouterManager, router: Router) -> list[str]:
    """ensure(), then do the L2 agent's part: attach each tap to its network's bridge."""
    changes = mgr.ensure(router)
    bridges = {"10.10.1": "br-a", "10.10.2": "br-b", "198.18.200": "br-ext"}
    links = _ip("-n", topo.host, "-o", "link", "show")
    for iface in (*router.interfaces, *([router.gateway] if router.gateway else [])):
        bridge = bridges.get(iface.addresses[0].rsplit(".", 1)[0])
        if bridge and not any(f" {iface.tap}@" in line and f"master {bridge}" in line for line in links.splitlines()):
            _ip("-n", topo.host, "link", "set", iface.tap, "master", bridge, "up")
    return changes


def _ns(mgr: RouterManager, router: Router) -> str:
    return mgr.namespace(router.id)


def _capture(ns: str, *expression: str) -> AbstractContextManager[list[str]]:
    return capture(ns, *expression)


# (a) + (f) + (h)
def test_routes_between_subnets_is_idempotent_and_removes_what_is_no_longer_wanted(topo: Topo,
                                                                                    mgr: RouterManager) -> None:
    ports = Ports.new()
    router = _router(ports)
    changes = _ensure(topo, mgr, router)
    assert changes[0].startswith("created namespace") and "applied nat" in changes, changes
    ns = _ns(mgr, router)
    assert topo.ping(topo.vm1, VM2) and topo.ping(topo.vm2, VM1)
    assert topo.peer(topo.vm1, VM2) == VM1  # no NAT between internal subnets
    assert topo.peer(topo.vm2, VM1) == VM2
    observed = mgr.observe(router.id)
    assert observed is not None and observed.forwarding
    assert set(observed.devices) == {naming.router_interface(ports.a), naming.router_interface(ports.b),
                                     naming.router_gateway(ports.g)}
    assert observed.devices[naming.router_interface(ports.a)].mac == "fa:16:3e:0a:00:01"
    assert observed.routes == {"0.0.0.0/0": (EXT,)}
    assert _in(ns, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding").stdout.split() == ["1", "1"]
    # (f) a second ensure changes nothing; neither does a new manager (a restarted agent)
    assert mgr.ensure(router) == []
    assert RouterManager(topo.host).ensure(router) == []
    assert mgr.present() >= {router.id}
    # damage is repaired: a deleted address, a downed device
    qr_a = naming.router_interface(ports.a)
    _ip("-n", ns, "addr", "flush", "dev", qr_a)
    assert mgr.ensure(router) == [f"updated {qr_a}"]
    assert topo.ping(topo.vm1, VM2)
    # dropping an interface deletes its device (and its tap with it) and cuts that subnet off
    qr_b = naming.router_interface(ports.b)
    smaller = replace(router, interfaces=router.interfaces[:1])
    changes = mgr.ensure(smaller)
    assert f"deleted {qr_b}" in changes and "applied nat" in changes, changes
    assert qr_b not in _ip("-n", ns, "link", "show")
    assert naming.tap(ports.b) not in _ip("-n", topo.host, "link", "show")
    assert topo.unreachable(topo.vm1, VM2)
    assert mgr.ensure(smaller) == []
    # (h) remove() deletes the namespace, and the taps go with their veths
    mgr.remove(router.id)
    assert not netns.exists(ns) and router.id not in mgr.present() and mgr.observe(router.id) is None
    assert naming.tap(ports.a) not in _ip("-n", topo.host, "link", "show")
    mgr.remove(router.id)  # removing what is gone is fine


def test_a_disabled_router_keeps_its_ports_plugged_but_answers_and_forwards_nothing(topo: Topo,
                                                                                      mgr: RouterManager) -> None:
    ports = Ports.new()
    router = _router(ports, enabled=False, routes=(("10.99.0.0/24", VM2),), floating_ips=(FloatingIp(FIP1, VM1),))
    _ensure(topo, mgr, router)
    ns = _ns(mgr, router)
    qr_a, qg = naming.router_interface(ports.a), naming.router_gateway(ports.g)
    observed = mgr.observe(router.id)
    assert observed is not None and not observed.forwarding and observed.routes == {}
    assert set(observed.devices) == {qr_a, naming.router_interface(ports.b), qg}
    assert not any(d.up for d in observed.devices.values())
    assert observed.devices[qg].addresses == {f"{GW}/24", f"{FIP1}/32"}
    host_links = _ip("-n", topo.host, "link", "show")
    assert all(naming.tap(p) in host_links for p in (ports.a, ports.b, ports.g))  # the L2 agent's to attach
    assert topo.unreachable(topo.vm1, "10.10.1.1") and topo.unreachable(topo.vm1, VM2)
    assert topo.unreachable(topo.ext, FIP1) and topo.unreachable(topo.vm1, EXT)
    assert mgr.ensure(router) == []
    # enabled: everything comes up, the routes with it
    enabled = replace(router, enabled=True)
    changes = mgr.ensure(enabled)
    assert changes[-1] == "enabled forwarding" and f"updated {qr_a}" in changes, changes  # forwarding last
    assert f"route 10.99.0.0/24 via {VM2}" in changes and f"route 0.0.0.0/0 via {EXT}" in changes, changes
    assert topo.ping(topo.vm1, VM2) and topo.ping(topo.vm1, "10.99.0.1")
    assert topo.peer(topo.ext, FIP1) == EXT and topo.peer(topo.vm2, EXT) == GW
    assert mgr.ensure(enabled) == []
    # disabled again
    assert mgr.ensure(router)[0] == "disabled forwarding"
    assert _in(ns, "sysctl", "-n", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding").stdout.split() == ["0", "0"]
    assert topo.unreachable(topo.vm1, VM2) and topo.unreachable(topo.ext, FIP1)
    assert mgr.ensure(router) == []
    assert RouterManager(topo.host).ensure(router) == []  # a restarted agent finds it as it should be


# (b) + (d)
def test_snat_hides_instances_behind_the_gateway_address_unless_disabled(topo: Topo, mgr: RouterManager) -> None:
    router = _router(Ports.new())
    _ensure(topo, mgr, router)
    assert topo.ping(topo.vm1, EXT) and topo.ping(topo.vm2, EXT)
    assert topo.peer(topo.vm1, EXT) == GW
    assert topo.peer(topo.vm2, EXT) == GW
    # (d) without SNAT the instance's own address leaves the router; the external side cannot answer it
    no_snat = replace(router, enable_snat=False)
    assert mgr.ensure(no_snat) == ["applied nat"]
    with _capture(topo.ext, "icmp") as seen:
        assert topo.unreachable(topo.vm1, EXT)
    assert any(f"{VM1} > {EXT}: ICMP echo request" in line for line in seen), seen
    assert topo.peer(topo.vm1, EXT).startswith("error")
    assert topo.ping(topo.vm1, VM2)  # routing still works
    assert mgr.ensure(router) == ["applied nat"]
    assert topo.peer(topo.vm1, EXT) == GW


# (c)
def test_floating_ip_is_reachable_from_outside_and_is_the_instances_source(topo: Topo, mgr: RouterManager) -> None:
    ports = Ports.new()
    router = _router(ports)
    _ensure(topo, mgr, router)
    assert topo.unreachable(topo.ext, FIP1)
    with _capture(topo.ext, "arp", "and", "host", FIP1) as seen:
        changes = mgr.ensure(replace(router, floating_ips=(FloatingIp(FIP1, VM1),)))
        mgr.close(wait=3)  # reaps the background arping: the announcement has been sent
    qg = naming.router_gateway(ports.g)
    assert changes == [f"updated {qg}", "applied nat"], changes
    assert any(f"tell {FIP1}" in line for line in seen), seen  # the gratuitous ARP reached the outside
    observed = mgr.observe(router.id)
    assert observed is not None and f"{FIP1}/32" in observed.devices[qg].addresses
    assert topo.ping(topo.ext, FIP1)
    assert topo.peer(topo.ext, FIP1) == EXT  # DNAT only: the instance sees the real external client
    assert topo.peer(topo.vm1, EXT) == FIP1  # and it goes out as its floating IP
    assert topo.peer(topo.vm2, EXT) == GW  # the other instance still uses the gateway address
    assert topo.peer(topo.vm1, FIP1) == FIP1  # hairpin: its own floating IP, from inside
    assert topo.peer(topo.vm2, FIP1) == GW  # another subnet reaching the floating IP
    assert topo.peer(topo.vm2, VM1) == VM2  # no NAT between subnets, floating IP or not
    # enable_snat=False keeps floating IPs working
    assert mgr.ensure(replace(router, floating_ips=(FloatingIp(FIP1, VM1),), enable_snat=False)) == ["applied nat"]
    assert topo.peer(topo.vm1, EXT) == FIP1 and topo.peer(topo.ext, FIP1) == EXT
    assert topo.peer(topo.vm2, EXT).startswith("error")
    # removing the floating IP takes the address and the translation away
    assert mgr.ensure(router) == [f"updated {qg}", "applied nat"]
    observed = mgr.observe(router.id)
    assert observed is not None and f"{FIP1}/32" not in observed.devices[qg].addresses
    assert topo.unreachable(topo.ext, FIP1)
    assert topo.peer(topo.ext, FIP1).startswith("error")
    assert topo.peer(topo.vm1, EXT) == GW


# (e)
def test_extra_routes_are_added_and_removed_and_other_routes_are_left_alone(topo: Topo, mgr: RouterManager) -> None:
    router = _router(Ports.new())
    _ensure(topo, mgr, router)
    ns = _ns(mgr, router)
    assert topo.unreachable(topo.vm1, "10.99.0.1")
    routed = replace(router, routes=(("10.99.0.0/24", VM2),))
    assert mgr.ensure(routed) == [f"route 10.99.0.0/24 via {VM2}"]
    assert f"10.99.0.0/24 via {VM2} dev" in _ip("-n", ns, "route", "show", "proto", str(ROUTE_PROTO))
    assert topo.ping(topo.vm1, "10.99.0.1")
    assert mgr.ensure(routed) == []
    # a route someone else put there (proto static) is not ours to remove
    _ip("-n", ns, "route", "add", "10.98.0.0/24", "via", VM1, "proto", "static")
    assert mgr.ensure(router) == ["removed route 10.99.0.0/24"]
    table = _ip("-n", ns, "route", "show")
    assert "10.99.0.0/24" not in table and "10.98.0.0/24 via" in table
    assert "10.10.1.0/24 dev" in table and "proto kernel" in table  # connected routes stay
    assert topo.unreachable(topo.vm1, "10.99.0.1")
    # a route whose nexthop is unreachable is reported, after everything else was applied
    bad = replace(router, routes=(("10.97.0.0/24", "172.31.0.1"),), floating_ips=(FloatingIp(FIP2, VM2),))
    with pytest.raises(DataplaneError, match="10.97.0.0/24"):
        mgr.ensure(bad)
    assert topo.peer(topo.vm2, EXT) == FIP2


# (g)
def test_established_connection_through_a_floating_ip_survives_other_changes(topo: Topo,
                                                                              mgr: RouterManager) -> None:
    router = _router(Ports.new(), floating_ips=(FloatingIp(FIP1, VM1),))
    _ensure(topo, mgr, router)
    ns = _ns(mgr, router)
    # strict TCP tracking: a lost conntrack entry would make the next segment invalid, and we drop those
    assert _in(ns, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_loose=0").returncode == 0
    client = subprocess.Popen(["ip", "netns", "exec", topo.ext, sys.executable, "-c", LONG_CLIENT, FIP1, str(PORT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdin is not None and client.stdout is not None
        assert client.stdout.readline().strip() == f"peer {EXT}"

        def say(word: str) -> str:
            assert client.stdin is not None and client.stdout is not None
            client.stdin.write(word + "\n")
            client.stdin.flush()
            return client.stdout.readline().strip()

        assert say("one") == "echo one"
        entry = [line for line in _in(ns, "cat", "/proc/net/nf_conntrack").stdout.splitlines()
                 if f"dst={FIP1}" in line and f"dport={PORT}" in line and "ESTABLISHED" in line]
        assert len(entry) == 1, entry
        changed = replace(router, floating_ips=(FloatingIp(FIP1, VM1), FloatingIp(FIP2, VM2)),
                          routes=(("10.99.0.0/24", VM2),))
        assert "applied nat" in mgr.ensure(changed)
        assert say("two") == "echo two"
        assert topo.peer(topo.ext, FIP2) == EXT  # the change itself took effect
        assert "applied nat" in mgr.ensure(replace(changed, enable_snat=False))
        assert say("three") == "echo three"
        after = [line for line in _in(ns, "cat", "/proc/net/nf_conntrack").stdout.splitlines()
                 if f"dst={FIP1}" in line and f"dport={PORT}" in line and "ESTABLISHED" in line]
        assert len(after) == 1, after
    finally:
        client.kill()
        client.wait()


def test_nat_table_is_replaced_whole_and_observed(topo: Topo, mgr: RouterManager) -> None:
    router = _router(Ports.new(), floating_ips=(FloatingIp(FIP1, VM1),))
    _ensure(topo, mgr, router)
    ns = _ns(mgr, router)
    listed = _in(ns, "nft", "list", "table", "ip", NAT_TABLE).stdout
    assert f"{FIP1} : {VM1}" in listed and "ct state invalid drop" in listed
    observed = mgr.observe(router.id)
    assert observed is not None and observed.nat_digest == nat_digest(render_nat(router))
    # hand-made damage in our table is not seen by the cache, but a new manager re-checks the digest
    _in(ns, "nft", "delete", "table", "ip", NAT_TABLE)
    assert RouterManager(topo.host).ensure(router) == ["applied nat"]
    assert nat_digest(_in(ns, "nft", "list", "table", "ip", NAT_TABLE).stdout) == nat_digest(render_nat(router))


def test_timing_three_interfaces_and_ten_floating_ips(topo: Topo, mgr: RouterManager) -> None:
    ports = [str(uuid.uuid4()) for _ in range(3)]
    fips = tuple(FloatingIp(f"198.18.201.{10 + i}", f"10.20.1.{10 + i}") for i in range(10))
    router = Router(id=str(uuid.uuid4()),
                    interfaces=(_interface(ports[0], "qr", "fa:16:3e:1a:00:01", "10.20.1.1/24"),
                                _interface(ports[1], "qr", "fa:16:3e:1b:00:01", "10.20.2.1/24")),
                    gateway=_interface(ports[2], "qg", "fa:16:3e:1c:00:01", "198.18.201.2/24"),
                    gateway_ip="198.18.201.1", floating_ips=fips)
    t0 = time.perf_counter()
    first = mgr.ensure(router)
    t1 = time.perf_counter()
    again = mgr.ensure(router)
    t2 = time.perf_counter()
    one_more = mgr.ensure(replace(router, floating_ips=(*fips, FloatingIp("198.18.201.99", "10.20.2.99"))))
    t3 = time.perf_counter()
    restarted = RouterManager(topo.host).ensure(replace(router, floating_ips=(*fips, FloatingIp("198.18.201.99",
                                                                                            "10.20.2.99"))))
    t4 = time.perf_counter()
    assert len(first) >= 5 and again == [] and one_more == [f"updated {naming.router_gateway(ports[2])}",
                                                             "applied nat"] and restarted == []
    observed = mgr.observe(router.id)
    assert observed is not None and len(observed.devices[naming.router_gateway(ports[2])].addresses) == 12
    print(f"\nrouter ensure (3 interfaces, 10 floating IPs): first {1000 * (t1 - t0):.0f} ms, "
          f"no-op {1000 * (t2 - t1):.1f} ms, one floating IP more {1000 * (t3 - t2):.0f} ms, "
          f"no-op after a restart {1000 * (t4 - t3):.0f} ms")


def test_conntrack_helper_lets_active_ftp_through_snat(topo: Topo, mgr: RouterManager) -> None:
    """Active FTP from behind SNAT works only with the FTP helper: it rewrites the PORT command to the gateway
    address and lets the server's data connection back in; without it the server is told 10.10.1.10."""
    router = _router(Ports.new())
    _ensure(topo, mgr, router)
    assert topo.peer(topo.vm1, EXT) == GW  # SNAT is on
    failed = topo.ftp(topo.vm1, EXT)
    assert failed.startswith("error 425") and VM1 in failed, failed
    with_helper = replace(router, conntrack_helpers=(("tcp", FTP_PORT, "ftp"),))
    assert _ensure(topo, mgr, with_helper) == ["applied nat"]
    told = topo.ftp(topo.vm1, EXT)
    assert told.startswith(f"told {GW}:"), told
    ns = _ns(mgr, router)
    assert f"tcp dport {FTP_PORT}" in _in(ns, "nft", "list", "table", "inet", HELPER_TABLE).stdout
    # the helper on another port does nothing for this server; removing helpers removes their table
    assert _ensure(topo, mgr, replace(router, conntrack_helpers=(("tcp", 21, "ftp"),))) == ["applied nat"]
    assert topo.ftp(topo.vm1, EXT).startswith("error 425")
    assert _ensure(topo, mgr, router) == ["applied nat"]
    assert _in(ns, "nft", "list", "table", "inet", HELPER_TABLE).returncode != 0
    assert mgr.ensure(with_helper) == ["applied nat"] and mgr.ensure(with_helper) == []
    assert RouterManager(topo.host).ensure(with_helper) == []  # a restarted agent finds it in place
    assert topo.ftp(topo.vm1, EXT).startswith(f"told {GW}:")


def test_address_scopes_are_not_routed_between_without_nat(topo: Topo, mgr: RouterManager) -> None:
    ports = Ports.new()
    router = _router(ports)
    a, b = router.interfaces
    split = replace(router, interfaces=(replace(a, address_scope="scope-1"), replace(b, address_scope="scope-2")))
    _ensure(topo, mgr, split)
    # different scopes: no routing between the two subnets, in either direction
    assert topo.unreachable(topo.vm1, VM2) and topo.unreachable(topo.vm2, VM1)
    assert topo.peer(topo.vm1, VM2).startswith("error")
    # both still reach the outside through SNAT, and a floating IP crosses scopes (it is NAT)
    assert topo.peer(topo.vm1, EXT) == GW and topo.peer(topo.vm2, EXT) == GW
    assert mgr.ensure(replace(split, floating_ips=(FloatingIp(FIP1, VM1),))) != []
    assert topo.peer(topo.ext, FIP1) == EXT
    assert topo.peer(topo.vm2, FIP1) == GW  # from the other scope, to the floating IP: NATed both ways
    # one scope again (and the floating IP gone): routed, without NAT
    assert "applied nat" in mgr.ensure(replace(router, interfaces=(replace(a, address_scope="scope-1"),
                                                                   replace(b, address_scope="scope-1"))))
    assert topo.peer(topo.vm1, VM2) == VM1 and topo.peer(topo.vm2, VM1) == VM2


def test_a_subnet_in_the_external_scope_is_routed_not_snatted(topo: Topo, mgr: RouterManager) -> None:
    ports = Ports.new()
    router = _router(ports)
    a, b = router.interfaces
    assert router.gateway is not None
    scoped = replace(router, interfaces=(replace(a, address_scope="public"), b),
                     gateway=replace(router.gateway, address_scope="public"))
    _ensure(topo, mgr, scoped)
    _ip("-n", topo.ext, "route", "add", "10.10.0.0/16", "via", GW)
    try:
        assert topo.peer(topo.vm1, EXT) == VM1  # same scope as the external network: its own address
        assert topo.peer(topo.vm2, EXT) == GW  # no scope: SNAT as before
        assert topo.peer(topo.ext, VM1) == EXT  # and the outside reaches it directly
        assert topo.peer(topo.ext, VM2).startswith("error")  # but not the subnet of another scope
        assert topo.unreachable(topo.ext, VM2)
    finally:
        _ip("-n", topo.ext, "route", "del", "10.10.0.0/16", "via", GW)


def _eventually(check: Callable[[], bool], seconds: float = 8.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False


def test_ipv6_address_scopes_are_never_routed_between(topo: Topo, mgr: RouterManager) -> None:
    vm1_6, vm2_6 = "2001:db8:a::10", "2001:db8:b::10"
    router = _router(Ports.new())
    a, b = router.interfaces
    a = replace(a, addresses=(*a.addresses, "2001:db8:a::1/64"))
    b = replace(b, addresses=(*b.addresses, "2001:db8:b::1/64"))
    plain = replace(router, interfaces=(a, b))
    added = [(topo.vm1, f"{vm1_6}/64", "2001:db8:a::1"), (topo.vm2, f"{vm2_6}/64", "2001:db8:b::1")]
    try:
        for ns, address, gateway in added:
            _ip("-n", ns, "addr", "add", address, "dev", "eth0", "nodad")
            _ip("-n", ns, "-6", "route", "add", "default", "via", gateway)
        _ensure(topo, mgr, plain)
        assert _eventually(lambda: topo.ping(topo.vm1, vm2_6)) and topo.ping(topo.vm2, vm1_6)
        # different IPv6 scopes: dropped both ways (there is no NAT to cross with); IPv4 is not affected
        assert mgr.ensure(replace(plain, interfaces=(replace(a, address_scope6="s6"), b))) == ["applied nat"]
        assert topo.unreachable(topo.vm1, vm2_6) and topo.unreachable(topo.vm2, vm1_6)
        assert topo.ping(topo.vm1, VM2)
        ns = _ns(mgr, plain)
        listed = _in(ns, "nft", "list", "table", "ip6", "fermion_scope6").stdout
        assert "iifname . oifname @scope_block drop" in listed
        # the same scope on both: routed again
        assert mgr.ensure(replace(plain, interfaces=(replace(a, address_scope6="s6"),
                                                     replace(b, address_scope6="s6")))) == ["applied nat"]
        assert topo.ping(topo.vm1, vm2_6)
    finally:
        for ns, address, gateway in added:
            _in(ns, "ip", "-6", "route", "del", "default", "via", gateway)
            _in(ns, "ip", "addr", "del", address, "dev", "eth0")
