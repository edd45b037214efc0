"""Work moving off dead agents (issue 16 point 7): legacy routers of an L3 agent, and networks of a DHCP agent,
with no heartbeat for agent_down_time go to live agents (allow_automatic_l3agent_failover,
allow_automatic_dhcp_failover); HA routers stay. Agents are played through the in-process RPC transport;
their death is a heartbeat moved into the past, and the server's check is run by the test (the periodic
thread that runs it in the server is exercised once, with a short agent_down_time)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.rpc.contracts import L3View, StateReport, ViewRequest, decode, encode
from fermion.services.failover import Moved
from tests.api.test_agents import DHCP, age_heartbeat, dhcp_agent_ids, dhcp_ports, dhcp_view
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient

L3 = "L3 agent"
LB = "Linux bridge agent"
BINARIES = {LB: ("neutron-linuxbridge-agent", "N/A"), L3: ("neutron-l3-agent", "l3_agent"),
            DHCP: ("neutron-dhcp-agent", "dhcp_agent")}
VTEPS = {"net1": "198.18.0.11", "net2": "198.18.0.12", "net3": "198.18.0.13", "compute1": "198.18.0.21"}
RESERVED = "reserved_dhcp_port"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[SyncClient]:
    with servers.temporary_database("sqlite", tmp_path) as url, make_client(url, tmp_path) as c:
        yield c


def agent(client: SyncClient, host: str, agent_type: str, zone: str = "nova", start_flag: bool = True) -> str:
    """The agent's state report; returns its id."""
    binary, topic = BINARIES[agent_type]
    conf: dict[str, Any] = {"tunneling_ip": VTEPS[host], "tunnel_types": ["vxlan"]} if agent_type == LB else {}
    msg = StateReport(host=host, agent_type=agent_type, binary=binary, topic=topic, configurations=conf,
                      start_flag=start_flag, availability_zone=zone)
    return str(client.app.transport.call("report_state", encode(msg))["agent_id"])


def network_host(client: SyncClient, host: str, zone: str = "nova", dhcp: bool = False) -> dict[str, str]:
    """A network host's agents (Linux bridge, L3, and DHCP if asked): agent type -> id."""
    kinds = [LB, L3] + ([DHCP] if dhcp else [])
    return {kind: agent(client, host, kind, zone) for kind in kinds}


def failover(client: SyncClient) -> Moved:
    """One run of the server's dead-agent check."""
    moved: Moved = client.app.failover.run()
    return moved


def l3_routers(client: SyncClient, host: str) -> list[str]:
    view = decode(L3View, client.app.transport.call("get_l3_view", encode(ViewRequest(host, L3))))
    return [r.id for r in view.routers]


def hosts_of(api: Api, router_id: str) -> list[str]:
    r = api.get(f"/v2.0/routers/{router_id}/l3-agents")
    assert r.status_code == 200, r.text
    return sorted(a["host"] for a in r.json()["agents"])


def router_ports(api: Api, router_id: str) -> list[dict[str, Any]]:
    r = api.get("/v2.0/ports", params={"device_id": router_id})
    assert r.status_code == 200, r.text
    return [p for p in r.json()["ports"] if p["device_owner"] != "network:router_ha_interface"]


def legacy_router(api: Api, **attrs: Any) -> dict[str, Any]:
    """A router with a gateway on an external network and an interface on a tenant subnet."""
    ext = api.network(name="public", **{"router:external": True})
    api.subnet(ext["id"], "198.18.100.0/24")
    net = api.network(name="inside")
    sub = api.subnet(net["id"], "10.1.0.0/24")
    router = api.create("routers", name="r", external_gateway_info={"network_id": ext["id"]}, **attrs)
    r = api.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
    assert r.status_code == 200, r.text
    return router


