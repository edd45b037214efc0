"""Security groups on OVS hosts with real packets: two emulated hosts with their own OVS daemons, five
instances on two VXLAN networks (the same addresses in both), driven by the OVS agent's sync with the views the
server would send, firewall included. TCP 22 and only TCP 22, remote groups following membership, spoofed
sources dropped unless allowed as an address pair, port security off, established connections across an
agent restart and cut by a rule's removal, conntrack zones per network, and a tap made again."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import netns as pyns

from fermion.agent.ovs.agent import OvsAgent
from fermion.agent.ovs.planner import OvsConfig, plan
from fermion.dataplane import naming, netns
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import (
    Firewall,
    L2Network,
    L2Port,
    L2View,
    PortSecurity,
    RemotePort,
    SecurityGroup,
    SecurityRule,
    Segment,
    decode,
    encode,
)
from tests.dataplane.lab import require_root

UNDERLAY = {"h1": "198.18.4.11", "h2": "198.18.4.12"}
NET_A, NET_B = "6b0c2c39-0000-4000-8000-0000000000a1", "6b0c2c39-0000-4000-8000-0000000000b1"
SEGMENTS = {NET_A: Segment("vxlan", None, 1071), NET_B: Segment("vxlan", None, 1072)}
VMS = {  # name -> (host, network, address, MAC): b1/b2 have a1/a2's addresses in another network
    "a1": ("h1", NET_A, "10.62.0.1", "fa:16:3e:62:00:01"),
    "a2": ("h2", NET_A, "10.62.0.2", "fa:16:3e:62:00:02"),
    "a3": ("h1", NET_A, "10.62.0.3", "fa:16:3e:62:00:03"),
    "b1": ("h1", NET_B, "10.62.0.1", "fa:16:3e:62:01:01"),
    "b2": ("h2", NET_B, "10.62.0.2", "fa:16:3e:62:01:02"),
}


def rule(direction: str, protocol: int | None = None, port: int | None = None, **kw: str) -> SecurityRule:
    return SecurityRule(direction, "IPv4", protocol, port, port, **kw)


EGRESS = rule("egress")
ICMP_IN = rule("ingress", 1)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.prefix = f"ofw{uuid.uuid4().hex[:5]}"
        self.tmp = tmp
        self.ul = f"{self.prefix}-ul"
        self.ids = {vm: str(uuid.uuid4()) for vm in VMS}
        self.agents: dict[str, OvsAgent] = {}
        # what the server would say: per instance (groups, port security, allowed pairs); the groups
        self.ports: dict[str, tuple[list[str], bool, list[list[str]]]] = {vm: ([], True, []) for vm in VMS}
        self.groups: dict[str, SecurityGroup] = {}

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def build(self) -> None:
        netns.create(self.ul)
        sh("ip", "-n", self.ul, "link", "add", "br-ul", "type", "bridge")
        sh("ip", "-n", self.ul, "link", "set", "br-ul", "up")
        for h, ul_ip in UNDERLAY.items():
            host = self.ns(h)
            netns.create(host)
            run = o.rundir(self.tmp, h)
            o.start_daemons(run, host)
            o.wait_ready(run)
            veth(host, "ul0", self.ul, f"ul-{h}")
            sh("ip", "-n", self.ul, "link", "set", f"ul-{h}", "master", "br-ul")
            o.Client(run).vsctl("add-br", "br-ul", "--", "set", "bridge", "br-ul", "datapath_type=netdev",
                                "--", "add-port", "br-ul", "ul0")
            sh("ip", "-n", host, "link", "set", "br-ul", "up")
            sh("ip", "-n", host, "addr", "add", f"{ul_ip}/24", "dev", "br-ul")
            self.agents[h] = self.agent(h)
        for vm in VMS:
            self.plug(vm)

    def plug(self, vm: str) -> None:
        host, _, ip, mac = VMS[vm]
        name = self.ns(vm)
        if name not in netns.names(self.prefix):
            netns.create(name)
        veth(name, "eth0", self.ns(host), naming.tap(self.ids[vm]), mac)
        sh("ip", "-n", name, "link", "set", "eth0", "mtu", "1400")
        sh("ip", "-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")

    def agent(self, h: str) -> OvsAgent:
        return OvsAgent(h, OvsConfig(UNDERLAY[h], {}, ("vxlan",)), o.rundir(self.tmp, h), self.ns(h))

    def members(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {g: [] for g in self.groups}
        for vm, (groups, _, pairs) in self.ports.items():
            for g in groups:
                out.setdefault(g, []).extend([VMS[vm][2], *(p[0] for p in pairs)])
        return {g: sorted(set(v)) for g, v in out.items()}

    def view(self, h: str) -> dict[str, object]:
        other = next(x for x in UNDERLAY if x != h)
        mine = [vm for vm in VMS if VMS[vm][0] == h]
        nets = [L2Network(net, 1400, True, seg, vteps=[UNDERLAY[other]], remote_ports=[
            RemotePort(VMS[vm][3], [VMS[vm][2]], UNDERLAY[other]) for vm in VMS if VMS[vm][:2] == (other, net)])
            for net, seg in SEGMENTS.items()]
        ports = [L2Port(self.ids[vm], VMS[vm][1], VMS[vm][3], 1, True, "compute:nova") for vm in mine]
        secured = [PortSecurity(self.ids[vm], VMS[vm][3], [VMS[vm][2]], self.ports[vm][2],
                                self.ports[vm][0] if self.ports[vm][1] else [], self.ports[vm][1], VMS[vm][1])
                   for vm in mine]
        used = sorted({g for vm in mine for g in self.ports[vm][0]})
        firewall = Firewall(secured, [self.groups[g] for g in used], self.members())
        return encode(L2View(host=h, networks=nets, ports=ports, firewall=firewall))

    def sync(self) -> None:
        for h, agent in self.agents.items():
            result = agent.sync(self.view(h), None)
            assert not result.failed
        for h, agent in self.agents.items():  # converged: a resync (or a restarted agent) changes nothing
            assert plan(decode(L2View, self.view(h)), agent.executor.observe(), agent.config).ops == []

    def destroy(self) -> None:
        for h in UNDERLAY:
            o.stop_daemons(o.rundir(self.tmp, h))
        for name in netns.names(f"{self.prefix}-"):
            netns.delete(name)

    # ------------------------------------------------------------ traffic
    def serve(self, vm: str, port: int, udp: bool = False) -> None:
        """An echo server in the instance (socat; gone with the namespace)."""
        listen = f"UDP-RECVFROM:{port},fork" if udp else f"TCP-LISTEN:{port},fork,reuseaddr"
        subprocess.Popen(["ip", "netns", "exec", self.ns(vm), "socat", listen, "EXEC:cat"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def socket(self, vm: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket in the instance's namespace (it stays there)."""
        pyns.pushns(self.ns(vm))
        try:
            return socket.socket(socket.AF_INET, kind)
        finally:
            pyns.popns()

    def echo(self, vm: str, dst: str, port: int, timeout: float = 1.0) -> bool:
        with self.socket(vm) as s:
            s.settimeout(timeout)
            try:
                s.connect((dst, port))
                s.sendall(b"hi")
                return s.recv(2) == b"hi"
            except OSError:
                return False

    def ping(self, vm: str, dst: str, source: str | None = None) -> bool:
        argv = ["ip", "netns", "exec", self.ns(vm), "ping", "-c", "1", "-W", "1", dst]
        if source:
            argv[-1:-1] = ["-I", source]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def sh(*argv: str) -> None:
    netns.run(list(argv))


