"""The agent extension (/v2.0/agents) and DHCP scheduling (dhcp_agent_scheduler), with agents played by the
test through the in-process RPC transport, as a real agent would call the server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import netaddr
import pytest
from sqlalchemy import update

from fermion.db import models as m
from fermion.rpc.contracts import DhcpView, StateReport, ViewRequest, decode, encode
from fermion.services.common import now
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

LB = "Linux bridge agent"
DHCP = "DHCP agent"
LB_CONF = {"tunneling_ip": "198.18.0.11", "tunnel_types": ["vxlan"], "interface_mappings": {"physnet1": "eth1"}}
BINARIES = {LB: ("neutron-linuxbridge-agent", "N/A"), DHCP: ("neutron-dhcp-agent", "dhcp_agent")}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
AGENT_KEYS = {"id", "agent_type", "binary", "topic", "host", "admin_state_up", "description", "configurations",
              "availability_zone", "created_at", "started_at", "heartbeat_timestamp", "alive"}


# ---------------------------------------------------------------- helpers: playing the agents
def report(client: SyncClient, host: str, agent_type: str = LB, configurations: dict[str, Any] | None = None,
           start_flag: bool = True) -> str:
    """A state report as the agent sends it; returns the agent id the server answers with."""
    if configurations is None:
        configurations = dict(LB_CONF) if agent_type == LB else {"dhcp_driver": "dnsmasq"}
    binary, topic = BINARIES[agent_type]
    msg = StateReport(host=host, agent_type=agent_type, binary=binary, topic=topic,
                      configurations=configurations, start_flag=start_flag)
    reply = client.app.transport.call("report_state", encode(msg))
    return str(reply["agent_id"])


def dhcp_view(client: SyncClient, host: str, network_ids: list[str] | None = None) -> DhcpView:
    reply = client.app.transport.call("get_dhcp_view", encode(ViewRequest(host, DHCP, network_ids)))
    return decode(DhcpView, reply)


def age_heartbeat(client: SyncClient, agent_id: str, seconds: int = 3600) -> None:
    """The agent stopped reporting long ago (no sleeping: move its last heartbeat into the past)."""
    old = now() - timedelta(seconds=seconds)
    client.app.services.db.write(lambda conn: conn.execute(
        update(m.agents).where(m.agents.c.id == agent_id).values(heartbeat_timestamp=old)))


def agents(api: Api, query: str = "") -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/agents{query}")
    assert r.status_code == 200, r.text
    return list(r.json()["agents"])


def dhcp_agent_ids(api: Api, network_id: str) -> list[str]:
    r = api.get(f"/v2.0/networks/{network_id}/dhcp-agents")
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()["agents"]]


def dhcp_network_ids(api: Api, agent_id: str) -> list[str]:
    r = api.get(f"/v2.0/agents/{agent_id}/dhcp-networks")
    assert r.status_code == 200, r.text
    return [n["id"] for n in r.json()["networks"]]


def dhcp_ports(api: Api, network_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/v2.0/ports?network_id={network_id}&device_owner=network:dhcp")
    assert r.status_code == 200, r.text
    return list(r.json()["ports"])


# ---------------------------------------------------------------- registration and the resource
def test_state_report_registers_the_agent(client: SyncClient, api: Api) -> None:
    assert agents(api) == []
    agent_id = report(client, "compute-1")
    (agent,) = agents(api)
    assert AGENT_KEYS <= set(agent)
    assert agent["id"] == agent_id
    assert agent["agent_type"] == LB
    assert agent["binary"] == "neutron-linuxbridge-agent"
    assert agent["topic"] == "N/A"
    assert agent["host"] == "compute-1"
    assert agent["configurations"] == LB_CONF
    assert agent["alive"] is True
    assert agent["admin_state_up"] is True
    assert agent["description"] == ""
    for key in ("heartbeat_timestamp", "created_at", "started_at"):
        assert TIMESTAMP.match(agent[key]), (key, agent[key])

    r = api.get(f"/v2.0/agents/{agent_id}")
    assert r.status_code == 200, r.text
    shown = r.json()["agent"]
    assert {k: v for k, v in shown.items() if k != "heartbeat_timestamp"} == \
        {k: v for k, v in agent.items() if k != "heartbeat_timestamp"}


def test_heartbeats_update_one_agent_per_type_and_host(client: SyncClient, api: Api) -> None:
    first = report(client, "compute-1")
    changed = {**LB_CONF, "tunneling_ip": "198.18.0.99"}
    again = report(client, "compute-1", configurations=changed, start_flag=False)
    assert again == first
    dhcp = report(client, "compute-1", DHCP)
    assert dhcp != first
    listed = agents(api)
    assert sorted(a["agent_type"] for a in listed) == [DHCP, LB]
    lb = next(a for a in listed if a["agent_type"] == LB)
    assert lb["configurations"] == changed


def test_filters(client: SyncClient, api: Api) -> None:
    a1 = report(client, "host-a")
    b1 = report(client, "host-b", configurations={**LB_CONF, "tunneling_ip": "198.18.0.12"})
    a2 = report(client, "host-a", DHCP)
    assert {a["id"] for a in agents(api, "?host=host-a")} == {a1, a2}
    assert {a["id"] for a in agents(api, "?agent_type=DHCP%20agent")} == {a2}
    assert {a["id"] for a in agents(api, "?agent_type=Linux%20bridge%20agent")} == {a1, b1}
    assert {a["id"] for a in agents(api, "?host=host-a&agent_type=Linux%20bridge%20agent")} == {a1}
    assert {a["id"] for a in agents(api, "?host=host-a&host=host-b")} == {a1, b1, a2}
    assert {a["id"] for a in agents(api, "?alive=true")} == {a1, b1, a2}
    assert agents(api, "?alive=false") == []
    assert agents(api, "?host=nowhere") == []
    assert {a["id"] for a in agents(api, "?binary=neutron-dhcp-agent")} == {a2}
    assert_fault(api.get("/v2.0/agents?alive=maybe"), 400)
    assert_fault(api.get("/v2.0/agents?no_such_attribute=1"), 400)


def test_fields(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "compute-1")
    (item,) = agents(api, "?fields=id&fields=host")
    assert item == {"id": agent_id, "host": "compute-1"}
    (item,) = agents(api, "?fields=alive")
    assert item == {"alive": True}
    r = api.get(f"/v2.0/agents/{agent_id}?fields=agent_type&fields=configurations")
    assert r.status_code == 200, r.text
    assert r.json()["agent"] == {"agent_type": LB, "configurations": LB_CONF}


def test_update_admin_state_and_description(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "compute-1")
    r = api.put(f"/v2.0/agents/{agent_id}", json={"agent": {"admin_state_up": False, "description": "rack 4"}})
    assert r.status_code == 200, r.text
    body = r.json()["agent"]
    assert body["admin_state_up"] is False and body["description"] == "rack 4"
    shown = api.get(f"/v2.0/agents/{agent_id}").json()["agent"]
    assert shown["admin_state_up"] is False and shown["description"] == "rack 4"
    # a heartbeat does not turn the agent back on: admin_state_up is the operator's
    report(client, "compute-1", start_flag=False)
    assert api.get(f"/v2.0/agents/{agent_id}").json()["agent"]["admin_state_up"] is False
    assert agents(api, "?admin_state_up=false")[0]["id"] == agent_id
    assert agents(api, "?admin_state_up=true") == []
    r = api.put(f"/v2.0/agents/{agent_id}", json={"agent": {"admin_state_up": True}})
    assert r.status_code == 200 and r.json()["agent"]["admin_state_up"] is True


@pytest.mark.parametrize("change", [{"host": "elsewhere"}, {"agent_type": DHCP}, {"alive": False},
                                    {"configurations": {}}, {"heartbeat_timestamp": "2000-01-01 00:00:00"},
                                    {"id": "5b7a8e1c-7a8e-4f7d-9c5e-1d2a3b4c5d6e"}])
def test_update_of_a_read_only_attribute_is_refused(client: SyncClient, api: Api, change: dict[str, Any]) -> None:
    agent_id = report(client, "compute-1")
    before = api.get(f"/v2.0/agents/{agent_id}").json()["agent"]
    assert_fault(api.put(f"/v2.0/agents/{agent_id}", json={"agent": change}), 400)
    after = api.get(f"/v2.0/agents/{agent_id}").json()["agent"]
    assert {k: after[k] for k in ("host", "agent_type", "configurations", "id")} == \
        {k: before[k] for k in ("host", "agent_type", "configurations", "id")}


def test_update_rejects_bad_values_and_bodies(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "compute-1")
    assert_fault(api.put(f"/v2.0/agents/{agent_id}", json={"agent": {"admin_state_up": "sometimes"}}), 400)
    assert_fault(api.put(f"/v2.0/agents/{agent_id}", json={"agent": {"description": "x" * 256}}), 400)
    assert_fault(api.put(f"/v2.0/agents/{agent_id}", json={"admin_state_up": False}), 400)
    missing = "0d3a7a56-2c4e-4c2b-9f3e-6f1b2a3c4d5e"
    assert_fault(api.put(f"/v2.0/agents/{missing}", json={"agent": {"description": "x"}}), 404, "AgentNotFound")


def test_delete_then_not_found(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "compute-1")
    r = api.delete(f"/v2.0/agents/{agent_id}")
    assert r.status_code == 204, r.text
    assert_fault(api.get(f"/v2.0/agents/{agent_id}"), 404, "AgentNotFound")
    assert_fault(api.delete(f"/v2.0/agents/{agent_id}"), 404, "AgentNotFound")
    assert agents(api) == []
    # the agent is still running: its next heartbeat registers it again, as a new agent
    again = report(client, "compute-1", start_flag=False)
    assert again != agent_id
    assert [a["id"] for a in agents(api)] == [again]


@pytest.mark.parametrize("role", ["member", "reader"])
def test_agents_are_admin_only(client: SyncClient, api: Api, role: str) -> None:
    agent_id = report(client, "compute-1", DHCP)
    net = api.network(name="n")
    user = api.as_("project-1", role)
    # as Neutron: the list holds what the policy lets one see (nothing), and an agent one may not see
    # does not exist for reading, updating or deleting
    r = user.get("/v2.0/agents")
    assert r.status_code == 200 and r.json() == {"agents": []}, r.text
    assert_fault(user.get(f"/v2.0/agents/{agent_id}"), 404, "HTTPNotFound")
    assert_fault(user.put(f"/v2.0/agents/{agent_id}", json={"agent": {"description": "x"}}), 404)
    assert_fault(user.delete(f"/v2.0/agents/{agent_id}"), 404)
    assert_fault(user.get(f"/v2.0/agents/{agent_id}/dhcp-networks"), 403)
    assert_fault(user.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={"network_id": net["id"]}), 403)
    assert_fault(user.get(f"/v2.0/networks/{net['id']}/dhcp-agents"), 403)
    # nothing changed
    assert [a["id"] for a in agents(api)] == [agent_id]


def test_extensions_are_listed(api: Api) -> None:
    r = api.get("/v2.0/extensions")
    assert r.status_code == 200, r.text
    aliases = {e["alias"] for e in r.json()["extensions"]}
    assert {"agent", "dhcp_agent_scheduler"} <= aliases
    for alias in ("agent", "dhcp_agent_scheduler"):
        r = api.get(f"/v2.0/extensions/{alias}")
        assert r.status_code == 200, r.text
        assert r.json()["extension"]["alias"] == alias


# ---------------------------------------------------------------- liveness
def test_agent_is_dead_after_agent_down_time(client: SyncClient, api: Api) -> None:
    alive_id = report(client, "compute-1")
    dead_id = report(client, "compute-2", configurations={**LB_CONF, "tunneling_ip": "198.18.0.12"})
    age_heartbeat(client, dead_id, seconds=120)  # agent_down_time is 30 s by default
    assert api.get(f"/v2.0/agents/{dead_id}").json()["agent"]["alive"] is False
    assert api.get(f"/v2.0/agents/{alive_id}").json()["agent"]["alive"] is True
    assert [a["id"] for a in agents(api, "?alive=false")] == [dead_id]
    assert [a["id"] for a in agents(api, "?alive=true")] == [alive_id]
    # it reports again: alive again
    report(client, "compute-2", configurations={**LB_CONF, "tunneling_ip": "198.18.0.12"}, start_flag=False)
    assert api.get(f"/v2.0/agents/{dead_id}").json()["agent"]["alive"] is True


def test_agent_within_agent_down_time_is_alive(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "compute-1")
    age_heartbeat(client, agent_id, seconds=10)
    assert api.get(f"/v2.0/agents/{agent_id}").json()["agent"]["alive"] is True


@pytest.fixture
def quick_death(tmp_path: Path) -> Iterator[SyncClient]:
    """A server whose agents are declared dead after half a second without a heartbeat."""
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, sections={"agents": {"agent_down_time": 0.5}}) as c:
        yield c


def test_agent_down_time_comes_from_the_settings(quick_death: SyncClient) -> None:
    api = Api(quick_death, "admin-project", "admin")
    agent_id = report(quick_death, "compute-1")
    time.sleep(1.2)  # heartbeats are stored to the second: more than a second is surely past 0.5 s
    assert api.get(f"/v2.0/agents/{agent_id}").json()["agent"]["alive"] is False
    assert [a["id"] for a in agents(api, "?alive=false")] == [agent_id]


# ---------------------------------------------------------------- DHCP scheduling
def test_subnet_with_dhcp_schedules_its_network_on_a_live_dhcp_agent(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    net = api.network(name="n")
    assert dhcp_agent_ids(api, net["id"]) == []  # no subnet yet: nothing to serve
    api.subnet(net["id"])
    assert dhcp_agent_ids(api, net["id"]) == [agent_id]
    assert dhcp_network_ids(api, agent_id) == [net["id"]]
    (shown,) = api.get(f"/v2.0/networks/{net['id']}/dhcp-agents").json()["agents"]
    assert shown["host"] == "net-1" and shown["agent_type"] == DHCP and shown["alive"] is True
    (hosted,) = api.get(f"/v2.0/agents/{agent_id}/dhcp-networks").json()["networks"]
    assert hosted["name"] == "n"


def test_remove_and_add_a_network_by_hand(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    net = api.network(name="n")
    api.subnet(net["id"])
    assert dhcp_network_ids(api, agent_id) == [net["id"]]
    dhcp_view(client, "net-1")  # the agent serves it: its DHCP port exists
    assert len(dhcp_ports(api, net["id"])) == 1

    r = api.delete(f"/v2.0/agents/{agent_id}/dhcp-networks/{net['id']}")
    assert r.status_code == 204, r.text
    assert dhcp_network_ids(api, agent_id) == []
    assert dhcp_agent_ids(api, net["id"]) == []
    assert dhcp_ports(api, net["id"]) == []  # the agent's DHCP port went with it
    assert dhcp_view(client, "net-1").networks == []
    assert_fault(api.delete(f"/v2.0/agents/{agent_id}/dhcp-networks/{net['id']}"), 409,
                 "NetworkNotHostedByDhcpAgent")

    r = api.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={"network_id": net["id"]})
    assert r.status_code == 201, r.text
    assert r.json() is None  # Neutron's body: JSON null
    assert dhcp_network_ids(api, agent_id) == [net["id"]]
    assert dhcp_agent_ids(api, net["id"]) == [agent_id]
    assert_fault(api.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={"network_id": net["id"]}), 409,
                 "NetworkHostedByDHCPAgent")
    assert dhcp_network_ids(api, agent_id) == [net["id"]]


def test_adding_a_network_to_a_non_dhcp_agent_is_refused(client: SyncClient, api: Api) -> None:
    l2 = report(client, "compute-1")
    net = api.network(name="n")
    assert_fault(api.post(f"/v2.0/agents/{l2}/dhcp-networks", json={"network_id": net["id"]}), 400,
                 "InvalidDHCPAgent")
    assert dhcp_agent_ids(api, net["id"]) == []


def test_adding_a_network_to_a_disabled_dhcp_agent_is_refused(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    api.put(f"/v2.0/agents/{agent_id}", json={"agent": {"admin_state_up": False}})
    net = api.network(name="n")
    assert_fault(api.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={"network_id": net["id"]}), 400,
                 "InvalidDHCPAgent")


def test_dhcp_scheduling_errors(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    missing = "7c0e3b8a-1d2f-4e5a-9b6c-0d1e2f3a4b5c"
    assert_fault(api.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={"network_id": missing}), 404,
                 "NetworkNotFound")
    assert_fault(api.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={"network_id": "not-a-uuid"}), 400)
    assert_fault(api.post(f"/v2.0/agents/{agent_id}/dhcp-networks", json={}), 400)
    assert_fault(api.get(f"/v2.0/agents/{missing}/dhcp-networks"), 404, "AgentNotFound")
    assert_fault(api.post(f"/v2.0/agents/{missing}/dhcp-networks", json={"network_id": missing}), 404,
                 "AgentNotFound")
    assert_fault(api.get(f"/v2.0/networks/{missing}/dhcp-agents"), 404, "NetworkNotFound")


def test_network_without_dhcp_subnets_is_not_scheduled(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    net = api.network(name="no-dhcp")
    api.subnet(net["id"], enable_dhcp=False)
    assert dhcp_agent_ids(api, net["id"]) == []
    report(client, "net-1", DHCP, start_flag=False)  # a heartbeat schedules unhosted DHCP networks only
    assert dhcp_agent_ids(api, net["id"]) == []
    assert dhcp_network_ids(api, agent_id) == []


def test_network_is_not_scheduled_without_a_live_dhcp_agent(client: SyncClient, api: Api) -> None:
    dead = report(client, "net-1", DHCP)
    age_heartbeat(client, dead)
    report(client, "compute-1")  # an L2 agent does not serve DHCP
    net = api.network(name="n")
    api.subnet(net["id"])
    assert dhcp_agent_ids(api, net["id"]) == []
    assert dhcp_network_ids(api, dead) == []


def test_a_disabled_dhcp_agent_is_not_scheduled(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    api.put(f"/v2.0/agents/{agent_id}", json={"agent": {"admin_state_up": False}})
    net = api.network(name="n")
    api.subnet(net["id"])
    assert dhcp_agent_ids(api, net["id"]) == []


def test_an_unhosted_network_is_scheduled_when_a_dhcp_agent_appears(client: SyncClient, api: Api) -> None:
    net = api.network(name="n")
    api.subnet(net["id"])
    assert dhcp_agent_ids(api, net["id"]) == []
    agent_id = report(client, "net-1", DHCP)
    assert dhcp_agent_ids(api, net["id"]) == [agent_id]


def test_enabling_dhcp_on_a_subnet_schedules_the_network(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    net = api.network(name="n")
    sub = api.subnet(net["id"], enable_dhcp=False)
    assert dhcp_agent_ids(api, net["id"]) == []
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": True}})
    assert r.status_code == 200, r.text
    assert dhcp_agent_ids(api, net["id"]) == [agent_id]


def test_networks_are_spread_over_dhcp_agents(client: SyncClient, api: Api) -> None:
    a = report(client, "net-1", DHCP)
    b = report(client, "net-2", DHCP)
    nets = [api.network(name=f"n{i}") for i in range(4)]
    for net in nets:
        api.subnet(net["id"])
    hosting = [dhcp_agent_ids(api, net["id"]) for net in nets]
    assert all(len(h) == 1 for h in hosting), hosting  # dhcp_agents_per_network = 1
    assert len(dhcp_network_ids(api, a)) == 2 and len(dhcp_network_ids(api, b)) == 2


def test_deleting_a_dhcp_agent_unschedules_its_networks(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    net = api.network(name="n")
    api.subnet(net["id"])
    assert dhcp_agent_ids(api, net["id"]) == [agent_id]
    assert api.delete(f"/v2.0/agents/{agent_id}").status_code == 204
    assert dhcp_agent_ids(api, net["id"]) == []


# ---------------------------------------------------------------- the DHCP agent's view
def test_dhcp_view_creates_the_dhcp_port_once(client: SyncClient, api: Api) -> None:
    report(client, "net-1", DHCP)
    net = api.network(name="n")
    sub = api.subnet(net["id"], cidr="10.20.0.0/24")
    vm = api.port(net["id"], name="vm")
    assert dhcp_ports(api, net["id"]) == []

    view = dhcp_view(client, "net-1")
    assert view.host == "net-1" and view.partial is False
    (served,) = view.networks
    assert served.id == net["id"] and served.mtu == net["mtu"]
    (port,) = dhcp_ports(api, net["id"])
    assert port["id"] == served.port_id and port["mac_address"] == served.port_mac
    assert port["device_owner"] == "network:dhcp"
    assert port["binding:host_id"] == "net-1"
    (fixed,) = port["fixed_ips"]
    assert fixed["subnet_id"] == sub["id"]
    assert netaddr.IPAddress(fixed["ip_address"]) in netaddr.IPNetwork("10.20.0.0/24")
    assert served.port_ips == [f"{fixed['ip_address']}/24"]
    assert [s.id for s in served.subnets] == [sub["id"]]
    assert served.subnets[0].cidr == "10.20.0.0/24" and served.subnets[0].gateway_ip == sub["gateway_ip"]

    # the view lists every port of the network as a DHCP host (MAC -> IP), the DHCP port included
    ports = api.get(f"/v2.0/ports?network_id={net['id']}").json()["ports"]
    assert {p["id"] for p in ports} == {vm["id"], port["id"]}
    expected = {(p["id"], p["mac_address"], f["ip_address"], f["subnet_id"]) for p in ports for f in p["fixed_ips"]}
    assert {(h.port_id, h.mac, h.ip, h.subnet_id) for h in served.hosts} == expected

    # the second call (and a partial one) reuse the port
    again = dhcp_view(client, "net-1")
    assert again.networks[0].port_id == served.port_id
    partial = dhcp_view(client, "net-1", [net["id"]])
    assert partial.partial is True and [n.port_id for n in partial.networks] == [served.port_id]
    assert [p["id"] for p in dhcp_ports(api, net["id"])] == [port["id"]]


def test_dhcp_view_follows_ports_and_subnets(client: SyncClient, api: Api) -> None:
    report(client, "net-1", DHCP)
    net = api.network(name="n")
    sub1 = api.subnet(net["id"], cidr="10.20.0.0/24")
    first = dhcp_view(client, "net-1").networks[0]
    vm = api.port(net["id"], name="vm")
    hosts = dhcp_view(client, "net-1").networks[0].hosts
    assert vm["mac_address"] in {h.mac for h in hosts}
    # a second DHCP subnet: the DHCP port gets an address there too
    sub2 = api.subnet(net["id"], cidr="10.30.0.0/24")
    second = dhcp_view(client, "net-1").networks[0]
    assert second.port_id == first.port_id
    assert {s.id for s in second.subnets} == {sub1["id"], sub2["id"]}
    (port,) = dhcp_ports(api, net["id"])
    assert sub2["id"] in {f["subnet_id"] for f in port["fixed_ips"]}
    assert len(second.port_ips) == 2
    api.delete(f"/v2.0/ports/{vm['id']}")
    assert vm["mac_address"] not in {h.mac for h in dhcp_view(client, "net-1").networks[0].hosts}


def test_dhcp_view_serves_only_dhcp_enabled_subnets(client: SyncClient, api: Api) -> None:
    report(client, "net-1", DHCP)
    net = api.network(name="n")
    on = api.subnet(net["id"], cidr="10.20.0.0/24")
    off = api.subnet(net["id"], cidr="10.40.0.0/24", enable_dhcp=False)
    vm = api.port(net["id"], fixed_ips=[{"subnet_id": on["id"]}, {"subnet_id": off["id"]}])
    (served,) = dhcp_view(client, "net-1").networks
    assert [s.id for s in served.subnets] == [on["id"]]
    assert {h.subnet_id for h in served.hosts} == {on["id"]}
    assert vm["mac_address"] in {h.mac for h in served.hosts}
    (port,) = dhcp_ports(api, net["id"])
    assert {f["subnet_id"] for f in port["fixed_ips"]} == {on["id"]}


def test_a_network_served_by_dhcp_can_still_be_deleted(client: SyncClient, api: Api) -> None:
    agent_id = report(client, "net-1", DHCP)
    member = api.as_("project-1", "member")
    net = member.network(name="mine")
    sub = member.subnet(net["id"])
    dhcp_view(client, "net-1")
    assert len(dhcp_ports(api, net["id"])) == 1
    # the DHCP port does not keep the subnet or the network in use
    assert member.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert member.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    assert dhcp_network_ids(api, agent_id) == []
    assert dhcp_view(client, "net-1").networks == []


def test_dhcp_view_of_a_host_without_networks_is_empty(client: SyncClient, api: Api) -> None:
    report(client, "net-1", DHCP)
    net = api.network(name="n")
    api.subnet(net["id"])
    assert dhcp_view(client, "elsewhere").networks == []
    assert dhcp_ports(api, net["id"]) == []  # nobody serves the network from there: no port


@pytest.mark.parametrize("kind", [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
])
def test_concurrent_dhcp_views_create_one_dhcp_port(tmp_path: Path, kind: str) -> None:
    """An agent retrying a timed-out call, or two server workers answering it: still one DHCP port."""
    with servers.temporary_database(kind, tmp_path) as url, make_client(url, tmp_path) as client:
        api = Api(client, "admin-project", "admin")
        report(client, "net-1", DHCP)
        counts = []
        for i in range(4):
            net = api.network(name=f"n{i}")
            api.subnet(net["id"])
            with ThreadPoolExecutor(8) as pool:
                views = list(pool.map(lambda _, n=net["id"]: dhcp_view(client, "net-1", [n]), range(8)))
            answered = {v.networks[0].port_id for v in views}
            counts.append((len(dhcp_ports(api, net["id"])), len(answered)))
        assert counts == [(1, 1)] * 4, f"(DHCP ports, distinct port ids answered) per network: {counts}"
