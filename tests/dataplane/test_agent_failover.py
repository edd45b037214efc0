"""Agent failover with real packets (issue 16 point 7), in a lab with two network hosts: when the host of a legacy
router and of a network's DHCP server dies (agents stopped, wires cut), the server moves both to the other
host after agent_down_time (6 s in the lab) and the traffic through the router comes back, the instance's lease
renews from the DHCP port that moved with its address; the host coming back removes its stale copies. With
dhcp_agents_per_network = 2, both DHCP servers hold the same leases and an instance booted while one is dead
gets its address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.failover import (
    dhcp_hosts,
    dhcp_server,
    has_namespace,
    heal,
    l3_hosts,
    legacy_router,
    lose,
    router_namespace,
)
from tests.dataplane.lab import Lab, Pinger, dhcp_env, ping_ns

NETWORK_HOSTS = ("network1", "network2")
HOSTS = ["compute1", *NETWORK_HOSTS]


@pytest.fixture
def two_network_hosts(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, hosts=HOSTS, network_hosts=NETWORK_HOSTS) as lab:
        yield lab


@pytest.fixture
def two_dhcp_servers(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, sections={"agents": {"dhcp_agents_per_network": 2}}, hosts=HOSTS,
                      network_hosts=NETWORK_HOSTS) as lab:
        yield lab


def test_losing_a_legacy_routers_host_moves_the_router_and_dhcp_and_traffic_comes_back(
        two_network_hosts: Lab) -> None:
    lab = two_network_hosts
    t = legacy_router(lab)
    rid, old = t["router"]["id"], t["host"]
    (new,) = set(NETWORK_HOSTS) - {old}
    ext_ns, vm1 = lab.state.external, t["vm1"]
    lab.wait(lambda: ping_ns(ext_ns, t["fip"], count=1), 20, "the floating IP to answer")
    lab.wait(lambda: ping_ns(vm1.netns, EXTERNAL_GATEWAY, count=1), 20, "vm1 to reach the outside")
    server = dhcp_server(lab, t["net"]["id"])

    # continuous pings through the floating IP and through SNAT (bench/failover.py times their gap)
    inbound, outbound = Pinger(ext_ns, t["fip"]), Pinger(vm1.netns, EXTERNAL_GATEWAY)
    try:
        lab.wait(lambda: inbound.replies and outbound.replies, 10, "the pings to be answered")
        lost_at = lose(lab, old)
        lab.wait(lambda: l3_hosts(lab, rid) == [new], 30, f"the router to move to {new}")
        lab.wait(lambda: inbound.answered_after(lost_at), 30, "the floating IP to answer through the other host")
        lab.wait(lambda: outbound.answered_after(lost_at), 30, "vm1 to reach the outside again")
    finally:
        inbound.stop()
        outbound.stop()
    assert has_namespace(router_namespace(lab, new, rid))
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": rid}))["ports"]
    assert {p["binding:host_id"] for p in ports} == {new}

    # DHCP moved with its address: vm1 renews its lease from the same server address, now on the other host
    lab.wait(lambda: dhcp_hosts(lab, t["net"]["id"]) == [new], 30, f"the network's DHCP to move to {new}")
    lab.wait(lambda: dhcp_server(lab, t["net"]["id"]) == server and _bound_to(lab, t["net"]["id"]) == new, 20,
             "the new DHCP agent to take the DHCP port")
    env = dhcp_env(lab, "vm1")
    assert env["ip"] == vm1.ip and env["serverid"] == server

    # the host comes back: the router stays where it went, the host's stale copy goes
    heal(lab, old)
    lab.wait(lambda: not has_namespace(router_namespace(lab, old, rid)), 30, f"{old} to remove its stale router")
    assert l3_hosts(lab, rid) == [new]
    assert ping_ns(ext_ns, t["fip"], count=2) and ping_ns(vm1.netns, EXTERNAL_GATEWAY, count=2)
    assert dhcp_env(lab, "vm1")["ip"] == vm1.ip


def _bound_to(lab: Lab, network_id: str) -> str:
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"network_id": network_id,
                                                                "device_owner": "network:dhcp"}))["ports"]
    return str(ports[0]["binding:host_id"]) if len(ports) == 1 else ""


def hosts_file(lab: Lab, host: str, network_id: str) -> str:
    path = lab.state_dir / "dhcp" / host / network_id / "host"
    return path.read_text() if path.exists() else ""


def same_leases(lab: Lab, network_id: str, *macs: str) -> bool:
    """Both DHCP servers' hosts files are the same and hold these MACs."""
    files = [hosts_file(lab, host, network_id) for host in NETWORK_HOSTS]
    return files[0] == files[1] and all(mac in files[0] for mac in macs)


def test_two_dhcp_servers_hold_the_same_leases_and_one_alone_still_serves(two_dhcp_servers: Lab) -> None:
    lab = two_dhcp_servers
    net = lab.network("net1", "10.1.0.0/24")
    assert dhcp_hosts(lab, net["id"]) == list(NETWORK_HOSTS)
    vm1 = lab.boot("net1", "compute1", "vm1")
    lab.wait(lambda: same_leases(lab, net["id"], vm1.mac), 20, "both dnsmasq hosts files to hold vm1")

    lose(lab, "network1")
    vm2 = lab.boot("net1", "compute1", "vm2")  # network2's dnsmasq alone answers
    assert vm2.ip
    lab.wait(lambda: dhcp_hosts(lab, net["id"]) == ["network2"], 30, "the dead agent's network to be removed")
    vm3 = lab.boot("net1", "compute1", "vm3")
    assert lab.ping("vm3", "vm1") and lab.ping("vm2", "vm1")

    heal(lab, "network1")  # it reports again: the network, short of a DHCP agent, is its again
    lab.wait(lambda: dhcp_hosts(lab, net["id"]) == list(NETWORK_HOSTS), 30, "network1 to serve the network again")
    lab.wait(lambda: same_leases(lab, net["id"], vm1.mac, vm2.mac, vm3.mac), 20,
             "both dnsmasq hosts files to hold every instance")
