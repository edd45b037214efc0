"""Routed networks: on a network whose subnets are on segments a port takes addresses from the segment its
host reaches (by the agents' reported interface mappings and tunnel endpoints), or none until it has a host
(ip_allocation "deferred"), as in Neutron. Agents are played through the in-process RPC transport."""

from __future__ import annotations

from typing import Any

import netaddr

from fermion.rpc.contracts import StateReport, encode
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

LB = "Linux bridge agent"


def report(client: SyncClient, host: str, **configurations: Any) -> None:
    msg = StateReport(host=host, agent_type=LB, binary="neutron-linuxbridge-agent", topic="N/A", start_flag=True,
                      configurations=configurations)
    client.app.transport.call("report_state", encode(msg))


def routed(api: Api) -> dict[str, Any]:
    """A network on two racks: a flat segment on physical network rack1 (10.1.0.0/24) and a VLAN segment on
    physnet1 (10.2.0.0/24); hosts c1 (rack1), c2 (physnet1), c9 (an agent reaching neither)."""
    net = api.network(name="routed", **{"provider:network_type": "flat", "provider:physical_network": "rack1"})
    (flat,) = api.get(f"/v2.0/segments?network_id={net['id']}").json()["segments"]
    vlan = api.create("segments", network_id=net["id"], network_type="vlan", physical_network="physnet1")
    s1 = api.subnet(net["id"], "10.1.0.0/24", segment_id=flat["id"])
    s2 = api.subnet(net["id"], "10.2.0.0/24", segment_id=vlan["id"])
    report(api.client, "c1", interface_mappings={"rack1": "eth1"})
    report(api.client, "c2", interface_mappings={"physnet1": "eth2"})
    report(api.client, "c9", interface_mappings={"other": "eth3"}, tunneling_ip="198.18.0.9", tunnel_types=["vxlan"])
    return {"net": net, "flat": flat, "vlan": vlan, "s1": s1, "s2": s2}


def addresses(port: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["subnet_id"], f["ip_address"]) for f in port["fixed_ips"]]


def in_subnet(port: dict[str, Any], subnet: dict[str, Any]) -> bool:
    return len(port["fixed_ips"]) == 1 and port["fixed_ips"][0]["subnet_id"] == subnet["id"] and (
        netaddr.IPAddress(port["fixed_ips"][0]["ip_address"]) in netaddr.IPNetwork(subnet["cidr"]))


def test_a_port_takes_addresses_from_its_hosts_segment(api: Api) -> None:
    r = routed(api)
    on_c1 = api.port(r["net"]["id"], **{"binding:host_id": "c1"})
    on_c2 = api.port(r["net"]["id"], **{"binding:host_id": "c2"})
    assert in_subnet(on_c1, r["s1"]) and in_subnet(on_c2, r["s2"])
    assert on_c1["ip_allocation"] == on_c2["ip_allocation"] == "immediate"
    shown = api.get(f"/v2.0/ports/{on_c2['id']}").json()["port"]
    assert addresses(shown) == addresses(on_c2) and shown["ip_allocation"] == "immediate"


def test_a_host_reaching_no_segment_is_a_conflict(api: Api) -> None:
    r = routed(api)
    net_id = r["net"]["id"]
    for host in ("c9", "nowhere"):  # an agent mapping other networks, and no agent at all
        err = assert_fault(api.post("/v2.0/ports", json={"port": {"network_id": net_id, "binding:host_id": host}}),
                           409, "HostNotConnectedToAnySegment")
        assert err["message"] == (f"Host {host} is not connected to any segments on routed provider network "
                                  f"'{net_id}'.  It should be connected to one.")
    assert api.get(f"/v2.0/ports?network_id={net_id}").json()["ports"] == []  # nothing half-written


def test_a_host_reaching_two_segments_is_a_conflict(api: Api) -> None:
    r = routed(api)
    report(api.client, "both", interface_mappings={"rack1": "eth1", "physnet1": "eth2"})
    assert_fault(api.post("/v2.0/ports", json={"port": {"network_id": r["net"]["id"], "binding:host_id": "both"}}),
                 409, "HostConnectedToMultipleSegments")


def test_a_bulk_mixes_hosts_and_deferred_ports(api: Api) -> None:
    r = routed(api)
    net_id = r["net"]["id"]
    resp = api.post("/v2.0/ports", json={"ports": [{"network_id": net_id, "binding:host_id": "c1"},
                                                   {"network_id": net_id},
                                                   {"network_id": net_id, "binding:host_id": "c2"}]})
    assert resp.status_code == 201, resp.text
    c1, deferred, c2 = resp.json()["ports"]
    assert in_subnet(c1, r["s1"]) and in_subnet(c2, r["s2"]) and deferred["fixed_ips"] == []
    assert [p["ip_allocation"] for p in (c1, deferred, c2)] == ["immediate", "deferred", "immediate"]
    bad = api.post("/v2.0/ports", json={"ports": [{"network_id": net_id, "binding:host_id": "c1"},
                                                  {"network_id": net_id, "binding:host_id": "c9"}]})
    assert_fault(bad, 409, "HostNotConnectedToAnySegment")
    assert len(api.get(f"/v2.0/ports?network_id={net_id}").json()["ports"]) == 3  # the bulk is all or nothing


