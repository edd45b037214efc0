"""Real packets between emulated hosts (embedded mode): VXLAN with L2 population, DHCP, isolation, flat
networks, convergence after agent restarts, hand-made damage and lost hints. The tests marked HOST_KINDS run on
Linux-bridge hosts, Open vSwitch hosts and a mixed lab (tests/dataplane/conftest.py)."""

from __future__ import annotations

import re
import subprocess

from fermion.dataplane import naming, netns, ovs
from fermion.lab import instances
from tests.dataplane.conftest import HOST_KINDS
from tests.dataplane.lab import Lab, loss_of, on_ovs, ovs_flows, ping_loss, plugged


def _port(lab: Lab, name: str) -> dict:
    port = lab.api.port(lab.state.instances[name].port_id)
    assert port is not None
    return port


@HOST_KINDS
def test_instances_on_two_hosts_get_their_port_address_by_dhcp_and_ping_over_vxlan(lab: Lab) -> None:
    net = lab.network("blue", "10.20.0.0/24")
    vm1 = lab.boot("blue", "compute1", "vm1")
    vm2 = lab.boot("blue", "compute2", "vm2")
    for vm, host in ((vm1, "compute1"), (vm2, "compute2")):
        port = _port(lab, vm.name)
        assert vm.ip == port["fixed_ips"][0]["ip_address"]  # the lease is the port's address
        assert port["binding:vif_type"] == ("ovs" if on_ovs(lab, host) else "bridge")
        instances.wait_port_status(lab.api, vm.port_id, "ACTIVE")
    assert lab.ping("vm1", "vm2") and lab.ping("vm2", "vm1")
    # the instance took the network MTU from DHCP; the hosts carry the network's VNI
    assert "mtu 1450" in netns.run(["ip", "-n", vm1.netns, "link", "show", "eth0"]).stdout
    vni = lab.api._ok(lab.api.http.get(f"/v2.0/networks/{net['id']}"))["network"]["provider:segmentation_id"]
    for host in ("compute1", "compute2"):
        if on_ovs(lab, host):  # br-tun maps the VNI to the network's local VLAN
            assert f"tun_id={vni:#x}" in ovs_flows(lab, host, "br-tun")
        else:
            assert f"vxlan id {vni}" in lab.links(host)
    # L2 population: each host knows where the other's instance MAC lives and answers ARP for it locally
    for here, there, vm in (("compute1", "compute2", vm2), ("compute2", "compute1", vm1)):
        if on_ovs(lab, here):
            tun = ovs_flows(lab, here, "br-tun")
            assert f"dl_dst={vm.mac}" in tun and f"arp_tpa={vm.ip}" in tun
            continue
        fdb = netns.run(["bridge", "-n", lab.host_ns(here), "fdb", "show", "dev", naming.vxlan(vni)]).stdout
        assert f"{vm.mac} dst {lab.state.hosts[there].underlay_ip}" in fdb
        neigh = netns.run(["ip", "-n", lab.host_ns(here), "neigh", "show", "dev", naming.vxlan(vni)]).stdout
        assert vm.ip in neigh and vm.mac in neigh


@HOST_KINDS
def test_networks_with_the_same_cidr_are_isolated(lab: Lab) -> None:
    lab.network("red", "10.30.0.0/24")
    lab.network("green", "10.30.0.0/24")
    r1 = lab.boot("red", "compute1", "r1")
    r2 = lab.boot("red", "compute2", "r2")
    g1 = lab.boot("green", "compute1", "g1")
    assert lab.ping("r1", "r2")
    red_macs = {r1.mac, r2.mac, *(p["mac_address"] for p in _dhcp_ports(lab, r1.network_id))}
    green_ips = {f["ip_address"] for p in _ports(lab, g1.network_id) for f in p["fixed_ips"]}
    # ARP scan from the green instance over every address in use on red: nothing red answers
    for ip in sorted({r1.ip, r2.ip} | {f["ip_address"] for p in _dhcp_ports(lab, r1.network_id)
                                       for f in p["fixed_ips"]}):
        out = _arping(g1.netns, ip)
        seen = set(re.findall(r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})", out.lower()))
        assert not seen & red_macs, f"green saw red MACs {seen & red_macs} for {ip}"
        if ip not in green_ips:
            assert not seen, f"{ip} answered on green: {out}"
            assert not lab.ping("g1", ip, count=1)
    # positive control: green's own DHCP port answers ARP on green
    green_dhcp = _dhcp_ports(lab, g1.network_id)[0]
    assert green_dhcp["mac_address"] in _arping(g1.netns, green_dhcp["fixed_ips"][0]["ip_address"]).lower()


