"""DHCP on routed networks, as Neutron: a DHCP agent serves a routed network only for the segments its host
reaches (by the host's agents' reported mappings), its DHCP port has addresses only on those segments'
subnets, and dhcp_agents_per_network and zone hints hold per segment. Agents are played through the
in-process RPC transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netaddr
import pytest

from fermion.rpc.contracts import DhcpNetwork, DhcpView, StateReport, ViewRequest, decode, encode
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient

LB = "Linux bridge agent"
DHCP = "DHCP agent"


def agent(client: SyncClient, host: str, agent_type: str, zone: str = "nova", **configurations: Any) -> str:
    binary, topic = ("neutron-dhcp-agent", "dhcp_agent") if agent_type == DHCP else ("neutron-linuxbridge-agent",
                                                                                      "N/A")
    msg = StateReport(host=host, agent_type=agent_type, binary=binary, topic=topic, start_flag=True,
                      configurations=configurations, availability_zone=zone)
    return str(client.app.transport.call("report_state", encode(msg))["agent_id"])


def node(client: SyncClient, host: str, zone: str = "nova", **mappings: str) -> str:
    """A network node: an L2 agent with these physical networks, and a DHCP agent (its id returned)."""
    agent(client, host, LB, zone, interface_mappings=mappings)
    return agent(client, host, DHCP, zone)


def view(client: SyncClient, host: str) -> DhcpView:
    return decode(DhcpView, client.app.transport.call("get_dhcp_view", encode(ViewRequest(host, DHCP))))


def served(client: SyncClient, host: str, network_id: str) -> DhcpNetwork | None:
    return next((n for n in view(client, host).networks if n.id == network_id), None)


def hosting(api: Api, network_id: str) -> set[str]:
    r = api.get(f"/v2.0/networks/{network_id}/dhcp-agents")
    assert r.status_code == 200, r.text
    return {a["host"] for a in r.json()["agents"]}


def dhcp_ports(api: Api, network_id: str) -> dict[str, dict[str, Any]]:
    """The network's DHCP ports by host."""
    r = api.get(f"/v2.0/ports?network_id={network_id}&device_owner=network:dhcp")
    assert r.status_code == 200, r.text
    return {p["binding:host_id"]: p for p in r.json()["ports"]}


def subnet_ids(port: dict[str, Any]) -> set[str]:
    return {f["subnet_id"] for f in port["fixed_ips"]}


