"""HA routers on the server (l3-ha, issue 16 point 1): the `ha` attribute and its policy, the project's hidden HA
network, VRIDs, scheduling on several L3 agents with an HA port each, VRRP states reported by the agents and
shown per agent, conversion between legacy and HA. Agents are played through the in-process RPC transport as a
real agent calls the server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import netaddr
import pytest
from sqlalchemy import insert

from fermion.db import models as m
from fermion.rpc.contracts import HaStateReport, L2View, L3View, StateReport, ViewRequest, decode, encode
from fermion.services.l3_ha import HaRouters
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

L3 = "L3 agent"
LB = "Linux bridge agent"
VTEPS = {"net1": "198.18.0.11", "net2": "198.18.0.12", "net3": "198.18.0.13", "net4": "198.18.0.14",
         "compute1": "198.18.0.21"}
HA_OWNER = "network:router_ha_interface"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[SyncClient]:
    with servers.temporary_database("sqlite", tmp_path) as url, make_client(url, tmp_path) as c:
        yield c


def lb_agent(client: SyncClient, host: str) -> None:
    lb = StateReport(host=host, agent_type=LB, binary="neutron-linuxbridge-agent", topic="N/A",
                     configurations={"tunneling_ip": VTEPS[host], "tunnel_types": ["vxlan"]}, start_flag=True)
    client.app.transport.call("report_state", encode(lb))


def l3_agent(client: SyncClient, host: str) -> str:
    """A network host: a Linux bridge agent (the HA ports bind there) and the L3 agent, whose id is returned."""
    lb_agent(client, host)
    msg = StateReport(host=host, agent_type=L3, binary="neutron-l3-agent", topic="l3_agent",
                      configurations={"agent_mode": "legacy"}, start_flag=True)
    return str(client.app.transport.call("report_state", encode(msg))["agent_id"])


def l3_view(client: SyncClient, host: str) -> L3View:
    return decode(L3View, client.app.transport.call("get_l3_view", encode(ViewRequest(host, L3))))


def report_states(client: SyncClient, host: str, states: dict[str, str]) -> None:
    client.app.transport.call("report_ha_states", encode(HaStateReport(host=host, states=states)))


def make_ha(client: SyncClient, project: str, name: str = "r") -> str:
    """An HA router of the project, as `openstack router create --ha` makes it (an admin's call)."""
    r = Api(client, project, "admin").post("/v2.0/routers", json={"router": {"name": name, "ha": True}})
    assert r.status_code == 201, r.text
    assert r.json()["router"]["ha"] is True
    return str(r.json()["router"]["id"])


def set_ha(api: Api, router_id: str, ha: bool, admin_state_up: bool = False) -> Any:
    return api.put(f"/v2.0/routers/{router_id}", json={"router": {"ha": ha, "admin_state_up": admin_state_up}})


def hosting(api: Api, router_id: str) -> dict[str, str | None]:
    """host -> ha_state, as GET /routers/{id}/l3-agents shows it."""
    r = api.get(f"/v2.0/routers/{router_id}/l3-agents")
    assert r.status_code == 200, r.text
    return {a["host"]: a.get("ha_state") for a in r.json()["agents"]}


def ha_ports(api: Api, router_id: str) -> list[dict[str, Any]]:
    r = api.get("/v2.0/ports", params={"device_id": router_id, "device_owner": HA_OWNER})
    assert r.status_code == 200, r.text
    return list(r.json()["ports"])


def test_an_ha_router_gets_an_ha_network_a_vrid_and_a_port_on_each_of_three_agents(client: SyncClient,
                                                                                   api: Api) -> None:
    for host in ("net1", "net2", "net3", "net4"):
        l3_agent(client, host)
    rid = make_ha(client, "tenant-a")
    admin = api.as_("admin-project", "admin")
    assert admin.get(f"/v2.0/routers/{rid}").json()["router"]["ha"] is True
    states = hosting(admin, rid)
    assert len(states) == 3  # [l3] max_l3_agents_per_router
    assert set(states.values()) == {"standby"}

    (net,) = admin.get("/v2.0/networks", params={"name": "HA network tenant tenant-a"}).json()["networks"]
    assert net["project_id"] == ""
    (sub,) = admin.get("/v2.0/subnets", params={"network_id": net["id"]}).json()["subnets"]
    assert (sub["name"], sub["cidr"], sub["enable_dhcp"], sub["gateway_ip"]) == (
        "HA subnet tenant tenant-a", "169.254.192.0/18", False, None)
    ports = ha_ports(admin, rid)
    assert sorted(p["binding:host_id"] for p in ports) == sorted(states)
    assert {p["network_id"] for p in ports} == {net["id"]}
    assert {p["name"] for p in ports} == {"HA port tenant tenant-a"}
    assert {p["project_id"] for p in ports} == {""}
    ips = [p["fixed_ips"][0]["ip_address"] for p in ports]
    assert len(set(ips)) == 3 and all(netaddr.IPAddress(ip) in netaddr.IPNetwork(sub["cidr"]) for ip in ips)

    # the project sees neither the HA network nor its ports, nor the ha attribute
    tenant = api.as_("tenant-a", "member")
    assert tenant.get("/v2.0/networks").json()["networks"] == []
    assert tenant.get("/v2.0/ports").json()["ports"] == []
    assert "ha" not in tenant.get(f"/v2.0/routers/{rid}").json()["router"]

    # each hosting agent's view carries the VRID and its own HA port
    seen = {}
    for host in states:
        (router,) = l3_view(client, host).routers
        assert router.ha is not None and router.ha.state == "standby"
        seen[host] = (router.ha.vr_id, router.ha.interface.id)
        assert router.ha.interface.addresses[0].endswith("/18")
    assert len({vrid for vrid, _ in seen.values()}) == 1
    assert {port for _, port in seen.values()} == {p["id"] for p in ports}
    (spare,) = {"net1", "net2", "net3", "net4"} - set(states)
    assert l3_view(client, spare).routers == []


def test_reported_transitions_show_per_agent_and_the_ports_follow_the_active_host(client: SyncClient,
                                                                                  api: Api) -> None:
    for host in ("net1", "net2"):
        l3_agent(client, host)
    tenant = api.as_("tenant-a", "member")
    rid = make_ha(client, "tenant-a")
    net = tenant.network()
    sub = tenant.subnet(net["id"], "10.0.0.0/24")
    r = tenant.put(f"/v2.0/routers/{rid}/add_router_interface", json={"subnet_id": sub["id"]})
    assert r.status_code == 200, r.text
    port_id = r.json()["port_id"]

    report_states(client, "net2", {rid: "active"})
    assert hosting(api, rid) == {"net1": "standby", "net2": "active"}
    assert api.get(f"/v2.0/ports/{port_id}").json()["port"]["binding:host_id"] == "net2"
    (router,) = l3_view(client, "net2").routers
    assert router.ha is not None and router.ha.state == "active"

    # the other host takes over (net2 died, so it cannot say it went standby)
    report_states(client, "net1", {rid: "active"})
    assert hosting(api, rid) == {"net1": "active", "net2": "standby"}
    assert api.get(f"/v2.0/ports/{port_id}").json()["port"]["binding:host_id"] == "net1"
    report_states(client, "net1", {rid: "bogus", "no-such-router": "active"})  # ignored
    assert hosting(api, rid) == {"net1": "active", "net2": "standby"}

    # both hosts plug the interface (the standby keeps it down); L2 population points at the active one
    for host in ("net1", "net2"):
        view = decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest(host, LB))))
        assert port_id in {p.id for p in view.ports}, host
    lb_agent(client, "compute1")
    vm = api.port(net["id"], **{"binding:host_id": "compute1"})
    compute = decode(L2View, client.app.transport.call("get_l2_view", encode(ViewRequest("compute1", LB))))
    assert {p.id for p in compute.ports} == {vm["id"]}
    (network,) = compute.networks
    router_mac = api.get(f"/v2.0/ports/{port_id}").json()["port"]["mac_address"]
    assert [r.vtep for r in network.remote_ports if r.mac == router_mac] == [VTEPS["net1"]]  # the active host