# ---------------------------------------------------------------- legacy routers
def test_a_legacy_router_moves_off_its_dead_l3_agent_after_agent_down_time(client: SyncClient, api: Api) -> None:
    ids = {host: network_host(client, host) for host in ("net1", "net2")}
    router = legacy_router(api)
    (old,) = hosts_of(api, router["id"])
    (new,) = {"net1", "net2"} - {old}
    assert {p["binding:host_id"] for p in router_ports(api, router["id"])} == {old}

    assert failover(client) == Moved()  # everyone alive: nothing moves
    age_heartbeat(client, ids[old][L3], seconds=20)  # within agent_down_time (30 s): still alive
    assert failover(client) == Moved()
    assert hosts_of(api, router["id"]) == [old]

    age_heartbeat(client, ids[old][L3], seconds=40)
    assert failover(client).routers == [(router["id"], new)]
    assert hosts_of(api, router["id"]) == [new]
    ports = router_ports(api, router["id"])
    assert len(ports) == 2 and {p["binding:host_id"] for p in ports} == {new}  # gateway and interface follow
    assert l3_routers(client, new) == [router["id"]]
    assert l3_routers(client, old) == []
    assert failover(client) == Moved()  # done once


def test_the_dead_agent_coming_back_leaves_the_router_where_it_went(client: SyncClient, api: Api) -> None:
    ids = {host: network_host(client, host) for host in ("net1", "net2")}
    router = legacy_router(api)
    (old,) = hosts_of(api, router["id"])
    (new,) = {"net1", "net2"} - {old}
    age_heartbeat(client, ids[old][L3], seconds=3600)
    failover(client)
    agent(client, old, L3)  # it restarts and reports again: its view no longer has the router, it removes it
    assert hosts_of(api, router["id"]) == [new]
    assert l3_routers(client, old) == []
    assert failover(client) == Moved()


def test_a_router_stays_when_no_live_l3_agent_can_take_it(client: SyncClient, api: Api) -> None:
    ids = network_host(client, "net1")
    router = legacy_router(api)
    age_heartbeat(client, ids[L3])
    assert failover(client) == Moved()
    assert hosts_of(api, router["id"]) == ["net1"]  # as Neutron: rescheduling failed, the binding stays
    assert {p["binding:host_id"] for p in router_ports(api, router["id"])} == {"net1"}
    network_host(client, "net2")  # a live agent appears: the next check moves it
    assert failover(client).routers == [(router["id"], "net2")]


def test_a_moved_router_keeps_to_its_availability_zone_hints(client: SyncClient, api: Api) -> None:
    ids = {"net1": network_host(client, "net1", "az1"), "net2": network_host(client, "net2", "az2"),
           "net3": network_host(client, "net3", "az1")}
    router = legacy_router(api, availability_zone_hints=["az1"])
    (first,) = hosts_of(api, router["id"])
    (second,) = {"net1", "net3"} - {first}
    age_heartbeat(client, ids[first][L3])
    assert failover(client).routers == [(router["id"], second)]
    age_heartbeat(client, ids[second][L3])
    assert failover(client) == Moved()  # net2 is alive, but in az2
    assert hosts_of(api, router["id"]) == [second]


def test_a_disabled_dead_agent_keeps_its_routers(client: SyncClient, api: Api) -> None:
    ids = {host: network_host(client, host) for host in ("net1", "net2")}
    router = legacy_router(api)
    (old,) = hosts_of(api, router["id"])
    r = api.put(f"/v2.0/agents/{ids[old][L3]}", json={"agent": {"admin_state_up": False}})
    assert r.status_code == 200, r.text
    age_heartbeat(client, ids[old][L3])
    assert failover(client) == Moved()  # as Neutron: only enabled agents' routers are rescheduled
    assert hosts_of(api, router["id"]) == [old]


def test_ha_routers_stay_on_their_dead_agents(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"l3": {"max_l3_agents_per_router": 2}}) as client:
        api = Api(client, "admin-project", "admin")
        ids = {host: network_host(client, host) for host in ("net1", "net2", "net3")}
        router = legacy_router(api, ha=True)
        before = hosts_of(api, router["id"])
        assert len(before) == 2
        age_heartbeat(client, ids[before[0]][L3])
        assert failover(client) == Moved()  # keepalived moves the traffic; the binding stays, as Neutron
        assert hosts_of(api, router["id"]) == before