def routed(api: Api, *physnets: str, **attrs: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A network with a flat segment on each physical network, the i-th with subnet 10.<i+1>.0.0/24."""
    net = api.network(name="routed", **{"provider:network_type": "flat", "provider:physical_network": physnets[0]},
                      **attrs)
    (first,) = api.get(f"/v2.0/segments?network_id={net['id']}").json()["segments"]
    segments = [first] + [api.create("segments", network_id=net["id"], network_type="flat", physical_network=p)
                          for p in physnets[1:]]
    subnets = [api.subnet(net["id"], f"10.{i + 1}.0.0/24", segment_id=seg["id"]) for i, seg in enumerate(segments)]
    return net, subnets


@pytest.fixture
def two_per_network(tmp_path: Path) -> Iterator[SyncClient]:
    with servers.temporary_database("sqlite", tmp_path) as url, make_client(
            url, tmp_path, {"agents": {"dhcp_agents_per_network": 2}}) as c:
        yield c


def test_each_segment_is_served_from_a_host_that_reaches_it(client: SyncClient, api: Api) -> None:
    node(client, "d1", rack1="eth1")
    node(client, "d2", rack2="eth1")
    node(client, "dx", elsewhere="eth1")  # reaches no segment of the network
    net, (s1, s2) = routed(api, "rack1", "rack2")
    assert hosting(api, net["id"]) == {"d1", "d2"}  # dhcp_agents_per_network = 1, per segment
    agent(client, "c1", LB, interface_mappings={"rack1": "eth1"})
    agent(client, "c2", LB, interface_mappings={"rack2": "eth1"})
    vm1 = api.port(net["id"], **{"binding:host_id": "c1"})
    vm2 = api.port(net["id"], **{"binding:host_id": "c2"})

    for host, subnet, vm, other in (("d1", s1, vm1, vm2), ("d2", s2, vm2, vm1)):
        on = served(client, host, net["id"])
        assert on is not None
        assert [s.id for s in on.subnets] == [subnet["id"]]  # dnsmasq there is configured for its segment only
        port = dhcp_ports(api, net["id"])[host]
        (fixed,) = port["fixed_ips"]
        assert fixed["subnet_id"] == subnet["id"]
        assert netaddr.IPAddress(fixed["ip_address"]) in netaddr.IPNetwork(subnet["cidr"])
        assert on.port_id == port["id"] and on.port_ips == [f"{fixed['ip_address']}/24"]
        macs = {h.mac for h in on.hosts}
        assert vm["mac_address"] in macs and other["mac_address"] not in macs
        assert {h.subnet_id for h in on.hosts} == {subnet["id"]}
    assert view(client, "dx").networks == []
    assert set(dhcp_ports(api, net["id"])) == {"d1", "d2"}  # no DHCP port where no segment is reached


def test_a_segment_no_dhcp_agent_reaches_gets_none_until_one_does(client: SyncClient, api: Api) -> None:
    node(client, "d1", rack1="eth1")
    net, (s1, s3) = routed(api, "rack1", "rack3")
    assert hosting(api, net["id"]) == {"d1"}
    served(client, "d1", net["id"])
    assert {h: subnet_ids(p) for h, p in dhcp_ports(api, net["id"]).items()} == {"d1": {s1["id"]}}
    # a DHCP agent on a host whose L2 agent has not reported yet: it reaches nothing
    d3 = agent(client, "d3", DHCP)
    assert hosting(api, net["id"]) == {"d1"}
    assert view(client, "d3").networks == []
    # its L2 agent reports rack3: the segment gets it
    agent(client, "d3", LB, interface_mappings={"rack3": "eth1"})
    assert hosting(api, net["id"]) == {"d1", "d3"}
    assert [n["id"] for n in api.get(f"/v2.0/agents/{d3}/dhcp-networks").json()["networks"]] == [net["id"]]
    on = served(client, "d3", net["id"])
    assert on is not None and [s.id for s in on.subnets] == [s3["id"]]
    assert subnet_ids(dhcp_ports(api, net["id"])["d3"]) == {s3["id"]}


def test_dhcp_agents_per_network_and_zone_hints_hold_per_segment(two_per_network: SyncClient) -> None:
    client = two_per_network
    api = Api(client, "admin-project", "admin")
    for host, zone in (("a1", "az1"), ("a2", "az1"), ("a3", "az2")):
        node(client, host, zone, rack1="eth1", rack3="eth3")
    node(client, "b1", "az2", rack2="eth1", rack4="eth3")
    net, _ = routed(api, "rack1", "rack2")
    # rack1: two of its three agents, spread over both zones (a3 is az2's only one); rack2: its only one
    chosen = hosting(api, net["id"])
    assert len(chosen) == 3 and {"a3", "b1"} <= chosen and len(chosen & {"a1", "a2"}) == 1
    # hinted to az1: rack1 from az1's agents; rack2 has none in az1, so none serves it
    hinted, _ = routed(api, "rack3", "rack4", availability_zone_hints=["az1"])
    assert hosting(api, hinted["id"]) == {"a1", "a2"}
    assert api.get(f"/v2.0/networks/{hinted['id']}").json()["network"]["availability_zones"] == ["az1"]


def test_a_host_reaching_two_segments_serves_both(client: SyncClient, api: Api) -> None:
    node(client, "both", rack1="eth1", rack2="eth2")
    net, (s1, s2) = routed(api, "rack1", "rack2")
    assert hosting(api, net["id"]) == {"both"}
    on = served(client, "both", net["id"])
    assert on is not None and {s.id for s in on.subnets} == {s1["id"], s2["id"]}
    assert subnet_ids(dhcp_ports(api, net["id"])["both"]) == {s1["id"], s2["id"]}
    assert len(on.port_ips) == 2


def test_the_dhcp_port_follows_the_segments_its_host_reaches(any_db_url: str, tmp_path: Path) -> None:
    with make_client(any_db_url, tmp_path) as client:
        port_follows_the_host(client, Api(client, "admin-project", "admin"))


def port_follows_the_host(client: SyncClient, api: Api) -> None:
    node(client, "d1", rack1="eth1")
    net, (s1, s2) = routed(api, "rack1", "rack2")
    first = served(client, "d1", net["id"])
    assert first is not None and [s.id for s in first.subnets] == [s1["id"]]
    # the host is rewired to rack2: it serves rack2's subnet, and its DHCP port leaves rack1's
    agent(client, "d1", LB, interface_mappings={"rack2": "eth1"})
    moved = served(client, "d1", net["id"])
    assert moved is not None and [s.id for s in moved.subnets] == [s2["id"]]
    assert moved.port_id == first.port_id
    assert subnet_ids(dhcp_ports(api, net["id"])["d1"]) == {s2["id"]}
    # and to nothing of the network: it serves none of it, and its DHCP port is released
    agent(client, "d1", LB, interface_mappings={"other": "eth1"})
    assert view(client, "d1").networks == []
    assert dhcp_ports(api, net["id"]) == {}
    # a plain network beside it is not affected
    plain = api.network(name="plain")
    api.subnet(plain["id"], "10.9.0.0/24")
    assert served(client, "d1", plain["id"]) is not None