def test_when_the_active_instance_gives_the_router_up_its_hosts_hear_of_it(client: SyncClient, api: Api) -> None:
    """Two masters meeting after a partition: the one that yields says standby, and the one that stayed
    active, which the server may have marked standby meanwhile, is asked (a router hint) to say so."""
    for host in ("net1", "net2"):
        l3_agent(client, host)
    rid = make_ha(client, "tenant-a")
    report_states(client, "net1", {rid: "active"})
    report_states(client, "net2", {rid: "active"})  # both active; the server believes the latest
    seen: list[tuple[str, str]] = []
    stop = client.app.transport.listen(lambda msg: seen.append((msg["kind"], msg["id"])))
    try:
        report_states(client, "net1", {rid: "standby"})  # already standby here: nothing to say
        assert ("router", rid) not in seen
        report_states(client, "net2", {rid: "standby"})  # the active one gives it up
    finally:
        stop()
    assert ("router", rid) in seen
    assert hosting(api, rid) == {"net1": "standby", "net2": "standby"}
    report_states(client, "net1", {rid: "active"})  # what net1's agent answers to the hint
    assert hosting(api, rid) == {"net1": "active", "net2": "standby"}


def test_routers_of_a_project_share_its_ha_network_with_their_own_vrids(client: SyncClient, api: Api) -> None:
    for host in ("net1", "net2"):
        l3_agent(client, host)
    r1, r2 = make_ha(client, "tenant-a", "r1"), make_ha(client, "tenant-a", "r2")
    other = make_ha(client, "tenant-b")
    vrid = {}
    for rid in (r1, r2, other):
        (router,) = [x for x in l3_view(client, "net1").routers if x.id == rid]
        assert router.ha is not None
        vrid[rid] = (router.ha.vr_id, router.ha.interface.network_id)
    assert vrid[r1][1] == vrid[r2][1] != vrid[other][1]  # one HA network per project
    assert vrid[r1][0] != vrid[r2][0]
    nets = api.get("/v2.0/networks", params={"name": ["HA network tenant tenant-a", "HA network tenant tenant-b"]})
    assert len(nets.json()["networks"]) == 2

    # the HA network goes with the project's last HA router
    tenant = api.as_("tenant-a", "member")
    assert tenant.delete(f"/v2.0/routers/{r1}").status_code == 204
    assert len(api.get("/v2.0/networks", params={"name": "HA network tenant tenant-a"}).json()["networks"]) == 1
    assert tenant.delete(f"/v2.0/routers/{r2}").status_code == 204
    assert api.get("/v2.0/networks", params={"name": "HA network tenant tenant-a"}).json()["networks"] == []
    assert ha_ports(api, r1) == [] and ha_ports(api, r2) == []
    assert len(hosting(api, other)) == 2