def test_with_l3_failover_disabled_routers_stay(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"l3": {"allow_automatic_l3agent_failover": False}}) as client:
        api = Api(client, "admin-project", "admin")
        ids = {host: network_host(client, host, dhcp=True) for host in ("net1", "net2")}
        router = legacy_router(api)
        (old,) = hosts_of(api, router["id"])
        age_heartbeat(client, ids[old][L3])
        age_heartbeat(client, ids[old][DHCP])
        moved = failover(client)
        assert moved.routers == []
        assert hosts_of(api, router["id"]) == [old]
        assert moved.networks != []  # DHCP failover has its own switch


@pytest.mark.parametrize("kind", [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
])
def test_two_server_processes_checking_at_once_move_each_router_once(tmp_path: Path, kind: str) -> None:
    """Every server process runs the check: two of them (two apps on one database) at the same moment."""
    with servers.temporary_database(kind, tmp_path) as url, make_client(url, tmp_path) as one, \
            make_client(url, tmp_path) as two:
        api = Api(one, "admin-project", "admin")
        ids = {host: network_host(one, host, dhcp=True) for host in ("net1", "net2", "net3")}
        routers = []
        for i in range(6):
            r = api.create("routers", name=f"r{i}")
            routers.append(r["id"])
            net = api.network(name=f"n{i}")
            api.subnet(net["id"], f"10.{i}.0.0/24")
        on_net1 = [r for r in routers if hosts_of(api, r) == ["net1"]]
        age_heartbeat(one, ids["net1"][L3])
        age_heartbeat(one, ids["net1"][DHCP])
        results: list[Moved] = []
        start = threading.Barrier(2)

        def check(c: SyncClient) -> None:
            start.wait()
            results.append(failover(c))

        threads = [threading.Thread(target=check, args=(c,)) for c in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 2
        moved = sorted(r for m in results for r, _ in m.routers)
        assert moved == sorted(on_net1)  # each once, by one process or the other
        for r in routers:
            (host,) = hosts_of(api, r)
            assert host in ("net2", "net3")
        for m in results:
            for _, agent_id in m.networks:
                assert agent_id == ids["net1"][DHCP]
        assert len({n for m in results for n, _ in m.networks}) == sum(len(m.networks) for m in results)


def test_the_server_checks_by_itself(tmp_path: Path) -> None:
    """The periodic check in the server process: with a 2 s agent_down_time, a router whose agent stops
    reporting moves without the test running the check."""
    sections = {"agents": {"agent_down_time": 2.0, "report_interval": 0.5}}
    with servers.temporary_database("sqlite", tmp_path) as url, make_client(url, tmp_path, sections) as client:
        api = Api(client, "admin-project", "admin")
        network_host(client, "net1")
        network_host(client, "net2")
        router = legacy_router(api)
        (old,) = hosts_of(api, router["id"])
        (new,) = {"net1", "net2"} - {old}
        deadline = time.monotonic() + 30
        while hosts_of(api, router["id"]) != [new]:  # only `new` keeps reporting
            assert time.monotonic() < deadline, "the router did not move off the silent agent"
            for kind in (LB, L3):
                agent(client, new, kind, start_flag=False)
            time.sleep(0.5)


# ---------------------------------------------------------------- DHCP
@pytest.fixture
def two_per_network(tmp_path: Path) -> Iterator[SyncClient]:
    """dhcp_agents_per_network = 2, as the lab has it."""
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"agents": {"dhcp_agents_per_network": 2}}) as c:
        yield c


def test_a_network_moves_off_its_dead_dhcp_agent_with_its_dhcp_port(client: SyncClient, api: Api) -> None:
    d1 = agent(client, "net1", DHCP)
    net = api.network(name="n")
    api.subnet(net["id"], "10.20.0.0/24")
    assert dhcp_agent_ids(api, net["id"]) == [d1]
    d2 = agent(client, "net2", DHCP)
    (served,) = dhcp_view(client, "net1").networks
    (before,) = dhcp_ports(api, net["id"])

    age_heartbeat(client, d1, seconds=20)
    assert failover(client) == Moved()
    age_heartbeat(client, d1, seconds=40)
    assert failover(client).networks == [(net["id"], d1)]
    assert dhcp_agent_ids(api, net["id"]) == [d2]
    (port,) = dhcp_ports(api, net["id"])
    assert port["device_id"] == RESERVED and port["binding:host_id"] == ""  # until the new agent takes it

    (taken,) = dhcp_view(client, "net2").networks
    assert taken.port_id == served.port_id and taken.port_ips == served.port_ips  # same DHCP server address
    (port,) = dhcp_ports(api, net["id"])
    assert port["binding:host_id"] == "net2" and port["device_id"].startswith("dhcp")
    assert port["fixed_ips"] == before["fixed_ips"]
    assert dhcp_view(client, "net1").networks == []


