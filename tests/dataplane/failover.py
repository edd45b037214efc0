"""Losing a lab host and getting it back (embedded mode), for the agent failover tests and bench/failover.py.

A lost host's agents stop and its wires (underlay, provider, external) go down, as when it loses power; its
namespaces stay, as a powered-off host's disk does. The lab supervisor starts agents for the hosts of the
lab's state file: the host is left out of that file while it is lost, so no agent of it comes back early."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from fermion.dataplane import netns
from fermion.lab import instances
from fermion.lab.state import state_path
from tests.dataplane.lab import Lab
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of


def wires(lab: Lab, host: str, state: str) -> None:
    for wire in (f"ul-{host}", f"pv-{host}", f"ex-{host}"):
        netns.run(["ip", "-n", lab.state.underlay, "link", "set", wire, state])


def lose(lab: Lab, host: str) -> float:
    """The host dies; returns when (epoch seconds), its agents already stopped."""
    supervisor = lab.extra["supervisor"]
    without = dataclasses.replace(lab.state, hosts={k: v for k, v in lab.state.hosts.items() if k != host})
    wires(lab, host, "down")
    at = time.time()
    without.save(state_path(lab.state_dir))
    lab.wait(lambda: host not in supervisor.running, 10, f"the agents of {host} to stop")
    return at


def heal(lab: Lab, host: str) -> None:
    """The host is back: fresh agents, which resync from what the kernel shows (the stale router and DHCP
    server of what moved away go), then its wires, as a host that boots before its links work. (Wires first
    would let the stale router answer ARP for its addresses until its agent removes it, and the external
    switch would then send their traffic to the wrong host until the live router speaks again.)"""
    supervisor = lab.extra["supervisor"]
    lab.state.save(state_path(lab.state_dir))
    lab.wait(lambda: host in supervisor.running, 10, f"the agents of {host} to start")
    assert all(agent.synced.wait(30) for agent in supervisor.running[host]), f"the agents of {host} to sync"
    wires(lab, host, "up")


def l3_hosts(lab: Lab, router_id: str) -> list[str]:
    agents = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router_id}/l3-agents"))["agents"]
    return sorted(a["host"] for a in agents)


def dhcp_hosts(lab: Lab, network_id: str) -> list[str]:
    agents = lab.api._ok(lab.api.http.get(f"/v2.0/networks/{network_id}/dhcp-agents"))["agents"]
    return sorted(a["host"] for a in agents)


def router_namespace(lab: Lab, host: str, router_id: str) -> str:
    return f"{lab.host_ns(host)}-qrouter-{router_id}"


def has_namespace(name: str) -> bool:
    return name in netns.names(name)


def gap(replies: list[float], at: float) -> float | None:
    """Seconds between the last reply before `at` and the first after it; None when none came after."""
    before = [t for t in replies if t <= at]
    after = [t for t in replies if t > at]
    if not before or not after:
        return None
    return after[0] - before[-1]


def agent_id(lab: Lab, host: str, agent_type: str) -> str:
    (found,) = [a["id"] for a in lab.api.agents() if a["host"] == host and a["agent_type"] == agent_type]
    return str(found)


def dhcp_on(lab: Lab, network_id: str, host: str) -> None:
    """The network's DHCP served from that host only (by hand, as an operator does it). The host is added
    before the others are removed: a network left without a DHCP agent for a moment is scheduled again by the
    next agent heartbeat, maybe to a host being removed, and would end up with two."""
    if host not in dhcp_hosts(lab, network_id):
        r = lab.api.http.post(f"/v2.0/agents/{agent_id(lab, host, 'DHCP agent')}/dhcp-networks",
                              json={"network_id": network_id})
        assert r.status_code == 201, r.text
    for current in dhcp_hosts(lab, network_id):
        if current != host:
            lab.api._ok(lab.api.http.delete(
                f"/v2.0/agents/{agent_id(lab, current, 'DHCP agent')}/dhcp-networks/{network_id}"))
    assert dhcp_hosts(lab, network_id) == [host]


def legacy_router(lab: Lab) -> dict[str, Any]:
    """net1 behind a legacy router with a gateway, vm1 on compute1 with a floating IP (ICMP allowed in); the
    router's host serves net1's DHCP too, so losing that host loses both."""
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("net1", "10.1.0.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    (host,) = l3_hosts(lab, router["id"])
    dhcp_on(lab, net["id"], host)
    vm1 = lab.boot("net1", "compute1", "vm1")
    allow_from_anywhere(lab, "icmp")
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    return {"router": router, "net": net, "vm1": vm1, "fip": fip["floating_ip_address"], "host": host}


def dhcp_server(lab: Lab, network_id: str) -> str:
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"network_id": network_id,
                                                                "device_owner": "network:dhcp"}))["ports"]
    (port,) = ports
    return str(port["fixed_ips"][0]["ip_address"])