def test_the_vrids_run_out_with_a_clear_409(client: SyncClient, api: Api) -> None:
    l3_agent(client, "net1")
    make_ha(client, "tenant-a")
    s = client.app.services
    network_id = s.db.write(lambda conn: HaRouters.network_of(conn, "tenant-a"))
    s.db.write(lambda conn: conn.execute(insert(m.ha_router_vrid_allocations), [
        {"network_id": network_id, "vr_id": v} for v in range(2, 255)]))
    r = Api(client, "tenant-a", "admin").post("/v2.0/routers", json={"router": {"name": "one-too-many", "ha": True}})
    assert_fault(r, 409, "NoVRIDAvailable")
    assert "254" in r.json()["NeutronError"]["message"]
    tenant = api.as_("tenant-a", "member")
    assert len(tenant.get("/v2.0/routers").json()["routers"]) == 1  # nothing half-made


def test_converting_needs_the_router_down_and_reschedules_it(client: SyncClient, api: Api) -> None:
    for host in ("net1", "net2", "net3"):
        l3_agent(client, host)
    tenant = api.as_("tenant-a", "member")
    rid = tenant.create("routers", name="legacy")["id"]
    assert list(hosting(api, rid).values()) == [None]  # one agent, no VRRP state
    r = set_ha(api, rid, True, admin_state_up=True)
    assert_fault(r, 400, "BadRequest")
    assert "admin_state_up to False" in r.json()["NeutronError"]["message"]
    assert api.get(f"/v2.0/routers/{rid}").json()["router"]["ha"] is False
    assert_fault(set_ha(tenant, rid, True), 403)  # ha is the admin's

    r = set_ha(api, rid, True)
    assert r.status_code == 200, r.text
    assert r.json()["router"]["ha"] is True
    states = hosting(api, rid)
    assert len(states) == 3 and set(states.values()) == {"standby"}
    assert len(ha_ports(api, rid)) == 3
    assert api.get(f"/v2.0/routers/{rid}").json()["router"]["admin_state_up"] is False

    assert set_ha(api, rid, False).status_code == 200
    assert list(hosting(api, rid).values()) == [None]
    assert ha_ports(api, rid) == []
    assert api.get("/v2.0/networks", params={"name": "HA network tenant tenant-a"}).json()["networks"] == []