def test_two_dhcp_agents_serve_the_same_hosts_and_a_third_takes_over(two_per_network: SyncClient) -> None:
    client = two_per_network
    api = Api(client, "admin-project", "admin")
    d = {h: agent(client, h, DHCP) for h in ("net1", "net2")}
    net = api.network(name="n")
    api.subnet(net["id"], "10.20.0.0/24")
    api.port(net["id"], name="vm")
    assert sorted(dhcp_agent_ids(api, net["id"])) == sorted(d.values())
    for h in d:
        dhcp_view(client, h)  # each agent's first pull makes its DHCP port
    views = {h: dhcp_view(client, h).networks[0] for h in d}
    assert views["net1"].hosts == views["net2"].hosts  # the same static leases on both
    assert views["net1"].port_id != views["net2"].port_id  # each its own DHCP port
    assert len(views["net1"].hosts) == 3  # the instance and both DHCP ports

    d["net3"] = agent(client, "net3", DHCP)
    age_heartbeat(client, d["net1"])
    assert failover(client).networks == [(net["id"], d["net1"])]
    assert sorted(dhcp_agent_ids(api, net["id"])) == sorted([d["net2"], d["net3"]])
    third = dhcp_view(client, "net3").networks[0]
    assert third.port_id == views["net1"].port_id  # the dead agent's port, its address kept
    assert third.hosts == dhcp_view(client, "net2").networks[0].hosts


def test_with_one_of_two_dhcp_agents_dead_the_live_one_serves_and_the_dead_one_comes_back(
        two_per_network: SyncClient) -> None:
    client = two_per_network
    api = Api(client, "admin-project", "admin")
    d = {h: agent(client, h, DHCP) for h in ("net1", "net2")}
    net = api.network(name="n")
    api.subnet(net["id"], "10.20.0.0/24")
    first = dhcp_view(client, "net1").networks[0]
    dhcp_view(client, "net2")
    age_heartbeat(client, d["net1"])
    assert failover(client).networks == [(net["id"], d["net1"])]
    assert dhcp_agent_ids(api, net["id"]) == [d["net2"]]  # no third agent: one serves

    vm = api.port(net["id"], name="booted-meanwhile")
    served = dhcp_view(client, "net2").networks[0]
    assert vm["mac_address"] in {h.mac for h in served.hosts}

    agent(client, "net1", DHCP)  # it restarts: the network is short of an agent, it takes it again
    assert sorted(dhcp_agent_ids(api, net["id"])) == sorted(d.values())
    back = dhcp_view(client, "net1").networks[0]
    assert back.port_id == first.port_id  # its reserved port again
    assert len(dhcp_ports(api, net["id"])) == 2
    assert back.hosts == dhcp_view(client, "net2").networks[0].hosts


def test_no_live_dhcp_agent_leaves_everything_as_it_is(client: SyncClient, api: Api) -> None:
    d1 = agent(client, "net1", DHCP)
    net = api.network(name="n")
    api.subnet(net["id"], "10.20.0.0/24")
    dhcp_view(client, "net1")
    age_heartbeat(client, d1)
    assert failover(client) == Moved()  # as Neutron: nowhere to go, the binding and the port stay
    assert dhcp_agent_ids(api, net["id"]) == [d1]
    assert dhcp_ports(api, net["id"])[0]["binding:host_id"] == "net1"


def test_with_dhcp_failover_disabled_networks_stay(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"agents": {"allow_automatic_dhcp_failover": False}}) as client:
        api = Api(client, "admin-project", "admin")
        d1 = agent(client, "net1", DHCP)
        net = api.network(name="n")
        api.subnet(net["id"], "10.20.0.0/24")
        agent(client, "net2", DHCP)
        age_heartbeat(client, d1)
        assert failover(client) == Moved()
        assert dhcp_agent_ids(api, net["id"]) == [d1]
