"""Subnet service types, the ip_address substring filter on ports and network IP availability."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids


def _ips(port: dict[str, Any]) -> list[str]:
    return [f["ip_address"] for f in port["fixed_ips"]]


# ---------------------------------------------------------------- subnet-service-types
def test_service_types_attribute(api: Api) -> None:
    net = api.network()
    plain = api.subnet(net["id"], "10.1.0.0/24")
    assert plain["service_types"] == []
    typed = api.subnet(net["id"], "10.2.0.0/24", service_types=["network:floatingip", "compute:nova"])
    assert typed["service_types"] == ["compute:nova", "network:floatingip"]
    assert api.get(f"/v2.0/subnets/{typed['id']}").json()["subnet"]["service_types"] == typed["service_types"]
    assert ids(api.get("/v2.0/subnets?service_types=compute:nova"), "subnets") == [typed["id"]]
    r = api.put(f"/v2.0/subnets/{typed['id']}", json={"subnet": {"service_types": ["network:router_gateway"]}})
    assert r.status_code == 200 and r.json()["subnet"]["service_types"] == ["network:router_gateway"]
    assert_fault(api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.3.0.0/24",
                                                            "ip_version": 4, "service_types": ["bogus"]}}), 400)
    # Neutron's prefix check accepts any type starting with one of the characters of "compute:"
    quirky = api.subnet(net["id"], "10.3.0.0/24", service_types=["test:type_1"])
    assert quirky["service_types"] == ["test:type_1"]
    assert_fault(api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.3.0.0/24",
                                                            "ip_version": 4, "service_types": "compute:nova"}}), 400)


def test_service_types_are_admin_only(api: Api) -> None:
    member = api.as_("erin")
    net = member.network()
    r = member.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.4.0.0/24",
                                                      "ip_version": 4, "service_types": ["compute:nova"]}})
    assert_fault(r, 403)
    sub = member.subnet(net["id"], "10.4.0.0/24")
    assert_fault(member.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"service_types": ["compute:nova"]}}), 403)


def test_ports_take_addresses_from_their_service_subnets(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "10.5.0.0/24", enable_dhcp=False, service_types=["network:floatingip"])
    api.subnet(net["id"], "10.6.0.0/24", enable_dhcp=False)
    fip_port = api.port(net["id"], device_owner="network:floatingip")
    assert _ips(fip_port)[0].startswith("10.5.0.")
    vm_port = api.port(net["id"], device_owner="compute:nova")
    assert _ips(vm_port)[0].startswith("10.6.0.")
    # a typed subnet asked for by a port it does not serve is not one of its network's subnets for that port
    typed = [s for s in api.get(f"/v2.0/subnets?network_id={net['id']}").json()["subnets"] if s["service_types"]][0]
    r = api.post("/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova",
                                               "fixed_ips": [{"subnet_id": typed["id"]}]}})
    assert_fault(r, 400)


def test_no_matching_service_subnet_is_a_conflict(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "10.7.0.0/24", enable_dhcp=False, service_types=["network:router_gateway"])
    r = api.post("/v2.0/ports", json={"port": {"network_id": net["id"], "device_owner": "compute:nova"}})
    assert_fault(r, 409, "IpAddressGenerationFailureNoMatchingSubnet")
    assert api.get(f"/v2.0/ports?network_id={net['id']}").json()["ports"] == []
    # a network with no subnets at all still gives addressless ports
    bare = api.network()
    assert api.port(bare["id"], device_owner="compute:nova")["fixed_ips"] == []


def test_dhcp_ports_use_any_dhcp_subnet(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "10.8.0.0/24", service_types=["compute:nova"])
    dhcp = api.port(net["id"], device_owner="network:dhcp")
    assert _ips(dhcp)[0].startswith("10.8.0.")


# ---------------------------------------------------------------- ip-substring-filtering
def test_ip_address_substring_filter(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "10.9.0.0/24", enable_dhcp=False)
    a = api.port(net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.9.0.15"}])
    b = api.port(net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.9.0.150"}])
    c = api.port(net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.9.0.27"}])
    assert sorted(ids(api.get("/v2.0/ports?fixed_ips=ip_address_substr%3D0.15"), "ports")) == sorted([a["id"], b["id"]])
    assert ids(api.get("/v2.0/ports?fixed_ips=ip_address_substr%3D.27"), "ports") == [c["id"]]
    assert ids(api.get("/v2.0/ports?fixed_ips=ip_address_substr%3D99.99"), "ports") == []
    # LIKE wildcards are literal characters here
    assert ids(api.get("/v2.0/ports?fixed_ips=ip_address_substr%3D%25"), "ports") == []
    both = f"/v2.0/ports?fixed_ips=ip_address_substr%3D0.15&fixed_ips=subnet_id%3D{sub['id']}"
    assert sorted(ids(api.get(both), "ports")) == sorted([a["id"], b["id"]])
    assert ids(api.get("/v2.0/ports?fixed_ips=ip_address%3D10.9.0.15"), "ports") == [a["id"]]


# ---------------------------------------------------------------- network-ip-availability
def test_network_ip_availability(api: Api) -> None:
    net = api.network(name="avail")
    v4 = api.subnet(net["id"], "10.10.0.0/24", enable_dhcp=False, name="four")
    v6 = api.subnet(net["id"], "2001:db8:9::/120", enable_dhcp=False, name="six")
    empty = api.network(name="empty")
    for _ in range(3):
        api.port(net["id"])
    r = api.get(f"/v2.0/network-ip-availabilities/{net['id']}")
    assert r.status_code == 200, r.text
    got = r.json()["network_ip_availability"]
    assert got["network_id"] == net["id"] and got["network_name"] == "avail"
    assert got["project_id"] == got["tenant_id"] == net["project_id"]
    subs = {s["subnet_id"]: s for s in got["subnet_ip_availability"]}
    assert subs[v4["id"]] == {"subnet_id": v4["id"], "subnet_name": "four", "cidr": "10.10.0.0/24", "ip_version": 4,
                              "total_ips": 253, "used_ips": 3}
    # the v6 pool leaves out the subnet-router anycast address and the gateway
    assert subs[v6["id"]]["total_ips"] == 254 and subs[v6["id"]]["used_ips"] == 3
    assert got["total_ips"] == 253 + 254 and got["used_ips"] == 6
    listed = {n["network_id"]: n
              for n in api.get("/v2.0/network-ip-availabilities").json()["network_ip_availabilities"]}
    assert listed[net["id"]] == got
    assert listed[empty["id"]]["total_ips"] == 0 and listed[empty["id"]]["subnet_ip_availability"] == []
    only4 = api.get(f"/v2.0/network-ip-availabilities?ip_version=4&network_id={net['id']}").json()
    [entry] = only4["network_ip_availabilities"]
    assert [s["subnet_id"] for s in entry["subnet_ip_availability"]] == [v4["id"]] and entry["used_ips"] == 3
    by_name = api.get("/v2.0/network-ip-availabilities?network_name=empty").json()["network_ip_availabilities"]
    assert [n["network_id"] for n in by_name] == [empty["id"]]
    fields = api.get(f"/v2.0/network-ip-availabilities/{net['id']}?fields=used_ips").json()
    assert fields == {"network_ip_availability": {"used_ips": 6}}
    assert_fault(api.get("/v2.0/network-ip-availabilities?bogus=1"), 400)
    assert_fault(api.get("/v2.0/network-ip-availabilities/6b5b1e38-9a16-4cf1-9b52-0d1a8c0e9d11"), 404)


def test_network_ip_availability_is_admin_only(api: Api) -> None:
    member = api.as_("frank")
    net = member.network()
    member.subnet(net["id"], "10.11.0.0/24")
    assert member.get("/v2.0/network-ip-availabilities").json() == {"network_ip_availabilities": []}
    assert_fault(member.get(f"/v2.0/network-ip-availabilities/{net['id']}"), 404)
    assert net["id"] in {n["network_id"] for n in
                         api.get("/v2.0/network-ip-availabilities").json()["network_ip_availabilities"]}


def test_network_ip_availability_of_a_large_ipv6_subnet(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "2001:db8:a::/48", enable_dhcp=False)
    got = api.get(f"/v2.0/network-ip-availabilities/{net['id']}").json()["network_ip_availability"]
    assert got["total_ips"] == 2**80 - 2  # beyond 64 bits: still an exact JSON number


def test_deleting_a_network_takes_its_typed_and_pooled_subnets(api: Api) -> None:
    pool = api.create("subnetpools", name="p", prefixes=["10.12.0.0/16"], default_prefixlen=24)
    net = api.network()
    api.subnet(net["id"], "10.13.0.0/24", service_types=["compute:nova"])
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 6,
                                                   "cidr": "2001:db8:77::/64"}})
    assert r.status_code == 201, r.text
    other = api.network()
    assert api.post("/v2.0/subnets", json={"subnet": {"network_id": other["id"], "ip_version": 4,
                                                      "subnetpool_id": pool["id"]}}).status_code == 201
    assert api.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    assert api.delete(f"/v2.0/networks/{other['id']}").status_code == 204
    assert api.get("/v2.0/subnets").json()["subnets"] == []
    assert api.delete(f"/v2.0/subnetpools/{pool['id']}").status_code == 204  # nothing allocated any more


def test_floating_ips_and_gateways_use_their_service_subnets(api: Api) -> None:
    ext = api.network(**{"router:external": True})
    api.subnet(ext["id"], "198.18.10.0/24", enable_dhcp=False, service_types=["network:router_gateway"])
    api.subnet(ext["id"], "198.18.11.0/24", enable_dhcp=False, service_types=["network:floatingip"])
    fip = api.create("floatingips", floating_network_id=ext["id"])
    assert fip["floating_ip_address"].startswith("198.18.11.")
    r = api.create("routers", external_gateway_info={"network_id": ext["id"]})
    (fixed,) = r["external_gateway_info"]["external_fixed_ips"]
    assert fixed["ip_address"].startswith("198.18.10.")


def test_network_ip_availability_without_allocation_pools_counts_the_cidr(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "10.14.0.0/28", enable_dhcp=False, allocation_pools=[])
    got = api.get(f"/v2.0/network-ip-availabilities/{net['id']}").json()["network_ip_availability"]
    assert got["total_ips"] == 16 and got["used_ips"] == 0