def veth(ns: str, name: str, peer_ns: str, peer: str, mac: str | None = None) -> None:
    """A veth pair, checksum offload off on both ends (OVS netdev, docs/kernel.md), both up."""
    sh("ip", "link", "add", name, "netns", ns, *(["address", mac] if mac else []), "type", "veth", "peer", "name",
       peer, "netns", peer_ns)
    for where, dev in ((ns, name), (peer_ns, peer)):
        sh("ip", "netns", "exec", where, "ethtool", "-K", dev, "tx", "off")
        sh("ip", "-n", where, "link", "set", dev, "up")


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_root(("ip", "ovs-vsctl", "ovs-ofctl", "socat", "ethtool"))
    r = Rig(tmp_path_factory.mktemp("ovsfw"))
    try:
        r.build()
        for vm in VMS:
            r.serve(vm, 22)
            r.serve(vm, 23)
            r.serve(vm, 80)
        yield r
    finally:
        r.destroy()
    assert not netns.names(f"{r.prefix}-")


def secure(rig: Rig, groups: dict[str, list[SecurityRule]], ports: dict[str, list[str]], stateful: bool = True,
           pairs: dict[str, list[list[str]]] | None = None, open_ports: tuple[str, ...] = ()) -> None:
    rig.groups = {g: SecurityGroup(g, stateful, rules) for g, rules in groups.items()}
    rig.ports = {vm: (ports.get(vm, []), vm not in open_ports, (pairs or {}).get(vm, [])) for vm in VMS}
    rig.sync()


