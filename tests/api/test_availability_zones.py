"""Availability zones (availability_zone, availability_zone_filter, network_availability_zone,
router_availability_zone, agent_sort_key): zones come from the agents' state reports, networks and routers
take hints, and DHCP and L3 scheduling honour them. Agents are played through the in-process RPC transport."""

from __future__ import annotations

from typing import Any

from fermion.rpc.contracts import StateReport, encode
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

DHCP = "DHCP agent"
L3 = "L3 agent"
LB = "Linux bridge agent"
BINARIES = {DHCP: ("neutron-dhcp-agent", "dhcp_agent"), L3: ("neutron-l3-agent", "l3_agent"),
            LB: ("neutron-linuxbridge-agent", "N/A")}


def report(client: SyncClient, host: str, agent_type: str, zone: str) -> str:
    binary, topic = BINARIES[agent_type]
    msg = StateReport(host=host, agent_type=agent_type, binary=binary, topic=topic, start_flag=True,
                      availability_zone=zone)
    return str(client.app.transport.call("report_state", encode(msg))["agent_id"])


def zones(api: Api, query: str = "") -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/availability_zones{query}")
    assert r.status_code == 200, r.text
    return sorted(r.json()["availability_zones"], key=lambda z: (z["name"], z.get("resource", "")))


def two_zones(client: SyncClient) -> dict[str, str]:
    """network hosts n1 (az1) and n2 (az2), each with a DHCP and an L3 agent; a compute host in az3."""
    ids = {}
    for host, zone in (("n1", "az1"), ("n2", "az2")):
        ids[f"dhcp-{host}"] = report(client, host, DHCP, zone)
        ids[f"l3-{host}"] = report(client, host, L3, zone)
    ids["lb-c1"] = report(client, "c1", LB, "az3")
    return ids


def test_zones_are_what_the_agents_report_per_resource(client: SyncClient, api: Api) -> None:
    assert zones(api) == []
    ids = two_zones(client)
    assert zones(api) == [
        {"name": "az1", "resource": "network", "state": "available"},
        {"name": "az1", "resource": "router", "state": "available"},
        {"name": "az2", "resource": "network", "state": "available"},
        {"name": "az2", "resource": "router", "state": "available"},
    ]  # az3 has only an L2 agent: it hosts neither networks nor routers
    assert api.put(f"/v2.0/agents/{ids['dhcp-n2']}", json={"agent": {"admin_state_up": False}}).status_code == 200
    assert {(z["name"], z["resource"]): z["state"] for z in zones(api)}[("az2", "network")] == "unavailable"
    # the agent moved to another zone: its report says so
    report(client, "n1", L3, "az9")
    assert ("az9", "router") in {(z["name"], z["resource"]) for z in zones(api)}
    agent = api.get(f"/v2.0/agents/{ids['l3-n1']}").json()["agent"]
    assert agent["availability_zone"] == "az9"


def test_zone_filters_and_fields(client: SyncClient, api: Api) -> None:
    two_zones(client)
    assert [z["name"] for z in zones(api, "?resource=router")] == ["az1", "az2"]
    assert zones(api, "?name=az2&resource=network") == [{"name": "az2", "resource": "network",
                                                         "state": "available"}]
    assert zones(api, "?state=unavailable") == []
    assert zones(api, "?name=az1&fields=name") == [{"name": "az1"}, {"name": "az1"}]
    assert_fault(api.get("/v2.0/availability_zones?host=n1"), 400)
    assert api.post("/v2.0/availability_zones", json={}).status_code == 405


def test_any_project_reads_the_zones(client: SyncClient, api: Api) -> None:
    two_zones(client)
    assert len(zones(api.as_("p1", "member"))) == 4
    assert len(zones(api.as_("p1", "reader"))) == 4


def test_network_hints_choose_the_dhcp_agent(client: SyncClient, api: Api) -> None:
    ids = two_zones(client)
    user = api.as_("p1")
    for zone, agent in (("az2", ids["dhcp-n2"]), ("az1", ids["dhcp-n1"])):
        net = user.network(availability_zone_hints=[zone])
        assert net["availability_zone_hints"] == [zone]
        assert net["availability_zones"] == []  # nothing hosts it before it has a subnet
        user.subnet(net["id"], "10.0.0.0/24")
        r = api.get(f"/v2.0/networks/{net['id']}/dhcp-agents")
        assert [a["id"] for a in r.json()["agents"]] == [agent]
        shown = user.get(f"/v2.0/networks/{net['id']}").json()["network"]
        assert shown["availability_zones"] == [zone]
        assert shown["availability_zone_hints"] == [zone]
    plain = user.network()
    assert plain["availability_zone_hints"] == []


