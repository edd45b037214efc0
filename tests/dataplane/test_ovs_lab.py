"""Open vSwitch hosts in the lab, in embedded mode: compute1 and network1 are OVS hosts (their own ovsdb-server
and ovs-vswitchd, netdev datapath), compute2 a Linux-bridge host. DHCP and the router run on the OVS network
node; a VXLAN network spans both kinds of host; GRE, Geneve and provider VLAN networks run between the OVS
hosts, and a Linux-bridge host refuses them with the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.lab import instances
from fermion.lab.instances import LabError
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.lab import Lab, capture, next_peer, ping_ns, tcp_connects, tcp_listener

SWITCHES = {"compute1": "ovs", "compute2": "linuxbridge", "network1": "ovs"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with embedded_lab(tmp_path_factory.mktemp("ovslab"), switches=SWITCHES) as lab:
        yield lab
    for host in SWITCHES:  # the OVS daemons went with the lab
        pid = o._pid(o.rundir(lab.state_dir, host) / "ovs-vswitchd.pid")
        assert pid is None or not Path(f"/proc/{pid}").exists()


def post(lab: Lab, path: str, body: dict[str, Any]) -> Any:
    return lab.api._ok(lab.api.http.post(path, json=body))


def put(lab: Lab, path: str, body: dict[str, Any]) -> Any:
    return lab.api._ok(lab.api.http.put(path, json=body))


def boot(lab: Lab, network: str, host: str, name: str) -> Any:
    # without port security, so that these L2/L3 tests need no rules (security groups on OVS hosts:
    # test_security.py runs on a lab of OVS hosts too, test_ovs_firewall.py on a bare rig)
    return lab.boot(network, host, name, port_security=False)


def flows(lab: Lab, host: str, bridge: str) -> str:
    return o.Client(o.rundir(lab.state_dir, host)).ofctl("dump-flows", bridge)


def test_agents_report_their_kind(lab: Lab) -> None:
    kinds = {(a["host"], a["agent_type"]) for a in lab.api.agents() if a["alive"]}
    assert {("compute1", "Open vSwitch agent"), ("network1", "Open vSwitch agent"),
            ("compute2", "Linux bridge agent")} <= kinds


def test_vxlan_network_spans_ovs_and_linux_bridge_hosts(lab: Lab) -> None:
    lab.network("mixed", "10.71.0.0/24")
    # both get their address from dnsmasq on network1, an OVS host
    # in the default group, whose members reach each other: OpenFlow on one side and nftables on the
    # other agree on the membership
    vm1 = lab.boot("mixed", "compute1", "mx1")
    vm2 = lab.boot("mixed", "compute2", "mx2")
    lab.wait(lambda: lab.ping("mx1", "mx2"), 20, "the OVS host's instance to reach the Linux-bridge host's")
    assert lab.ping("mx2", "mx1")
    port1 = lab.api.port(vm1.port_id)
    assert port1 is not None and port1["binding:vif_type"] == "ovs" and port1["status"] == "ACTIVE"
    assert (lab.api.port(vm2.port_id) or {})["binding:vif_type"] == "bridge"
    # L2 population both ways: the Linux bridge knows vm1's MAC at compute1's VTEP, OVS vm2's at compute2's
    fdb = subprocess.run(["ip", "netns", "exec", lab.host_ns("compute2"), "bridge", "fdb", "show"],
                         capture_output=True, text=True, check=True).stdout
    assert any(vm1.mac in line and lab.state.hosts["compute1"].underlay_ip in line for line in fdb.splitlines())
    assert f"dl_dst={vm2.mac}" in flows(lab, "compute1", "br-tun")


def test_router_snat_and_floating_ip_on_an_ovs_network_node(lab: Lab) -> None:
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("routed", "10.72.0.0/24")
    subnet = lab.api._ok(lab.api.http.get("/v2.0/subnets", params={"network_id": net["id"]}))["subnets"][0]
    router = lab.api.post("routers", {"name": "ovs-r1", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet["id"]})
    vm = boot(lab, "routed", "compute1", "rt1")
    gateway = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router['id']}"))["router"]
    gateway_ip = gateway["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    with tcp_listener(lab.state.external, 8080) as listener:
        lab.wait(lambda: tcp_connects(vm.netns, EXTERNAL_GATEWAY, 8080), 20, "the instance to reach the internet")
        assert next_peer(listener) == gateway_ip  # SNAT on the OVS network node
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm.port_id})
    address = fip["floating_ip_address"]
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 15, "the floating IP to answer")
    with tcp_listener(vm.netns, 22) as listener:
        assert tcp_connects(lab.state.external, address, 22)
        assert next_peer(listener) == EXTERNAL_GATEWAY  # DNAT keeps the client's address


@pytest.mark.parametrize("kind", ["gre", "geneve", "vlan"])
def test_segment_types_the_kernel_lacks_work_between_ovs_hosts(lab: Lab, kind: str) -> None:
    provider = {"provider:network_type": kind, "provider:segmentation_id": {"gre": 71, "geneve": 72, "vlan": 173}[
        kind]}
    if kind == "vlan":
        provider["provider:physical_network"] = "physnet1"
    lab.network(f"n-{kind}", f"10.{73 + ['gre', 'geneve', 'vlan'].index(kind)}.0.0/24", **provider)
    boot(lab, f"n-{kind}", "compute1", f"{kind}1")
    boot(lab, f"n-{kind}", "network1", f"{kind}2")
    lab.wait(lambda: lab.ping(f"{kind}1", f"{kind}2"), 20, f"instances on a {kind} network to ping")
    if kind == "vlan":  # 802.1Q on the provider wire, tagged by OVS (this kernel has no VLAN devices)
        with capture(lab.state.underlay, "vlan", "and", "icmp", device="pv-compute1", link=True) as seen:
            assert lab.ping(f"{kind}1", f"{kind}2")
        assert any("vlan 173" in line for line in seen), seen
    with pytest.raises(LabError, match="binding failed on host compute2"):
        boot(lab, f"n-{kind}", "compute2", f"{kind}3")


def test_ovs_host_plugs_dhcp_and_router_ports_into_br_int(lab: Lab) -> None:
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"binding:host_id": "network1"}))["ports"]
    owned = [p for p in ports if p["device_owner"] in ("network:dhcp", "network:router_interface")]
    assert owned, "no DHCP or router port on network1"
    c = o.Client(o.rundir(lab.state_dir, "network1"))
    on_br_int = set(c.vsctl("list-ports", "br-int").split())
    for port in owned:
        assert port["binding:vif_type"] == "ovs"
        assert naming.tap(port["id"]) in on_br_int
        lab.wait(lambda p=port: (lab.api.port(p["id"]) or {}).get("status") == "ACTIVE", 10, "the port ACTIVE")


@pytest.fixture(scope="module")
def ha_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    hosts = ["compute1", "network1", "network2"]
    with embedded_lab(tmp_path_factory.mktemp("ovsha"), sections={"l3": {"ha": True}}, hosts=hosts,
                      network_hosts=("network1", "network2"), switches=dict.fromkeys(hosts, "ovs")) as lab:
        yield lab


def test_an_ha_router_on_ovs_network_nodes_moves_when_its_host_is_lost(ha_lab: Lab) -> None:
    from tests.dataplane.test_l3_ha import active_host, cut, hosting

    lab = ha_lab
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("hanet", "10.76.0.0/24")
    subnet = lab.api._ok(lab.api.http.get("/v2.0/subnets", params={"network_id": net["id"]}))["subnets"][0]
    router = lab.api.post("routers", {"name": "ovs-ha", "external_gateway_info": {"network_id": ext["id"]}})
    rid = router["id"]
    put(lab, f"/v2.0/routers/{rid}/add_router_interface", {"subnet_id": subnet["id"]})
    vm = boot(lab, "hanet", "compute1", "ha1")
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm.port_id})
    address = fip["floating_ip_address"]
    lab.wait(lambda: active_host(lab, rid) is not None, 20, "one instance active, the other standby")
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 20, "the floating IP to answer")
    old = active_host(lab, rid)
    assert old is not None
    (new,) = {"network1", "network2"} - {old}
    cut(lab, old)
    lab.wait(lambda: hosting(lab, rid).get(new) == "active", 15, f"{new} to report itself active")
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 15, "the floating IP to answer from the other host")
    lab.wait(lambda: ping_ns(vm.netns, EXTERNAL_GATEWAY, count=1), 15, "the instance to reach the outside again")


def test_ovs_agent_restart_keeps_traffic_and_a_replugged_tap_works(lab: Lab) -> None:
    from fermion.dataplane import veth
    from tests.dataplane.lab import loss_of, ping_loss

    lab.network("rs", "10.78.0.0/24")
    boot(lab, "rs", "compute1", "rs1")
    vm2 = boot(lab, "rs", "compute2", "rs2")
    lab.wait(lambda: lab.ping("rs1", "rs2"), 20, "rs1 to reach rs2")
    supervisor = lab.extra["supervisor"]
    pinger = ping_loss(lab, "rs1", "rs2", seconds=4)
    for agent in supervisor.running.pop("compute1"):
        agent.stop()
    supervisor.reconcile()  # a fresh OVS agent: it finds its flows by cookie and changes nothing
    assert all(a.synced.wait(10) for a in supervisor.running["compute1"])
    out, _ = pinger.communicate(timeout=30)
    sent, received = loss_of(out)
    assert sent > 100 and received == sent, out
    # the instance's tap goes away and comes back (a reboot): OVS must use the new device
    vm1 = lab.state.instances["rs1"]
    port = lab.api.port(vm1.port_id)
    assert port is not None
    veth.delete(lab.host_ns("compute1"), naming.tap(vm1.port_id))
    veth.plug(lab.host_ns("compute1"), naming.tap(vm1.port_id), vm1.netns, "eth0", vm1.mac, 1450,
              [f"{vm1.ip}/24"])
    lab.wait(lambda: lab.ping("rs1", vm2.ip or "", count=1), 20, "traffic through the re-plugged tap")


def test_ovs_flows_deleted_by_hand_come_back(lab: Lab) -> None:
    lab.network("hand", "10.79.0.0/24")
    boot(lab, "hand", "compute1", "hd1")
    boot(lab, "hand", "network1", "hd2")
    lab.wait(lambda: lab.ping("hd1", "hd2"), 20, "hd1 to reach hd2")
    o.Client(o.rundir(lab.state_dir, "compute1")).ofctl("del-flows", "br-tun")
    assert not lab.ping("hd1", "hd2", count=1)
    lab.wait(lambda: lab.ping("hd1", "hd2", count=1), 20, "the periodic resync to restore br-tun's flows")


def test_deleting_a_network_removes_its_local_vlan_and_flows(lab: Lab) -> None:
    net = lab.network("gone", "10.80.0.0/24")
    vm = boot(lab, "gone", "compute1", "gn1")
    c = o.Client(o.rundir(lab.state_dir, "compute1"))
    key = f"{o.LV_KEY}{net['id']}"
    lab.wait(lambda: key in c.vsctl("get", "bridge", "br-int", "external_ids"), 15, "a local VLAN for the network")
    vni = lab.api._ok(lab.api.http.get(f"/v2.0/networks/{net['id']}"))["network"]["provider:segmentation_id"]
    lab.wait(lambda: f"tun_id={vni:#x}" in flows(lab, "compute1", "br-tun"), 15, "the network's tunnel flows")
    instances.remove(lab.state, lab.api, vm.name)
    lab.api._ok(lab.api.http.delete(f"/v2.0/networks/{net['id']}"))
    lab.wait(lambda: key not in c.vsctl("get", "bridge", "br-int", "external_ids"), 15, "the local VLAN freed")
    lab.wait(lambda: f"tun_id={vni:#x}" not in flows(lab, "compute1", "br-tun"), 15, "the tunnel flows gone")


def vlan_probe(lab: Lab, vm: Any, vid: int, src_ip: str, dst_ip: str) -> subprocess.CompletedProcess[str]:
    """Tagged ARP and ICMP from inside the instance (raw sockets: this kernel makes no VLAN devices)."""
    script = Path(__file__).with_name("vlan_probe.py")
    return subprocess.run(["ip", "netns", "exec", vm.netns, sys.executable, str(script), "eth0", str(vid), vm.mac,
                           src_ip, dst_ip], capture_output=True, text=True, timeout=30, check=False)


def test_a_trunk_carries_its_subports_vlans_on_the_instance_tap(lab: Lab) -> None:
    lab.network("tr-parent", "10.81.0.0/24")
    sub_net = lab.network("tr-sub", "10.82.0.0/24")
    vm = boot(lab, "tr-parent", "compute1", "tr1")
    peer = boot(lab, "tr-sub", "network1", "tr2")  # on the subport's network, another OVS host
    boot(lab, "tr-parent", "compute2", "tr3")  # on the parent's, a Linux-bridge host
    sub = lab.api.post("ports", {"network_id": sub_net["id"], "mac_address": vm.mac, "port_security_enabled": False})
    sub_ip = sub["fixed_ips"][0]["ip_address"]
    trunk = lab.api.post("trunks", {"port_id": vm.port_id, "sub_ports": [
        {"port_id": sub["id"], "segmentation_type": "vlan", "segmentation_id": 101}]})
    show = f"/v2.0/trunks/{trunk['id']}"
    lab.wait(lambda: lab.api._ok(lab.api.http.get(show))["trunk"]["status"] == "ACTIVE", 20, "the trunk ACTIVE")
    assert (lab.api.port(sub["id"]) or {})["status"] == "ACTIVE"
    c = o.Client(o.rundir(lab.state_dir, "compute1"))
    assert naming.tap(vm.port_id) in c.vsctl("list-ports", f"tbr-{trunk['id'][:11]}").split()
    # untagged: the parent's network as before; tagged 101: the subport's network
    lab.wait(lambda: lab.ping("tr1", "tr3", count=1), 15, "untagged traffic on the parent's network")
    probe = vlan_probe(lab, vm, 101, sub_ip, peer.ip or "")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert f"arp {peer.mac}" in probe.stdout and "icmp" in probe.stdout
    assert vlan_probe(lab, vm, 102, sub_ip, peer.ip or "").returncode == 1  # another VLAN goes nowhere
    # the subport removed: its VLAN stops
    put(lab, f"{show}/remove_subports", {"sub_ports": [{"port_id": sub["id"]}]})
    lab.wait(lambda: vlan_probe(lab, vm, 101, sub_ip, peer.ip or "").returncode == 1, 15, "VLAN 101 to stop")
    # the trunk deleted: its bridge goes, the tap is back on br-int and the parent's network still works
    lab.api._ok(lab.api.http.delete(show))
    lab.wait(lambda: f"tbr-{trunk['id'][:11]}" not in c.vsctl("list-br").split(), 15, "the trunk bridge gone")
    assert naming.tap(vm.port_id) in c.vsctl("list-ports", "br-int").split()
    lab.wait(lambda: lab.ping("tr1", "tr3", count=1), 15, "the parent's network without the trunk")