def test_a_rule_opens_tcp_22_and_only_tcp_22(rig: Rig) -> None:
    secure(rig, {"client": [EGRESS], "ssh": [EGRESS, rule("ingress", 6, 22)]},
           {"a1": ["client"], "a3": ["client"], "a2": ["ssh"]})
    assert eventually(lambda: rig.echo("a1", "10.62.0.2", 22))  # across hosts
    assert rig.echo("a3", "10.62.0.2", 22)
    assert not rig.echo("a1", "10.62.0.2", 23)
    assert not rig.ping("a1", "10.62.0.2")
    assert not rig.echo("a2", "10.62.0.1", 22)  # a1 has no ingress rule: a2 may not open a connection to it
    assert not rig.echo("a1", "10.62.0.3", 22)  # two filtered ports on one host: a3's ingress applies


def test_remote_group_rule_follows_membership(rig: Rig) -> None:
    secure(rig, {"client": [EGRESS], "other": [EGRESS],
                 "web": [EGRESS, rule("ingress", 6, 80, remote_group="client")]},
           {"a1": ["client"], "a3": ["other"], "a2": ["web"]})
    assert eventually(lambda: rig.echo("a1", "10.62.0.2", 80))
    assert not rig.echo("a3", "10.62.0.2", 80)
    assert not rig.echo("a1", "10.62.0.2", 22)
    secure(rig, rig_groups(rig), {"a1": ["client"], "a3": ["other", "client"], "a2": ["web"]})
    assert eventually(lambda: rig.echo("a3", "10.62.0.2", 80))
    secure(rig, rig_groups(rig), {"a1": ["other"], "a3": ["other", "client"], "a2": ["web"]})
    assert eventually(lambda: not rig.echo("a1", "10.62.0.2", 80))
    assert rig.echo("a3", "10.62.0.2", 80)


def rig_groups(rig: Rig) -> dict[str, list[SecurityRule]]:
    return {g: list(x.rules) for g, x in rig.groups.items()}


def test_spoofed_sources_are_dropped_unless_allowed_as_address_pairs(rig: Rig) -> None:
    groups = {"any": [EGRESS, ICMP_IN]}
    secure(rig, groups, {"a1": ["any"], "a2": ["any"]})
    sh("ip", "-n", rig.ns("a1"), "addr", "add", "10.62.0.9/24", "dev", "eth0")
    try:
        assert eventually(lambda: rig.ping("a1", "10.62.0.2"))
        assert not rig.ping("a1", "10.62.0.2", source="10.62.0.9")
        secure(rig, groups, {"a1": ["any"], "a2": ["any"]}, pairs={"a1": [["10.62.0.9", VMS["a1"][3]]]})
        assert eventually(lambda: rig.ping("a1", "10.62.0.2", source="10.62.0.9"))
    finally:
        sh("ip", "-n", rig.ns("a1"), "addr", "del", "10.62.0.9/24", "dev", "eth0")


def test_port_security_off_passes_everything(rig: Rig) -> None:
    secure(rig, {"client": [EGRESS], "none": []}, {"a1": ["client"], "a2": ["none"]})
    assert not rig.echo("a1", "10.62.0.2", 23)
    secure(rig, {"client": [EGRESS], "none": []}, {"a1": ["client"], "a2": ["none"]}, open_ports=("a2",))
    assert eventually(lambda: rig.echo("a1", "10.62.0.2", 23))
    assert rig.ping("a1", "10.62.0.2") and not rig.echo("a2", "10.62.0.3", 22)
    secure(rig, {}, {}, open_ports=tuple(VMS))
    assert eventually(lambda: rig.echo("a2", "10.62.0.1", 80) and rig.ping("a3", "10.62.0.2"))


def test_stateless_groups_need_rules_both_ways(rig: Rig) -> None:
    one_way = {"g": [rule("egress", 6, 22), rule("ingress", 6, 22)]}
    secure(rig, one_way, {"a1": ["g"], "a2": ["g"]}, stateful=False)
    assert not rig.echo("a1", "10.62.0.2", 22)  # the replies (from port 22 to an ephemeral port) match nothing
    both = {"g": [rule("egress", 6, 22), rule("ingress", 6, 22), SecurityRule("ingress", "IPv4", 6, None, None),
                  SecurityRule("egress", "IPv4", 6, None, None, remote_ip_prefix="10.62.0.1/32")]}
    secure(rig, both, {"a1": ["g"], "a2": ["g"]}, stateful=False)
    assert eventually(lambda: rig.echo("a1", "10.62.0.2", 22))


def connected(rig: Rig, vm: str, dst: str, port: int) -> socket.socket:
    s = rig.socket(vm)
    s.settimeout(2)
    deadline = time.monotonic() + 10
    while True:
        try:
            s.connect((dst, port))
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            s.close()
            time.sleep(0.2)
            s = rig.socket(vm)
            s.settimeout(2)


