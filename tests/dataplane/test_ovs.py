"""The OVS agent's data plane with real packets: two emulated hosts, each with its own ovsdb-server and
ovs-vswitchd (netdev datapath), driven by the agent's sync with the views the server would send. Tunnels
(VXLAN, GRE, Geneve), a VLAN and a flat provider network, and an agent restart that loses no ping."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fermion.agent.ovs import dvr
from fermion.agent.ovs.agent import OvsAgent
from fermion.agent.ovs.planner import OvsConfig
from fermion.dataplane import naming, netns, veth
from fermion.dataplane import ovs as o
from fermion.rpc.contracts import L2Network, L2Port, L2View, RemotePort, Segment, encode
from tests.dataplane.lab import capture, require_root

HOSTS = {"h1": ("198.18.4.1", "10.61.0.1", "fa:16:3e:61:00:01"), "h2": ("198.18.4.2", "10.61.0.2", "fa:16:3e:61:00:02")}
# a distributed router's interface: the same address and MAC in its copy on each host; the hosts' DVR MACs
ROUTER_PORT, GATEWAY, GATEWAY_MAC = "6b0c2c39-0000-4000-8000-0000000000fe", "10.61.0.254", "fa:16:3e:61:00:fe"
DVR_MACS = {"h1": "fa:16:3f:61:00:01", "h2": "fa:16:3f:61:00:02"}


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.prefix = f"ovs{uuid.uuid4().hex[:5]}"
        self.tmp = tmp
        self.ul = f"{self.prefix}-ul"
        self.ports = {h: str(uuid.uuid4()) for h in HOSTS}
        self.agents: dict[str, OvsAgent] = {}
        self.segment: Segment | None = None

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def build(self) -> None:
        netns.create(self.ul)
        for br in ("br-ul", "br-prov"):
            sh("ip", "-n", self.ul, "link", "add", br, "type", "bridge")
            sh("ip", "-n", self.ul, "link", "set", br, "up")
        for h, (ul_ip, ip, mac) in HOSTS.items():
            host = self.ns(h)
            netns.create(host)
            run = o.rundir(self.tmp, h)
            o.start_daemons(run, host)
            o.wait_ready(run)
            c = o.Client(run)
            for inner, outer, br in (("ul0", f"ul-{h}", "br-ul"), ("eth1", f"pv-{h}", "br-prov")):
                sh("ip", "link", "add", inner, "netns", host, "type", "veth", "peer", "name", outer, "netns", self.ul)
                sh("ip", "-n", self.ul, "link", "set", outer, "master", br, "up")
                sh("ip", "-n", host, "link", "set", inner, "up")
                o.uplink(host, inner)
                sh("ip", "netns", "exec", self.ul, "ethtool", "-K", outer, "tx", "off")
            # userspace tunnels: the underlay address on an OVS bridge (docs/kernel.md); eth1 on br-eth1
            for br, port in (("br-ul", "ul0"), ("br-eth1", "eth1")):
                c.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
                        *(["fail_mode=secure", "other-config:disable-in-band=true"] if br == "br-eth1" else []),
                        "--", "add-port", br, port)
            sh("ip", "-n", host, "link", "set", "br-ul", "up")
            sh("ip", "-n", host, "addr", "add", f"{ul_ip}/24", "dev", "br-ul")
            vm = self.ns(f"vm{h}")
            netns.create(vm)
            tap = naming.tap(self.ports[h])
            sh("ip", "link", "add", "eth0", "netns", vm, "address", mac, "type", "veth", "peer", "name", tap,
               "netns", host)
            sh("ip", "-n", vm, "link", "set", "eth0", "mtu", "1400", "up")
            sh("ip", "-n", vm, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "netns", "exec", vm, "ethtool", "-K", "eth0", "tx", "off")
            self.agents[h] = self.agent(h)

    def agent(self, h: str) -> OvsAgent:
        cfg = OvsConfig(HOSTS[h][0], {"physnet1": "br-eth1"}, ("vxlan", "gre", "geneve"))
        return OvsAgent(h, cfg, o.rundir(self.tmp, h), self.ns(h))

    def view(self, h: str, seg: Segment, router: bool = False) -> dict[str, object]:
        """router: with a copy of a distributed router on the network (its port, the host's DVR MAC)."""
        other = next(x for x in HOSTS if x != h)
        net = "6b0c2c39-0000-4000-8000-000000000001"
        remote = [RemotePort(HOSTS[other][2], [HOSTS[other][1]], HOSTS[other][0])]
        tunnel = seg.network_type in ("vxlan", "gre", "geneve")
        copy = [L2Port(ROUTER_PORT, net, GATEWAY_MAC, 1, True, dvr.INTERFACE_OWNER, ips=[GATEWAY])] if router else []
        return encode(L2View(host=h, networks=[L2Network(
            net, 1400, True, seg, vteps=[HOSTS[other][0]] if tunnel else [], remote_ports=remote if tunnel else [])],
            ports=[L2Port(self.ports[h], net, HOSTS[h][2], 1, True, "compute:nova"), *copy],
            dvr_mac=DVR_MACS[h] if router else ""))

    def sync(self, seg: Segment, router: bool = False) -> None:
        for h, agent in self.agents.items():
            result = agent.sync(self.view(h, seg, router), None)
            assert not result.failed and self.ports[h] in result.up
        if seg != self.segment:
            self.forget()
        self.segment = seg

    def forget(self) -> None:
        """The tests move one network from segment type to segment type, which a real network never does: the
        instances' ARP entries and br-int's learned MACs still point the old way (the physnet patch port stays
        when the network becomes a tunnel), so forget them as a fresh network would not have them."""
        for h in HOSTS:
            sh("ip", "-n", self.ns(f"vm{h}"), "neigh", "flush", "all")
            sh("ovs-appctl", "-t", str(o.rundir(self.tmp, h) / "ovs-vswitchd.ctl"), "fdb/flush", "br-int")

    def ping(self, count: int = 2, deadline: int = 8) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns("vmh1"), "ping", "-c", str(count), "-W", "1", "-w",
                               str(deadline), HOSTS["h2"][1]], capture_output=True, text=True, check=False)

    def destroy(self) -> None:
        for h in HOSTS:
            o.stop_daemons(o.rundir(self.tmp, h))
        for name in netns.names(f"{self.prefix}-"):
            netns.delete(name)


