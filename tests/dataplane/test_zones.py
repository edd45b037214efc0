"""Availability zones in the lab: two network nodes in zones az1 and az2; a network and a router hinted to
az2 are served from network2 only, with real DHCP leases and real routed packets."""

from __future__ import annotations

from fermion.dataplane import naming, netns
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.lab import Lab, ping_ns
from tests.dataplane.test_l3 import put, subnet_of


def test_hints_place_dhcp_and_routing_in_the_zone(zoned_lab: Lab) -> None:
    lab = zoned_lab
    listed = lab.api._ok(lab.api.http.get("/v2.0/availability_zones"))["availability_zones"]
    assert {(z["name"], z["resource"]) for z in listed} == {("az1", "network"), ("az1", "router"),
                                                             ("az2", "network"), ("az2", "router")}
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("blue", "10.31.0.0/24", availability_zone_hints=["az2"])
    router = lab.api.post("routers", {"name": "r1", "availability_zone_hints": ["az2"],
                                      "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})

    shown = lab.api._ok(lab.api.http.get(f"/v2.0/networks/{net['id']}"))["network"]
    assert shown["availability_zones"] == ["az2"]
    hosts = [a["host"] for a in lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router['id']}/l3-agents"))["agents"]]
    assert hosts == ["network2"]

    vm = lab.boot("blue", "compute1", "vm1")  # waits for its DHCP lease
    leases = lab.state_dir / "dhcp"
    assert vm.mac in (leases / "network2" / net["id"] / "leases").read_text()
    assert not (leases / "network1" / net["id"]).exists()  # the az1 node serves nothing of it
    namespaces = netns.names(lab.state.prefix)
    assert naming.router_namespace(router["id"], lab.host_ns("network2")) in namespaces
    assert naming.router_namespace(router["id"], lab.host_ns("network1")) not in namespaces
    lab.wait(lambda: ping_ns(vm.netns, EXTERNAL_GATEWAY, count=1), 20, "vm1 to reach the internet through network2")
