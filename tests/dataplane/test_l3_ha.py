"""HA routers with real packets (issue 16 points 1-2): a router made HA by `[l3] ha = true` runs keepalived on
two network nodes; only the active instance answers for the router's addresses and floating IP, the agents
report who is active, and cutting the active host's links moves the router to the other one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.dataplane import netns
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.lab import Lab, loss_of, ping_ns, tcp_connects, tcp_listener
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of

NETWORK_HOSTS = ("network1", "network2")


@pytest.fixture
def ha_lab(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, sections={"l3": {"ha": True}}, hosts=["compute1", *NETWORK_HOSTS],
                      network_hosts=NETWORK_HOSTS) as lab:
        yield lab


def hosting(lab: Lab, router_id: str) -> dict[str, str | None]:
    agents = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router_id}/l3-agents"))["agents"]
    return {a["host"]: a.get("ha_state") for a in agents}


def active_host(lab: Lab, router_id: str) -> str | None:
    states = hosting(lab, router_id)
    active = [h for h, s in states.items() if s == "active"]
    return active[0] if len(active) == 1 and set(states.values()) == {"active", "standby"} else None


def addresses(lab: Lab, host: str, router_id: str) -> str:
    ns = f"{lab.host_ns(host)}-qrouter-{router_id}"
    return netns.run(["ip", "-n", ns, "-br", "addr"], check=False).stdout


def cut(lab: Lab, host: str) -> None:
    """The host's wires (underlay, provider and external) go dead, as when it loses power."""
    for wire in (f"ul-{host}", f"pv-{host}", f"ex-{host}"):
        netns.run(["ip", "-n", lab.state.underlay, "link", "set", wire, "down"])


def ha_router(lab: Lab) -> dict[str, Any]:
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("net1", "10.1.0.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    vm1 = lab.boot("net1", "compute1", "vm1")
    allow_from_anywhere(lab, "icmp")
    allow_from_anywhere(lab, "tcp", 22)
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    address, rid = fip["floating_ip_address"], router["id"]
    lab.wait(lambda: active_host(lab, rid) is not None, 20, "one instance to be active, the other standby")
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 20, "the floating IP to answer")
    return {"router": router, "rid": rid, "vm1": vm1, "fip": address, "fip_id": fip["id"]}


def test_one_instance_is_active_and_only_it_holds_the_router(ha_lab: Lab) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid = t["rid"]
    active = active_host(lab, rid)
    assert active is not None
    (standby,) = set(NETWORK_HOSTS) - {active}
    assert "10.1.0.1/24" in addresses(lab, active, rid)
    assert "10.1.0.1" not in addresses(lab, standby, rid)  # keepalived gives the standby no router address
    assert t["fip"] not in addresses(lab, standby, rid)
    assert "fe80" not in addresses(lab, standby, rid)  # nor an IPv6 link-local one: it stays silent

    ext_ns = lab.state.external
    lab.wait(lambda: ping_ns(t["vm1"].netns, EXTERNAL_GATEWAY, count=1), 20, "vm1 to reach the outside")
    with tcp_listener(t["vm1"].netns, 22):
        assert tcp_connects(ext_ns, t["fip"], 22)
    # the active instance's agent reported the floating IP realized
    lab.wait(lambda: lab.api._ok(lab.api.http.get(f"/v2.0/floatingips/{t['fip_id']}"))["floatingip"]["status"]
             == "ACTIVE", 20, "the floating IP to turn ACTIVE")


def test_losing_the_active_host_moves_the_router(ha_lab: Lab) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid, ext_ns = t["rid"], lab.state.external
    old = active_host(lab, rid)
    assert old is not None
    (new,) = set(NETWORK_HOSTS) - {old}

    cut(lab, old)
    lab.wait(lambda: hosting(lab, rid).get(new) == "active", 15, f"{new} to report itself active")
    assert "10.1.0.1/24" in addresses(lab, new, rid)
    lab.wait(lambda: ping_ns(ext_ns, t["fip"], count=1), 15, "the floating IP to answer from the other host")
    lab.wait(lambda: ping_ns(t["vm1"].netns, EXTERNAL_GATEWAY, count=1), 15, "vm1 to reach the outside again")
    port = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": rid,
                                                                "device_owner": "network:router_interface"}))
    assert [p["binding:host_id"] for p in port["ports"]] == [new]  # L2 population follows the active host


def test_restarting_the_l3_agents_keeps_keepalived_and_the_traffic(ha_lab: Lab, tmp_path: Path) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid, ext_ns = t["rid"], lab.state.external
    logs = {host: tmp_path / "l3" / host / "ha" / rid / "transitions" for host in NETWORK_HOSTS}
    before = {host: path.read_text() for host, path in logs.items()}
    states = hosting(lab, rid)

    supervisor = lab.extra["supervisor"]
    pinger = subprocess.Popen(["ip", "netns", "exec", ext_ns, "ping", "-i", "0.02", "-c", "200", "-W", "1", t["fip"]],
                              stdout=subprocess.PIPE, text=True)
    for host in NETWORK_HOSTS:
        for agent in supervisor.running.pop(host):
            agent.stop()
    supervisor.reconcile()  # fresh agents, which adopt the running keepalived instances
    for host in NETWORK_HOSTS:
        assert all(a.synced.wait(10) for a in supervisor.running[host])
    out, _ = pinger.communicate(timeout=30)
    sent, received = loss_of(out)
    assert sent > 100 and received == sent, out
    assert {host: path.read_text() for host, path in logs.items()} == before  # no transition anywhere
    assert hosting(lab, rid) == states