@HOST_KINDS
def test_flat_network_reaches_another_host_through_the_physical_bridge(lab: Lab) -> None:
    net = lab.network("flat1", "10.40.0.0/24", **{"provider:network_type": "flat",
                                                     "provider:physical_network": "physnet1"})
    assert net["mtu"] == 1500
    lab.boot("flat1", "compute1", "f1")
    lab.boot("flat1", "compute2", "f2")
    assert lab.ping("f1", "f2")
    bridge = naming.bridge(net["id"])
    for host in ("compute1", "compute2"):
        if on_ovs(lab, host):  # eth1 is a port of br-eth1, patched to br-int; the network has a local VLAN there
            assert "eth1" in ovs.Client(ovs.rundir(lab.state_dir, host)).vsctl("list-ports", "br-eth1").split()
            assert "dl_vlan=" in ovs_flows(lab, host, "br-eth1")
            continue
        links = lab.links(host)
        assert re.search(rf"eth1@\S+ .*master {bridge}", links), links
        assert "vxlan" not in links


@HOST_KINDS
def test_port_delete_stops_traffic(lab: Lab) -> None:
    lab.network("blue", "10.21.0.0/24")
    lab.boot("blue", "compute1", "vm1")
    vm2 = lab.boot("blue", "compute2", "vm2")
    assert lab.ping("vm1", "vm2")
    lab.api.delete_port(vm2.port_id)
    tap = naming.tap(vm2.port_id)
    lab.wait(lambda: not plugged(lab, "compute2", tap), what="tap detached")
    assert not lab.ping("vm1", "vm2", count=2)


def test_agent_restart_keeps_existing_traffic_flowing(lab: Lab) -> None:
    lab.network("blue", "10.22.0.0/24")
    lab.boot("blue", "compute1", "vm1")
    lab.boot("blue", "compute2", "vm2")
    supervisor = lab.extra["supervisor"]
    pinger = ping_loss(lab, "vm1", "vm2", seconds=4)
    for host in ("compute1", "compute2"):
        for agent in supervisor.running.pop(host):
            agent.stop()
    supervisor.reconcile()  # starts fresh agents for the hosts, which resync from scratch
    for host in ("compute1", "compute2"):
        assert all(a.synced.wait(10) for a in supervisor.running[host])
    out, _ = pinger.communicate(timeout=30)
    sent, received = loss_of(out)
    assert sent > 100 and received == sent, out
    assert lab.ping("vm1", "vm2")


def test_bridge_deleted_by_hand_is_rebuilt(lab: Lab) -> None:
    net = lab.network("blue", "10.23.0.0/24")
    lab.boot("blue", "compute1", "vm1")
    lab.boot("blue", "compute2", "vm2")
    bridge = naming.bridge(net["id"])
    netns.run(["ip", "-n", lab.host_ns("compute1"), "link", "del", bridge])
    lab.wait(lambda: lab.ping("vm1", "vm2", count=1), timeout=20, what="traffic back after the bridge was deleted")
    assert bridge in lab.links("compute1")


def test_lost_hints_are_repaired_by_the_periodic_resync(lab: Lab) -> None:
    lab.network("blue", "10.24.0.0/24")
    lab.boot("blue", "compute1", "vm1")
    transport = lab.extra["app"].transport
    real_notify = transport.notify
    transport.notify = lambda message: None  # every hint is lost from now on
    try:
        vm2 = lab.boot("blue", "compute2", "vm2")  # DHCP works only once both agents resynced
        assert lab.ping("vm1", "vm2")
        instances.wait_port_status(lab.api, vm2.port_id, "ACTIVE")
    finally:
        transport.notify = real_notify


def test_deleting_the_network_removes_its_kernel_objects(lab: Lab) -> None:
    net = lab.network("blue", "10.25.0.0/24")
    vm1 = lab.boot("blue", "compute1", "vm1")
    dhcp_ns = naming.dhcp_namespace(net["id"], lab.host_ns("network1"))
    assert netns.exists(dhcp_ns)
    instances.remove(lab.state, lab.api, "vm1")
    lab.api._ok(lab.api.http.delete(f"/v2.0/networks/{net['id']}"))
    bridge = naming.bridge(net["id"])
    for host in ("compute1", "network1"):
        lab.wait(lambda h=host: bridge not in lab.links(h), what=f"bridge gone on {host}")
        assert "vxlan-" not in lab.links(host)
    lab.wait(lambda: not netns.exists(dhcp_ns), what="qdhcp namespace gone")
    assert not netns.exists(vm1.netns)


def _ports(lab: Lab, network_id: str) -> list[dict]:
    return lab.api._ok(lab.api.http.get("/v2.0/ports", params={"network_id": network_id}))["ports"]  # type: ignore[no-any-return]


def _dhcp_ports(lab: Lab, network_id: str) -> list[dict]:
    return [p for p in _ports(lab, network_id) if p["device_owner"] == "network:dhcp"]


def _arping(ns: str, ip: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, "arping", "-c", "2", "-w", "1000000", "-i", "eth0", ip],
                          capture_output=True, text=True, timeout=15, check=False)
    return proc.stdout + proc.stderr
