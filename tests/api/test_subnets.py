"""Subnets: IPv4 and IPv6 geometry, gateway, allocation pools, DNS, host routes and IPv6 modes."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

SUBNET_ATTRS = {"id", "project_id", "tenant_id", "name", "description", "tags", "created_at", "updated_at",
                "revision_number", "network_id", "ip_version", "cidr", "gateway_ip", "allocation_pools",
                "dns_nameservers", "host_routes", "enable_dhcp", "ipv6_ra_mode", "ipv6_address_mode",
                "subnetpool_id"}


def _post(api: Api, net_id: str, cidr: str, **attrs: object) -> object:
    version = 6 if ":" in cidr else 4
    body = {"network_id": net_id, "cidr": cidr, "ip_version": version, **attrs}
    return api.post("/v2.0/subnets", json={"subnet": body})


def _no_subnets(api: Api) -> None:
    assert api.get("/v2.0/subnets").json()["subnets"] == []


def test_ipv4_defaults(api: Api) -> None:
    net = api.network()
    r = _post(api, net["id"], "10.0.0.0/24")
    assert r.status_code == 201, r.text
    sub = r.json()["subnet"]
    assert SUBNET_ATTRS <= set(sub)
    assert sub["network_id"] == net["id"]
    assert sub["ip_version"] == 4
    assert sub["cidr"] == "10.0.0.0/24"
    assert sub["gateway_ip"] == "10.0.0.1"
    assert sub["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert sub["dns_nameservers"] == []
    assert sub["host_routes"] == []
    assert sub["enable_dhcp"] is True
    assert sub["ipv6_ra_mode"] is None and sub["ipv6_address_mode"] is None
    assert sub["subnetpool_id"] is None
    assert sub["project_id"] == sub["tenant_id"] == "admin-project"
    assert sub["tags"] == [] and sub["name"] == "" and sub["description"] == ""


def test_show_list_update_delete(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], name="s")
    r = api.get(f"/v2.0/subnets/{sub['id']}")
    assert r.status_code == 200 and r.json() == {"subnet": sub}
    assert ids(api.get("/v2.0/subnets"), "subnets") == [sub["id"]]
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"name": "t", "enable_dhcp": False,
                                                               "dns_nameservers": ["8.8.8.8"]}})
    assert r.status_code == 200, r.text
    upd = r.json()["subnet"]
    assert (upd["name"], upd["enable_dhcp"], upd["dns_nameservers"]) == ("t", False, ["8.8.8.8"])
    assert upd["revision_number"] == sub["revision_number"] + 1
    assert api.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert_fault(api.get(f"/v2.0/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert_fault(api.delete(f"/v2.0/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert_fault(api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"name": "x"}}), 404, "SubnetNotFound")


def test_explicit_gateway_is_excluded_from_default_pool(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "10.0.0.0/24", gateway_ip="10.0.0.254")
    assert sub["gateway_ip"] == "10.0.0.254"
    assert sub["allocation_pools"] == [{"start": "10.0.0.1", "end": "10.0.0.253"}]


def test_gateway_in_the_middle_splits_the_default_pool(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "10.0.0.0/28", gateway_ip="10.0.0.5")
    assert sub["allocation_pools"] == [{"start": "10.0.0.1", "end": "10.0.0.4"},
                                       {"start": "10.0.0.6", "end": "10.0.0.14"}]


def test_null_gateway_gives_the_whole_range(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "10.0.0.0/24", gateway_ip=None)
    assert sub["gateway_ip"] is None
    assert sub["allocation_pools"] == [{"start": "10.0.0.1", "end": "10.0.0.254"}]


def test_gateway_outside_the_cidr_is_400(api: Api) -> None:
    net = api.network()
    assert_fault(_post(api, net["id"], "10.0.0.0/24", gateway_ip="10.0.1.1"), 400)
    assert_fault(_post(api, net["id"], "10.0.0.0/24", gateway_ip="2001:db8::1"), 400)
    _no_subnets(api)


def test_gateway_update(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "10.0.0.0/24", allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.20"}])
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "10.0.0.2"}})
    assert r.status_code == 200, r.text
    assert r.json()["subnet"]["gateway_ip"] == "10.0.0.2"
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": None}})
    assert r.status_code == 200, r.text
    assert r.json()["subnet"]["gateway_ip"] is None
    # moving the gateway into the pool is a conflict
    assert_fault(api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "10.0.0.15"}}), 409,
                 "GatewayConflictWithAllocationPools")


def test_the_gateway_a_router_interface_holds_stays_until_the_interface_goes(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "10.0.0.0/24", allocation_pools=[{"start": "10.0.0.10", "end": "10.0.0.20"}])
    router = api.post("/v2.0/routers", json={"router": {"name": "r"}}).json()["router"]
    attach = api.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
    assert attach.status_code == 200, attach.text
    port_id = attach.json()["port_id"]
    for gateway in ("10.0.0.2", None):
        r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": gateway}})
        assert_fault(r, 409, "GatewayIpInUse")
        assert r.json()["NeutronError"]["message"] == (f"Current gateway ip 10.0.0.1 already in use by port "
                                                       f"{port_id}. Unable to update.")
    same = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "10.0.0.1", "name": "s"}})
    assert same.status_code == 200, same.text
    # a router interface on another address of the subnet does not hold the gateway
    other = api.port(net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.3"}])
    r2 = api.post("/v2.0/routers", json={"router": {"name": "r2"}}).json()["router"]
    assert api.put(f"/v2.0/routers/{r2['id']}/add_router_interface", json={"port_id": other["id"]}).status_code == 200
    detach = api.put(f"/v2.0/routers/{router['id']}/remove_router_interface", json={"subnet_id": sub["id"]})
    assert detach.status_code == 200, detach.text
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "10.0.0.2"}})
    assert r.status_code == 200 and r.json()["subnet"]["gateway_ip"] == "10.0.0.2", r.text


def test_explicit_allocation_pools(api: Api) -> None:
    net = api.network()
    pools = [{"start": "10.0.0.10", "end": "10.0.0.20"}, {"start": "10.0.0.100", "end": "10.0.0.110"}]
    sub = api.subnet(net["id"], allocation_pools=pools)
    assert sub["allocation_pools"] == pools
    port = api.port(net["id"])
    ip = port["fixed_ips"][0]["ip_address"]
    last = int(ip.rsplit(".", 1)[1])
    assert 10 <= last <= 20 or 100 <= last <= 110


@pytest.mark.parametrize(("pools", "status", "type_"), [
    ([{"start": "10.0.0.200", "end": "10.0.1.5"}], 400, "OutOfBoundsAllocationPool"),
    ([{"start": "10.0.1.1", "end": "10.0.1.5"}], 400, "OutOfBoundsAllocationPool"),
    ([{"start": "10.0.0.0", "end": "10.0.0.5"}], 400, "OutOfBoundsAllocationPool"),
    ([{"start": "10.0.0.20", "end": "10.0.0.10"}], 400, "InvalidAllocationPool"),
    ([{"start": "2001:db8::2", "end": "2001:db8::5"}], 400, "InvalidAllocationPool"),
    ([{"start": "10.0.0.10", "end": "10.0.0.20"}, {"start": "10.0.0.15", "end": "10.0.0.30"}], 409,
     "OverlappingAllocationPools"),
    ([{"start": "10.0.0.1", "end": "10.0.0.20"}], 409, "GatewayConflictWithAllocationPools"),
    ([{"start": "10.0.0.10"}], 400, None),
    ([{"start": "10.0.0.10", "end": "10.0.0.x"}], 400, None),
    ("10.0.0.10-10.0.0.20", 400, None),
])
def test_invalid_allocation_pools(api: Api, pools: object, status: int, type_: str | None) -> None:
    net = api.network()
    assert_fault(_post(api, net["id"], "10.0.0.0/24", allocation_pools=pools), status, type_)
    _no_subnets(api)


def test_allocation_pool_update_is_validated(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"])
    new = [{"start": "10.0.0.50", "end": "10.0.0.60"}]
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"allocation_pools": new}})
    assert r.status_code == 200, r.text
    assert r.json()["subnet"]["allocation_pools"] == new
    assert_fault(api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"allocation_pools": [
        {"start": "10.0.0.50", "end": "10.0.1.60"}]}}), 400, "OutOfBoundsAllocationPool")
    assert api.get(f"/v2.0/subnets/{sub['id']}").json()["subnet"]["allocation_pools"] == new


def test_dns_nameservers_and_host_routes(api: Api) -> None:
    net = api.network()
    routes = [{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}]
    sub = api.subnet(net["id"], dns_nameservers=["1.1.1.1", "8.8.8.8"], host_routes=routes)
    assert sub["dns_nameservers"] == ["1.1.1.1", "8.8.8.8"]
    assert sub["host_routes"] == routes
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"dns_nameservers": [], "host_routes": []}})
    assert r.status_code == 200
    assert r.json()["subnet"]["dns_nameservers"] == [] and r.json()["subnet"]["host_routes"] == []


@pytest.mark.parametrize("attrs", [
    {"dns_nameservers": ["not-an-ip"]},
    {"dns_nameservers": ["8.8.8.8", "8.8.8.8"]},
    {"dns_nameservers": "8.8.8.8"},
    {"dns_nameservers": ["2001:db8::53"]},
    {"host_routes": [{"destination": "192.168.0.0/16"}]},
    {"host_routes": [{"destination": "bogus", "nexthop": "10.0.0.254"}]},
    {"host_routes": [{"destination": "2001:db8::/64", "nexthop": "10.0.0.254"}]},
    {"enable_dhcp": "maybe"},
])
def test_invalid_dns_routes_and_flags(api: Api, attrs: dict[str, object]) -> None:
    net = api.network()
    assert_fault(_post(api, net["id"], "10.0.0.0/24", **attrs), 400)
    _no_subnets(api)


def test_overlapping_cidr_on_one_network_is_rejected(api: Api) -> None:
    net = api.network()
    first = api.subnet(net["id"], "10.0.0.0/24")
    assert_fault(_post(api, net["id"], "10.0.0.0/24"), 400)
    assert_fault(_post(api, net["id"], "10.0.0.128/25"), 400)
    assert_fault(_post(api, net["id"], "10.0.0.0/16"), 400)
    assert ids(api.get("/v2.0/subnets"), "subnets") == [first["id"]]
    # the same range on another network is fine
    other = api.network()
    assert _post(api, other["id"], "10.0.0.0/24").status_code == 201


@pytest.mark.parametrize(("cidr", "version"), [
    ("10.0.0.0/24", 6),
    ("2001:db8::/64", 4),
    ("10.0.0.5/24", 4),
    ("10.0.0.0/33", 4),
    ("0.0.0.0/0", 4),
    ("10.0.0.0", 4),
    ("banana", 4),
    ("10.0.0.0/24", 5),
])
def test_invalid_cidr_or_version(api: Api, cidr: str, version: int) -> None:
    net = api.network()
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": cidr, "ip_version": version}})
    assert_fault(r, 400)
    _no_subnets(api)


def test_missing_required_attributes(api: Api) -> None:
    net = api.network()
    assert_fault(api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4}}), 400)
    assert_fault(api.post("/v2.0/subnets", json={"subnet": {"cidr": "10.0.0.0/24", "ip_version": 4}}), 400)
    _no_subnets(api)


def test_on_missing_network_is_404(api: Api) -> None:
    assert_fault(_post(api, str(uuid.uuid4()), "10.0.0.0/24"), 404, "NetworkNotFound")
    _no_subnets(api)


def test_cidr_and_ip_version_cannot_be_updated(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"])
    for attrs in ({"cidr": "10.1.0.0/24"}, {"ip_version": 6}, {"network_id": str(uuid.uuid4())}):
        assert_fault(api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": attrs}), 400)
    assert api.get(f"/v2.0/subnets/{sub['id']}").json()["subnet"] == sub


def test_ipv6_defaults(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "2001:db8::/64")
    assert sub["ip_version"] == 6
    assert sub["cidr"] == "2001:db8::/64"
    assert sub["gateway_ip"] == "2001:db8::1"
    assert sub["allocation_pools"] == [{"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}]
    assert sub["ipv6_ra_mode"] is None and sub["ipv6_address_mode"] is None
    port = api.port(net["id"])
    assert port["fixed_ips"][0]["subnet_id"] == sub["id"]
    assert port["fixed_ips"][0]["ip_address"].startswith("2001:db8::")


def test_ipv6_slaac_gives_eui64_addresses(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "2001:db8:1::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    assert sub["ipv6_ra_mode"] == "slaac" and sub["ipv6_address_mode"] == "slaac"
    port = api.port(net["id"], mac_address="fa:16:3e:12:34:56")
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "2001:db8:1:0:f816:3eff:fe12:3456"}]


def test_dual_stack_port_gets_v4_and_slaac_address(api: Api) -> None:
    net = api.network()
    v4 = api.subnet(net["id"], "10.0.0.0/24")
    v6 = api.subnet(net["id"], "2001:db8:2::/64", ipv6_address_mode="slaac")
    port = api.port(net["id"], mac_address="fa:16:3e:00:00:01")
    by_subnet = {f["subnet_id"]: f["ip_address"] for f in port["fixed_ips"]}
    assert set(by_subnet) == {v4["id"], v6["id"]}
    assert by_subnet[v6["id"]] == "2001:db8:2:0:f816:3eff:fe00:1"


def test_ipv6_dhcpv6_stateful_allocates_from_pool(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "2001:db8:3::/64", ipv6_ra_mode="dhcpv6-stateful",
                     ipv6_address_mode="dhcpv6-stateful")
    port = api.port(net["id"], mac_address="fa:16:3e:12:34:56")
    assert port["fixed_ips"][0]["subnet_id"] == sub["id"]
    assert port["fixed_ips"][0]["ip_address"] != "2001:db8:3:0:f816:3eff:fe12:3456"


@pytest.mark.parametrize(("cidr", "attrs"), [
    ("10.0.0.0/24", {"ipv6_ra_mode": "slaac"}),
    ("10.0.0.0/24", {"ipv6_address_mode": "slaac"}),
    ("2001:db8::/64", {"ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}),
    ("2001:db8::/64", {"ipv6_address_mode": "bogus"}),
    ("2001:db8::/80", {"ipv6_address_mode": "slaac"}),
])
def test_invalid_ipv6_modes(api: Api, cidr: str, attrs: dict[str, object]) -> None:
    net = api.network()
    assert_fault(_post(api, net["id"], cidr, **attrs), 400)
    _no_subnets(api)


def test_ipv6_modes_are_not_updatable(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"], "2001:db8::/64", ipv6_address_mode="slaac")
    assert_fault(api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"ipv6_address_mode": None}}), 400)


def test_small_ipv4_subnets(api: Api) -> None:
    net = api.network()
    s31 = api.subnet(net["id"], "10.0.0.0/31")
    assert s31["gateway_ip"] is None
    assert s31["allocation_pools"] == [{"start": "10.0.0.0", "end": "10.0.0.1"}]
    s30 = api.subnet(net["id"], "10.0.1.0/30")
    assert s30["gateway_ip"] == "10.0.1.1"
    assert s30["allocation_pools"] == [{"start": "10.0.1.2", "end": "10.0.1.2"}]


def test_delete_with_allocated_port_is_409_subnet_in_use(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"])
    port = api.port(net["id"])
    assert_fault(api.delete(f"/v2.0/subnets/{sub['id']}"), 409, "SubnetInUse")
    assert api.get(f"/v2.0/subnets/{sub['id']}").status_code == 200
    assert api.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert api.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204


def test_bulk_subnets_are_atomic(api: Api) -> None:
    net = api.network()
    good = {"network_id": net["id"], "cidr": "10.0.0.0/24", "ip_version": 4}
    overlapping = {"network_id": net["id"], "cidr": "10.0.0.0/25", "ip_version": 4}
    assert_fault(api.post("/v2.0/subnets", json={"subnets": [good, overlapping]}), 400)
    _no_subnets(api)
    r = api.post("/v2.0/subnets", json={"subnets": [good, {**good, "cidr": "10.0.1.0/24"}]})
    assert r.status_code == 201, r.text
    assert [s["cidr"] for s in r.json()["subnets"]] == ["10.0.0.0/24", "10.0.1.0/24"]


def test_overlap_error_type(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"], "10.0.0.0/24")
    assert_fault(_post(api, net["id"], "10.0.0.0/25"), 400, "InvalidInput")


def test_dhcp_port_does_not_block_subnet_delete(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"])
    dhcp = api.port(net["id"], device_owner="network:dhcp")
    assert api.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert api.get(f"/v2.0/ports/{dhcp['id']}").json()["port"]["fixed_ips"] == []



def test_ip_version_given_as_a_string_is_converted(api: Api) -> None:
    net = api.network()
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.77.0.0/24",
                                                    "ip_version": "4"}})
    assert r.status_code == 201, r.text
    assert r.json()["subnet"]["ip_version"] == 4