def test_without_a_host_the_allocation_is_deferred(api: Api) -> None:
    r = routed(api)
    port = api.port(r["net"]["id"])
    assert port["fixed_ips"] == [] and port["ip_allocation"] == "deferred"
    assert api.get(f"/v2.0/ports/{port['id']}").json()["port"]["ip_allocation"] == "deferred"
    listed = api.get("/v2.0/ports?ip_allocation=deferred").json()["ports"]
    assert [p["id"] for p in listed] == [port["id"]]


def test_binding_a_deferred_port_allocates_on_the_hosts_segment(api: Api) -> None:
    r = routed(api)
    port = api.port(r["net"]["id"])
    (group,) = port["security_groups"]
    seen: list[tuple[str, str, int]] = []
    stop = api.client.app.transport.listen(lambda msg: seen.append((msg["kind"], msg["id"], msg["revision"])))
    try:
        resp = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": "c2"}})
    finally:
        stop()
    assert resp.status_code == 200, resp.text
    bound = resp.json()["port"]
    assert in_subnet(bound, r["s2"])
    assert bound["revision_number"] == port["revision_number"] + 1
    # the agents hear of the port at its new revision, and its group of a member's new address
    assert ("port", port["id"], bound["revision_number"]) in seen
    assert "security_group" in {kind for kind, ident, _ in seen if ident == group}
    assert bound["ip_allocation"] == "deferred"  # Neutron keeps what the create decided
    shown = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert addresses(shown) == addresses(bound)
    # a host reaching nothing: the port stays as it was
    other = api.port(r["net"]["id"])
    assert_fault(api.put(f"/v2.0/ports/{other['id']}", json={"port": {"binding:host_id": "c9"}}),
                 409, "HostNotConnectedToAnySegment")
    again = api.get(f"/v2.0/ports/{other['id']}").json()["port"]
    assert again["fixed_ips"] == [] and again["binding:host_id"] == ""
    assert again["revision_number"] == other["revision_number"]


def test_moving_an_addressed_port_to_another_segments_host_is_refused(api: Api) -> None:
    r = routed(api)
    port = api.port(r["net"]["id"], **{"binding:host_id": "c1"})
    err = assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": "c2"}}),
                       409, "HostNotCompatibleWithFixedIps")
    assert err["message"] == (f"Host c2 is not connected to a segment where the existing fixed_ips on port "
                              f"{port['id']} will function given the routed network topology.")
    report(api.client, "c1b", interface_mappings={"rack1": "eth7"})
    moved = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": "c1b"}})
    assert moved.status_code == 200, moved.text
    assert addresses(moved.json()["port"]) == addresses(port)


def test_fixed_ips_asked_are_taken_as_asked(api: Api) -> None:
    r = routed(api)
    port = api.port(r["net"]["id"], fixed_ips=[{"subnet_id": r["s2"]["id"]}])
    assert in_subnet(port, r["s2"]) and port["ip_allocation"] == "immediate"
    exact = api.port(r["net"]["id"], fixed_ips=[{"subnet_id": r["s1"]["id"], "ip_address": "10.1.0.50"}])
    assert addresses(exact) == [(r["s1"]["id"], "10.1.0.50")]
    none = api.port(r["net"]["id"], fixed_ips=[])
    assert none["fixed_ips"] == [] and none["ip_allocation"] == "none"


def test_tunnel_and_local_segments(api: Api) -> None:
    net = api.network(name="tunnels")  # a tenant vxlan segment
    (vxlan,) = api.get(f"/v2.0/segments?network_id={net['id']}").json()["segments"]
    subnet = api.subnet(net["id"], "10.7.0.0/24", segment_id=vxlan["id"])
    report(api.client, "t1", tunneling_ip="198.18.0.11", tunnel_types=["vxlan"])
    report(api.client, "t2", tunneling_ip="198.18.0.12", tunnel_types=["gre"])
    report(api.client, "t3", interface_mappings={"rack1": "eth1"})
    assert in_subnet(api.port(net["id"], **{"binding:host_id": "t1"}), subnet)
    for host in ("t2", "t3"):
        assert_fault(api.post("/v2.0/ports", json={"port": {"network_id": net["id"], "binding:host_id": host}}),
                     409, "HostNotConnectedToAnySegment")
    local = api.network(name="local", **{"provider:network_type": "local"})
    (seg,) = api.get(f"/v2.0/segments?network_id={local['id']}").json()["segments"]
    on_local = api.subnet(local["id"], "10.8.0.0/24", segment_id=seg["id"])
    assert in_subnet(api.port(local["id"], **{"binding:host_id": "anywhere"}), on_local)


def test_networks_without_segment_subnets_are_unchanged(api: Api) -> None:
    net = api.network()
    subnet = api.subnet(net["id"], "10.9.0.0/24")
    for attrs in ({}, {"binding:host_id": "nowhere"}):
        port = api.port(net["id"], **attrs)
        assert in_subnet(port, subnet) and port["ip_allocation"] == "immediate"
    empty = api.network()
    port = api.port(empty["id"])
    assert port["fixed_ips"] == [] and port["ip_allocation"] == "immediate"