def roundtrip(s: socket.socket) -> bool:
    try:
        s.sendall(b"ok")
        return s.recv(2) == b"ok"
    except OSError:
        return False


def test_established_connection_survives_agent_restart_and_a_rule_removal_cuts_it(rig: Rig) -> None:
    groups = {"client": [EGRESS], "ssh": [EGRESS, rule("ingress", 6, 22)]}
    secure(rig, groups, {"a1": ["client"], "a2": ["ssh"]})
    with connected(rig, "a1", "10.62.0.2", 22) as s:
        assert roundtrip(s)
        for h in list(rig.agents):  # a restarted agent finds everything in place: no op, the connection lives
            rig.agents[h].stop()
            rig.agents[h] = rig.agent(h)
        rig.sync()
        assert roundtrip(s)
        # the group now allows ICMP, not TCP 22: the established connection is cut at its next packet
        secure(rig, {"client": [EGRESS], "ssh": [EGRESS, ICMP_IN]}, {"a1": ["client"], "a2": ["ssh"]})
        s.settimeout(1)
        assert not roundtrip(s)
        assert not rig.echo("a1", "10.62.0.2", 22)
        assert eventually(lambda: rig.ping("a1", "10.62.0.2"))


def test_equal_addresses_in_two_networks_keep_separate_connection_state(rig: Rig) -> None:
    """a1 -> a2 and b1 -> b2 have the same addresses. b2 answering "as a2" (same 5-tuple, reversed) must not
    pass b1's ingress: a1's connection is tracked in network A's zone only."""
    secure(rig, {"client": [EGRESS], "dns": [EGRESS, rule("ingress", 17, 53)]},
           {"a1": ["client"], "b1": ["client"], "a2": ["dns"], "b2": ["dns"]})
    a1 = rig.socket("a1", socket.SOCK_DGRAM)
    b1 = rig.socket("b1", socket.SOCK_DGRAM)
    b2 = rig.socket("b2", socket.SOCK_DGRAM)
    try:
        a1.bind(("10.62.0.1", 40053))
        b1.bind(("10.62.0.1", 40053))
        b2.bind(("10.62.0.2", 53))
        for s in (a1, b1):
            s.settimeout(0.5)
        rig.serve("a2", 53, udp=True)
        assert eventually(lambda: _udp_echo(a1, ("10.62.0.2", 53)))
        for _ in range(5):  # the reply-shaped packet from network B
            b2.sendto(b"x", ("10.62.0.1", 40053))
            with pytest.raises(TimeoutError):
                b1.recvfrom(10)
        assert _udp_echo(a1, ("10.62.0.2", 53))  # network A's connection still works
    finally:
        for s in (a1, b1, b2):
            s.close()
    tracked = subprocess.run(["ovs-appctl", "-t", str(o.rundir(rig.tmp, "h1") / "ovs-vswitchd.ctl"),
                              "dpctl/dump-conntrack"], capture_output=True, text=True, check=True).stdout
    zones = {line.split("zone=")[1].split(",")[0] for line in tracked.splitlines() if "dport=53" in line}
    assert len(zones) == 1, tracked  # network A's zone only: b2's packets were never one of its connections


def _udp_echo(s: socket.socket, dst: tuple[str, int]) -> bool:
    try:
        s.sendto(b"q", dst)
        return s.recvfrom(10)[0] == b"q"
    except OSError:
        return False


def test_a_tap_made_again_is_filtered_again(rig: Rig) -> None:
    groups = {"client": [EGRESS], "ssh": [EGRESS, rule("ingress", 6, 22)]}
    secure(rig, groups, {"a1": ["client"], "a3": ["ssh"]})
    assert eventually(lambda: rig.echo("a1", "10.62.0.3", 22))
    sh("ip", "-n", rig.ns("a3"), "link", "del", "eth0")
    rig.agents["h1"].sync(rig.view("h1"), None)  # the tap is gone: its port leaves br-int
    rig.plug("a3")
    rig.sync()
    assert eventually(lambda: rig.echo("a1", "10.62.0.3", 22))
    assert not rig.echo("a1", "10.62.0.3", 23)
    assert not rig.echo("a3", "10.62.0.1", 22)
    sh("ip", "-n", rig.ns("a3"), "link", "del", "eth0")  # and again, without a sync in between
    rig.plug("a3")
    rig.sync()
    assert eventually(lambda: rig.echo("a1", "10.62.0.3", 22))
    assert not rig.echo("a1", "10.62.0.3", 23)