def test_no_agent_in_the_hinted_zone_schedules_nothing(client: SyncClient, api: Api) -> None:
    ids = two_zones(client)
    api.put(f"/v2.0/agents/{ids['dhcp-n2']}", json={"agent": {"admin_state_up": False}})
    user = api.as_("p1")
    net = user.network(availability_zone_hints=["az2"])  # the zone exists, its only agent is disabled
    user.subnet(net["id"], "10.0.0.0/24")
    assert api.get(f"/v2.0/networks/{net['id']}/dhcp-agents").json()["agents"] == []


def test_unknown_zone_hints_are_refused(client: SyncClient, api: Api) -> None:
    two_zones(client)
    user = api.as_("p1")
    r = user.post("/v2.0/networks", json={"network": {"availability_zone_hints": ["nowhere"]}})
    assert_fault(r, 404, "AvailabilityZoneNotFound")
    assert "nowhere" in r.json()["NeutronError"]["message"]
    # az3 has no DHCP agent: not a zone for networks
    assert_fault(user.post("/v2.0/networks", json={"network": {"availability_zone_hints": ["az3"]}}), 404,
                 "AvailabilityZoneNotFound")
    assert_fault(user.post("/v2.0/routers", json={"router": {"availability_zone_hints": ["az3"]}}), 404,
                 "AvailabilityZoneNotFound")
    assert_fault(user.post("/v2.0/networks", json={"network": {"availability_zone_hints": "az1"}}), 400)
    assert_fault(user.post("/v2.0/networks", json={"network": {"availability_zone_hints": ["az1", "az1"]}}),
                 400)
    many = [f"zone-{i:03d}-{'x' * 20}" for i in range(12)]
    assert_fault(user.post("/v2.0/networks", json={"network": {"availability_zone_hints": many}}), 400,
                 "InvalidInput")
    net = user.network()
    assert_fault(user.put(f"/v2.0/networks/{net['id']}", json={"network": {"availability_zone_hints": ["az1"]}}),
                 400)
    assert user.get("/v2.0/networks").json()["networks"] == [net]  # nothing half-written


def test_router_hints_choose_the_l3_agent(client: SyncClient, api: Api) -> None:
    ids = two_zones(client)
    user = api.as_("p1")
    router = user.create("routers", name="r", availability_zone_hints=["az2"])
    assert router["availability_zone_hints"] == ["az2"]
    assert router["availability_zones"] == ["az2"]
    r = api.get(f"/v2.0/routers/{router['id']}/l3-agents")
    assert [a["id"] for a in r.json()["agents"]] == [ids["l3-n2"]]
    both = user.create("routers", name="r2", availability_zone_hints=["az1", "az2"])
    assert both["availability_zones"][0] in ("az1", "az2")
    plain = user.create("routers", name="r3")
    assert plain["availability_zone_hints"] == []


def test_agents_sort_by_their_attributes(client: SyncClient, api: Api) -> None:
    two_zones(client)
    r = api.get("/v2.0/agents?sort_key=availability_zone&sort_dir=desc&sort_key=host&sort_dir=asc")
    assert r.status_code == 200, r.text
    listed = [(a["availability_zone"], a["host"], a["agent_type"]) for a in r.json()["agents"]]
    assert [(z, h) for z, h, _ in listed] == [("az3", "c1"), ("az2", "n2"), ("az2", "n2"), ("az1", "n1"),
                                              ("az1", "n1")]
    r = api.get("/v2.0/agents?sort_key=host&sort_dir=desc")
    assert [a["host"] for a in r.json()["agents"]][0] == "n2"
    assert_fault(api.get("/v2.0/agents?sort_key=configurations"), 400)
    assert_fault(api.get("/v2.0/agents?sort_key=host&sort_dir=sideways"), 400)


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"availability_zone", "availability_zone_filter", "network_availability_zone",
            "router_availability_zone", "agent_sort_key"} <= aliases
