"""Agent failover in distributed mode (issue 16 point 7): `fermion serve` with two worker processes (both run
the dead-agent check) on PostgreSQL, agents as processes over RabbitMQ, two network hosts. The host of a legacy
router and of its network's DHCP server is lost (its agent processes stopped, its wires cut): the router and
the network move to the other host and the traffic through the router comes back; the host's agents come back
and remove their stale copies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fermion.dataplane import netns
from fermion.lab.topology import EXTERNAL_GATEWAY
from fermion.runtime.lab import spawn_agents, stop_agents
from tests.dataplane.failover import (
    dhcp_hosts,
    has_namespace,
    l3_hosts,
    legacy_router,
    router_namespace,
    wires,
)
from tests.dataplane.lab import Lab, Pinger, dhcp_env, ping_ns
from tests.fullstack.test_distributed import distributed_lab

NETWORK_HOSTS = ("network1", "network2")


@pytest.fixture
def dlab(tmp_path: Path) -> Iterator[Lab]:
    with distributed_lab(tmp_path, "[server]\nworkers = 2\n", hosts=["compute1", *NETWORK_HOSTS],
                         network_hosts=NETWORK_HOSTS) as lab:
        yield lab


def lose(lab: Lab, host: str) -> None:
    """The host's agent processes stop and its wires go down."""
    wires(lab, host, "down")
    procs = lab.state.hosts[host].agents
    stop_agents(lab.state.hosts[host], procs)
    lab.extra["pids"][:] = [pid for pid in lab.extra["pids"] if pid not in {p.pid for p in procs}]
    lab.state.hosts[host].agents = []


def heal(lab: Lab, host: str) -> None:
    """New agent processes (they resync and remove what moved away), then the wires."""
    started = spawn_agents(lab.state, lab.state.hosts[host], lab.extra["logs"])
    lab.extra["pids"] += [p.pid for p in started]
    lab.wait(lambda: not netns.names(f"{lab.host_ns(host)}-qrouter-"), 45, f"{host} to remove its stale router")
    wires(lab, host, "up")


def test_a_legacy_routers_host_lost_in_distributed_mode(dlab: Lab) -> None:
    lab = dlab
    t = legacy_router(lab)
    rid, old = t["router"]["id"], t["host"]
    (new,) = set(NETWORK_HOSTS) - {old}
    ext_ns, vm1 = lab.state.external, t["vm1"]
    lab.wait(lambda: ping_ns(ext_ns, t["fip"], count=1), 30, "the floating IP to answer")

    inbound, outbound = Pinger(ext_ns, t["fip"]), Pinger(vm1.netns, EXTERNAL_GATEWAY)
    try:
        lab.wait(lambda: inbound.replies and outbound.replies, 10, "the pings to be answered")
        at = inbound.replies[-1]
        lose(lab, old)
        lab.wait(lambda: l3_hosts(lab, rid) == [new], 45, f"the router to move to {new}")
        lab.wait(lambda: inbound.answered_after(at + 1) and outbound.answered_after(at + 1), 45,
                 "the traffic to come back through the other host")
    finally:
        inbound.stop()
        outbound.stop()
    lab.wait(lambda: dhcp_hosts(lab, t["net"]["id"]) == [new], 45, f"the network's DHCP to move to {new}")
    lab.wait(lambda: _renews(lab, vm1.ip or ""), 30, "vm1 to renew its lease from the other host")

    heal(lab, old)
    assert not has_namespace(router_namespace(lab, old, rid))
    assert l3_hosts(lab, rid) == [new]
    lab.wait(lambda: ping_ns(ext_ns, t["fip"], count=1), 30, "the floating IP to answer after the heal")


def _renews(lab: Lab, ip: str) -> bool:
    try:
        return dhcp_env(lab, "vm1").get("ip") == ip
    except AssertionError:  # no answer yet: the new host's DHCP server is still starting
        return False