def test_an_ha_router_on_one_agent_gets_a_second_when_one_comes_up(client: SyncClient, api: Api) -> None:
    l3_agent(client, "net1")
    rid = make_ha(client, "tenant-a")
    assert list(hosting(api, rid)) == ["net1"]
    l3_agent(client, "net2")  # its first state report schedules what wants more agents
    assert sorted(hosting(api, rid)) == ["net1", "net2"]
    assert len(ha_ports(api, rid)) == 2


def test_agents_can_be_added_and_removed_by_hand(client: SyncClient, api: Api) -> None:
    ids = {host: l3_agent(client, host) for host in ("net1", "net2", "net3", "net4")}
    rid = make_ha(client, "tenant-a")
    (spare,) = set(ids) - set(hosting(api, rid))
    r = api.post(f"/v2.0/agents/{ids[spare]}/l3-routers", json={"router_id": rid})
    assert r.status_code == 201, r.text
    assert len(hosting(api, rid)) == 4 and len(ha_ports(api, rid)) == 4
    assert_fault(api.post(f"/v2.0/agents/{ids[spare]}/l3-routers", json={"router_id": rid}), 409,
                 "RouterHostedByL3Agent")
    assert api.delete(f"/v2.0/agents/{ids[spare]}/l3-routers/{rid}").status_code == 204
    assert spare not in hosting(api, rid)
    assert spare not in {p["binding:host_id"] for p in ha_ports(api, rid)}


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                pytest.param("mysql", marks=pytest.mark.mysql)])
def test_concurrent_ha_routers_never_share_a_vrid_or_an_ha_network(db: str, tmp_path: Path) -> None:
    with servers.temporary_database(db, tmp_path) as url, \
            make_client(url, tmp_path, sections={"quotas": {"router": -1}}) as client:
        for host in ("net1", "net2"):
            l3_agent(client, host)
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: make_ha(client, "tenant-a", f"r{i}"), range(16)))
        api = Api(client, "admin-project", "admin")
        nets = api.get("/v2.0/networks", params={"name": "HA network tenant tenant-a"}).json()["networks"]
        assert len(nets) == 1
        vrids = []
        for router in l3_view(client, "net1").routers:
            assert router.ha is not None and router.ha.interface.network_id == nets[0]["id"]
            vrids.append(router.ha.vr_id)
        assert len(vrids) == 16 and len(set(vrids)) == 16
        assert all(len(hosting(api, rid)) == 2 for rid in ids)


def test_the_ha_attribute_is_the_admins_and_its_default_comes_from_the_configuration(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, sections={"l3": {"ha": True}}) as client:
        api = Api(client, "admin-project", "admin")
        assert "l3-ha" in {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
        tenant = api.as_("tenant-a", "member")
        router = tenant.create("routers", name="default-ha")
        assert "ha" not in router
        assert api.get(f"/v2.0/routers/{router['id']}").json()["router"]["ha"] is True
        assert_fault(tenant.post("/v2.0/routers", json={"router": {"name": "x", "ha": False}}), 403)
        legacy = api.post("/v2.0/routers", json={"router": {"name": "legacy", "ha": False}})
        assert legacy.status_code == 201 and legacy.json()["router"]["ha"] is False
        assert_fault(api.post("/v2.0/routers", json={"router": {"name": "x", "ha": "maybe"}}), 400)