def sh(*argv: str) -> None:
    netns.run(list(argv))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require_root()
    r = Rig(tmp_path_factory.mktemp("ovs"))
    try:
        r.build()
        yield r
    finally:
        r.destroy()
    assert not netns.names(f"{r.prefix}-")
    assert not any(netns.alive(p) for h in HOSTS for p in [o._pid(o.rundir(r.tmp, h) / "ovs-vswitchd.pid") or 0]
                   if p)


@pytest.mark.parametrize("seg", [Segment("vxlan", None, 1061), Segment("gre", None, 1062),
                                 Segment("geneve", None, 1063), Segment("vlan", "physnet1", 161),
                                 Segment("flat", "physnet1", None)], ids=lambda s: s.network_type)
def test_network_pings_across_ovs_hosts(rig: Rig, seg: Segment) -> None:
    rig.sync(seg)
    assert rig.ping().returncode == 0, rig.ping().stdout


def test_provider_vlan_is_tagged_on_the_wire(rig: Rig) -> None:
    rig.sync(Segment("vlan", "physnet1", 161))
    cap = subprocess.Popen(["ip", "netns", "exec", rig.ul, "tcpdump", "-c", "1", "-eni", "pv-h1", "icmp"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    rig.ping()
    out, _ = cap.communicate(timeout=10)
    assert "vlan 161" in out


@pytest.mark.parametrize("seg", [Segment("vlan", "physnet1", 161), Segment("flat", "physnet1", None)],
                         ids=lambda s: s.network_type)
def test_router_copies_reach_the_provider_wire_with_their_hosts_dvr_mac(rig: Rig, seg: Segment) -> None:
    """A distributed router's copy on each host (a namespace holding the shared gateway address and MAC): what
    h1's copy routes to h2's instance crosses the provider wire with h1's DVR MAC as source, and h1's instance
    asking for the gateway is answered by its own host's copy without its ARP reaching the wire."""
    copies = {h: rig.ns(f"qr{h}") for h in HOSTS}
    try:
        for h, ns in copies.items():
            netns.create(ns)
            sh("ip", "link", "add", "eth0", "netns", ns, "address", GATEWAY_MAC, "type", "veth", "peer", "name",
               naming.tap(ROUTER_PORT), "netns", rig.ns(h))
            sh("ip", "-n", ns, "addr", "add", f"{GATEWAY}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "mtu", "1400", "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
        sh("ip", "-n", copies["h1"], "neigh", "replace", HOSTS["h2"][1], "lladdr", HOSTS["h2"][2], "dev", "eth0",
           "nud", "permanent")  # a copy's static neighbour
        rig.sync(seg, router=True)
        with capture(rig.ul, "icmp", "or", "arp", device="pv-h1", link=True) as seen:
            subprocess.run(["ip", "netns", "exec", copies["h1"], "ping", "-c", "3", "-i", "0.2", "-W", "1",
                            HOSTS["h2"][1]], capture_output=True, check=False)  # h2's own copy gets the replies
            answered = subprocess.run(["ip", "netns", "exec", rig.ns("vmh1"), "arping", "-c", "1", "-w", "2", "-I",
                                       "eth0", GATEWAY], capture_output=True, text=True, check=False)
        assert GATEWAY_MAC in answered.stdout.lower(), answered.stdout
        routed = [line for line in seen if "ICMP echo request" in line]
        assert len(routed) == 3 and all(line.split()[1] == DVR_MACS["h1"] for line in routed), seen
        assert not any(GATEWAY_MAC in line or ("ARP" in line and GATEWAY in line) for line in seen), seen
    finally:
        for h, ns in copies.items():  # the pair goes with its tap at once (not when the namespace is freed)
            netns.run(["ip", "-n", rig.ns(h), "link", "del", naming.tap(ROUTER_PORT)], check=False)
            netns.delete(ns)


def test_tunnels_to_a_host_survive_its_arp_replies(rig: Rig) -> None:
    """h1's OVS finds h2's underlay MAC by ARP (its tunnel neighbour table and datapath flows emptied here, as
    when they age out): h2 answers only from br-ul, never with the MAC of ul0 (the wire OVS reads, also a
    kernel interface of h2), which took the tunnels' packets to h2's kernel instead of its OVS."""
    rig.sync(Segment("vxlan", None, 1061))
    br_ul = (Path("/sys/class/net/br-ul/address"), Path("/sys/class/net/ul0/address"))
    br_ul_mac, ul0_mac = (netns.run(["ip", "netns", "exec", rig.ns("h2"), "cat", str(p)]).stdout.strip()
                          for p in br_ul)
    appctl = ["ovs-appctl", "-t", str(o.rundir(rig.tmp, "h1") / "ovs-vswitchd.ctl")]
    for _ in range(3):
        with capture(rig.ul, "arp", device="ul-h2", link=True) as seen:
            sh(*appctl, "tnl/neigh/flush")
            sh(*appctl, "dpctl/del-flows")  # the cached ARP flows too: else replies are not looked at again
            assert rig.ping().returncode == 0
        replies = [line for line in seen if f"Reply {HOSTS['h2'][0]} is-at" in line]
        assert replies and all(line.split()[1] == br_ul_mac for line in replies), seen
        assert ul0_mac not in netns.run(appctl + ["tnl/arp/show"]).stdout
    assert rig.ping(count=5).returncode == 0


def test_afxdp_taps_carry_traffic(rig: Rig) -> None:
    """The agent's --afxdp option: instance taps as afxdp-nonpmd ports (XDP on the veth), and back."""
    seg = Segment("vxlan", None, 1061)
    try:
        for h in HOSTS:
            rig.agents[h].config = replace(rig.agents[h].config, tap_type="afxdp-nonpmd")
        rig.sync(seg)
        tap = naming.tap(rig.ports["h1"])
        assert o.Client(o.rundir(rig.tmp, "h1")).vsctl("get", "interface", tap, "type").strip() == "afxdp-nonpmd"
        assert rig.ping(count=3).returncode == 0
    finally:
        for h in HOSTS:
            rig.agents[h].config = replace(rig.agents[h].config, tap_type="")
        rig.sync(seg)
    assert rig.ping().returncode == 0


def test_agent_restart_keeps_the_data_plane(rig: Rig) -> None:
    rig.sync(Segment("vxlan", None, 1061))
    assert rig.ping().returncode == 0
    pinger = subprocess.Popen(["ip", "netns", "exec", rig.ns("vmh1"), "ping", "-i", "0.02", "-c", "150", "-W", "1",
                               HOSTS["h2"][1]], stdout=subprocess.PIPE, text=True)
    for h in HOSTS:  # a new agent (as after a restart) resyncs: nothing to change, so nothing is touched
        rig.agents[h].stop()
        rig.agents[h] = rig.agent(h)
        observed = rig.agents[h].executor.observe()
        from fermion.agent.ovs.planner import plan
        from fermion.rpc.contracts import decode
        assert plan(decode(L2View, rig.view(h, Segment("vxlan", None, 1061))), observed,
                    rig.agents[h].config).ops == []
    rig.sync(Segment("vxlan", None, 1061))
    out, _ = pinger.communicate(timeout=30)
    assert " 0% packet loss" in out, out


def test_port_ops_in_one_transaction_fail_alone(rig: Rig) -> None:
    """A run of port ops is one ovs-vsctl; a tap that is missing fails on its own, the others are plugged."""
    host, executor = rig.ns("h1"), rig.agents["h1"].executor
    names = [f"tapbatch{i}" for i in range(3)]
    for name in names:
        sh("ip", "-n", host, "link", "add", name, "type", "veth", "peer", "name", f"p{name}")
    try:
        ops: list[o.Op] = [o.AddPort(n, o.Port("br-int", 7), True) for n in [*names, "tapmissing0"]]
        failed = executor.apply(ops)
        assert [op.name for op, _ in failed] == ["tapmissing0"]  # type: ignore[union-attr]
        observed = executor.observe()
        assert all(observed.ports[n] == o.Port("br-int", 7) for n in names)
        assert "tapmissing0" not in observed.ports
    finally:
        executor.apply([o.DelPort(n) for n in names])
        for name in names:
            sh("ip", "-n", host, "link", "del", name)
    assert not set(names) & set(executor.observe().ports)


def addresses6(ns: str, dev: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-6", "-o", "addr", "show", "dev", dev], capture_output=True, text=True,
                          check=True).stdout


def test_taps_on_br_int_carry_no_ipv6_address(rig: Rig) -> None:
    """A tap with an address costs ovs-vswitchd a scan of every port's addresses for each ARP or ICMPv6
    packet it outputs there: the agent takes IPv6 off a tap plugged with a link-local; veth.plug makes none."""
    rig.sync(Segment("vxlan", None, 1061))
    host, executor = rig.ns("h1"), rig.agents["h1"].executor
    inner = rig.ns("v6")
    netns.create(inner)
    try:
        sh("ip", "-n", host, "link", "add", "tapv6hand", "type", "veth", "peer", "name", "eth0", "netns", inner)
        sh("ip", "-n", inner, "link", "set", "eth0", "up")
        sh("ip", "-n", host, "link", "set", "tapv6hand", "up")
        deadline = time.monotonic() + 5
        while "fe80::" not in addresses6(host, "tapv6hand"):
            assert time.monotonic() < deadline, "the kernel gave the hand-made tap no link-local"
            time.sleep(0.05)
        veth.plug(host, "tapv6plug", inner, "eth1", "fa:16:3e:61:00:66", 1400)
        time.sleep(0.5)  # the instance's end has its link-local by now, the host's end none
        assert "fe80::" in addresses6(inner, "eth1")
        assert addresses6(host, "tapv6plug") == ""
        assert executor.apply([o.AddPort(n, o.Port("br-int", 7), True) for n in ("tapv6hand", "tapv6plug")]) == []
        assert addresses6(host, "tapv6hand") == ""
        assert "fe80::" in addresses6(inner, "eth1")
    finally:
        executor.apply([o.DelPort("tapv6hand"), o.DelPort("tapv6plug")])
        netns.delete(inner)
