"""Bad input never gives a 500: each answer is a 4xx NeutronError and nothing is written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault

JSON = {"content-type": "application/json"}


def _nothing(api: Api) -> None:
    for collection in ("networks", "subnets", "ports"):
        assert api.get(f"/v2.0/{collection}").json()[collection] == [], collection


def _bad(r: Any, status: int = 400, type_: str | None = None) -> None:
    assert r.status_code < 500, r.text
    assert_fault(r, status, type_)


# ------------------------------------------------------------------------------------------- body shape


@pytest.mark.parametrize("raw", [b"{not json", b'{"network": {"name": "x"}', b"\xff\xfe\x00", b"[1, 2,]",
                                 b'{"network": {"name": "\\ud800"}}', b"", b"   ", b"null", b"42", b'"text"',
                                 b"[]", b"[" * 5000 + b"]" * 5000])
def test_malformed_create_bodies(api: Api, raw: bytes) -> None:
    for collection in ("networks", "subnets", "ports"):
        _bad(api.post(f"/v2.0/{collection}", content=raw, headers=JSON))
    _nothing(api)


@pytest.mark.parametrize("body", [
    {},
    {"netwrk": {}},
    {"network": None},
    {"network": "x"},
    {"network": [{}]},
    {"network": {}, "networks": [{}]},
    {"networks": {}},
    {"networks": [None]},
    {"networks": ["x"]},
    {"networks": [{}, 5]},
])
def test_wrong_envelope(api: Api, body: Any) -> None:
    _bad(api.post("/v2.0/networks", json=body))
    _nothing(api)


def test_malformed_update_bodies(api: Api) -> None:
    net = api.network(name="keep")
    url = f"/v2.0/networks/{net['id']}"
    for raw in (b"{oops", b"", b"[]", b'{"port": {"name": "x"}}', b'{"network": "x"}', b'{"network": null}'):
        _bad(api.put(url, content=raw, headers=JSON))
    assert api.get(url).json()["network"] == net


def test_oversized_body_is_413(api: Api) -> None:
    body = b'{"network": {"name": "' + b"x" * 200_000 + b'"}}'
    _bad(api.post("/v2.0/networks", content=body, headers=JSON), 413)
    net = api.network()
    _bad(api.put(f"/v2.0/networks/{net['id']}", content=body, headers=JSON), 413)
    assert api.get("/v2.0/networks").json()["networks"] == [net]


# ------------------------------------------------------------------------------------------ attributes


@pytest.mark.parametrize("attrs", [
    {"name": 123},
    {"name": None},
    {"name": ["a"]},
    {"name": "x" * 256},
    {"description": "x" * 256},
    {"description": 5},
    {"admin_state_up": "maybe"},
    {"admin_state_up": None},
    {"admin_state_up": 2},
    {"shared": "yes please"},
    {"router:external": []},
    {"port_security_enabled": {}},
    {"mtu": "big"},
    {"mtu": -1},  # Neutron: non-negative (the subnets set the real minimum)
    {"mtu": 70000},
    {"mtu": 1400.5},
    {"mtu": True},
    {"mtu": 10**30},
    {"tags": "a"},
    {"tags": [1]},
    {"tags": [""]},
    {"tags": ["a/b"]},
    {"tags": [f"t{i}" for i in range(101)]},
    {"bogus": 1},
    {"l2_adjacency": True},
    {"id": "7a9b8f4e-2d1c-4e4b-9d5e-123456789abc"},
    {"status": "DOWN"},
    {"subnets": []},
    {"created_at": "2020-01-01T00:00:00Z"},
    {"updated_at": "2020-01-01T00:00:00Z"},
    {"revision_number": 7},
    {"project_id": 5},
    {"project_id": "x" * 256},
])
def test_invalid_network_create(api: Api, attrs: dict[str, Any]) -> None:
    _bad(api.post("/v2.0/networks", json={"network": attrs}))
    _nothing(api)


@pytest.mark.parametrize("attrs", [
    {"name": "x" * 256},
    {"admin_state_up": "maybe"},
    {"mtu": "x"},
    {"bogus": 1},
    {"id": "7a9b8f4e-2d1c-4e4b-9d5e-123456789abc"},
    {"status": "DOWN"},
    {"project_id": "other"},
    {"tenant_id": "other"},
    {"subnets": []},
    {"created_at": "2020-01-01T00:00:00Z"},
    {"revision_number": 9},
])
def test_invalid_network_update(api: Api, attrs: dict[str, Any]) -> None:
    net = api.network(name="keep")
    _bad(api.put(f"/v2.0/networks/{net['id']}", json={"network": attrs}))
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"] == net


def test_name_of_exactly_255_characters_is_fine(api: Api) -> None:
    net = api.network(name="n" * 255, description="d" * 255)
    assert len(net["name"]) == 255 and len(net["description"]) == 255
    assert api.network(name="ünïcødé ✓")["name"] == "ünïcødé ✓"


@pytest.mark.parametrize("attrs", [
    {"network_id": "not-a-uuid"},
    {"network_id": 5},
    {"network_id": None},
    {"ip_version": 5},
    {"ip_version": None},
    {"cidr": "10.0.0.0/24/8"},
    {"cidr": "300.0.0.0/24"},
    {"cidr": "10.0.0.0/-1"},
    {"cidr": "10.0.0.0/abc"},
    {"cidr": None},
    {"cidr": 10},
    {"gateway_ip": "10.0.0.300"},
    {"gateway_ip": "10.0.0.0"},
    {"gateway_ip": "10.0.0.255"},
    {"gateway_ip": 5},
    {"dns_nameservers": ["8.8.8.8"] * 2},
    {"dns_nameservers": [f"10.1.1.{i}" for i in range(6)]},
    {"host_routes": "none"},
    {"host_routes": [{"destination": "10.9.0.0/16", "nexthop": "bogus"}]},
    {"host_routes": [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9", "extra": 1}]},
    {"allocation_pools": [{"start": "2001:db8::1", "end": "2001:db8::9"}]},
    {"allocation_pools": {"start": "10.0.0.5", "end": "10.0.0.9"}},
    {"enable_dhcp": "sometimes"},
    {"subnetpool_id": "nope"},
    {"ipv6_ra_mode": "slaac"},
    {"segment_id": "nope"},
    {"id": "7a9b8f4e-2d1c-4e4b-9d5e-123456789abc"},
    {"revision_number": 1},
])
def test_invalid_subnet_create(api: Api, attrs: dict[str, Any]) -> None:
    net = api.network()
    body = {"network_id": net["id"], "cidr": "10.0.0.0/24", "ip_version": 4, **attrs}
    _bad(api.post("/v2.0/subnets", json={"subnet": body}))
    assert api.get("/v2.0/subnets").json()["subnets"] == []


@pytest.mark.parametrize("attrs", [
    {"cidr": "10.1.0.0/24"},
    {"network_id": "7a9b8f4e-2d1c-4e4b-9d5e-123456789abc"},
    {"ip_version": 6},
    {"gateway_ip": "192.168.0.1"},
    {"gateway_ip": "2001:db8::1"},
    {"dns_nameservers": ["2001:db8::53"]},
    {"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.9"}]},  # contains the gateway
    {"name": "x" * 256},
    {"bogus": True},
])
def test_invalid_subnet_update(api: Api, attrs: dict[str, Any]) -> None:
    net = api.network()
    sub = api.subnet(net["id"], name="keep")
    r = api.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": attrs})
    assert 400 <= r.status_code < 500, r.text
    assert_fault(r, r.status_code)
    assert api.get(f"/v2.0/subnets/{sub['id']}").json()["subnet"] == sub


@pytest.mark.parametrize("attrs", [
    {"network_id": "not-a-uuid"},
    {"network_id": None},
    {"mac_address": "bogus"},
    {"mac_address": "fa:16:3e:00:00"},
    {"mac_address": "00:00:00:00:00:00"},
    {"mac_address": "ff:ff:ff:ff:ff:ff"},
    {"mac_address": "01:00:5e:00:00:01"},
    {"mac_address": 12345},
    {"fixed_ips": [{"ip_address": "2001:db8::5"}]},  # wrong version for the network's subnets
    {"fixed_ips": [{"ip_address": "10.0.0.5/24"}]},
    {"fixed_ips": [{"ip_address": None}]},
    {"fixed_ips": [{"ip_address": "10.0.0.5"}] * 2},
    {"fixed_ips": [{"subnet_id": "7a9b8f4e-2d1c-4e4b-9d5e"}]},
    {"fixed_ips": [{"ip_address": f"10.0.0.{i + 2}"} for i in range(101)]},
    {"fixed_ips": {"ip_address": "10.0.0.5"}},
    {"device_id": "x" * 256},
    {"device_owner": "x" * 256},
    {"device_id": 7},
    {"admin_state_up": "x"},
    {"security_groups": ["not-a-uuid"]},
    {"security_groups": "default"},
    {"binding:profile": "x"},
    {"binding:vnic_type": 1},
    {"allowed_address_pairs": [{"ip_address": "10.0.0.0/33"}]},
    {"allowed_address_pairs": [{"ip_address": f"10.1.0.{i}"} for i in range(11)]},
    {"status": "ACTIVE"},
    {"binding:vif_type": "ovs"},
    {"id": "7a9b8f4e-2d1c-4e4b-9d5e-123456789abc"},
    {"bogus": None},
])
def test_invalid_port_create(api: Api, attrs: dict[str, Any]) -> None:
    net = api.network()
    api.subnet(net["id"])
    body = {"network_id": net["id"], **attrs}
    r = api.post("/v2.0/ports", json={"port": body})
    assert 400 <= r.status_code < 500, r.text
    assert_fault(r, r.status_code)
    assert api.get("/v2.0/ports").json()["ports"] == []


@pytest.mark.parametrize("attrs", [
    {"network_id": "7a9b8f4e-2d1c-4e4b-9d5e-123456789abc"},
    {"mac_address": "nope"},
    {"fixed_ips": [{"ip_address": "10.9.9.9"}]},
    {"fixed_ips": [{"ip_address": "not-an-ip"}]},
    {"status": "ACTIVE"},
    {"device_owner": 5},
    {"binding:vif_details": {}},
    {"port_security_enabled": "x"},
])
def test_invalid_port_update(api: Api, attrs: dict[str, Any]) -> None:
    net = api.network()
    api.subnet(net["id"])
    port = api.port(net["id"], name="keep")
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": attrs})
    assert 400 <= r.status_code < 500, r.text
    assert_fault(r, r.status_code)
    assert api.get(f"/v2.0/ports/{port['id']}").json()["port"] == port


def test_missing_required_port_attribute(api: Api) -> None:
    _bad(api.post("/v2.0/ports", json={"port": {"name": "no network"}}))
    _nothing(api)


# -------------------------------------------------------------------------------------- paths, queries


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports"])
def test_non_uuid_ids_in_paths_are_404(api: Api, collection: str) -> None:
    for ident in ("not-a-uuid", "1", "%20", "x" * 300):
        r = api.get(f"/v2.0/{collection}/{ident}")
        _bad(r, 404)
        _bad(api.put(f"/v2.0/{collection}/{ident}", json={collection[:-1]: {"name": "x"}}), 404)
        _bad(api.delete(f"/v2.0/{collection}/{ident}"), 404)


@pytest.mark.parametrize("query", [
    "limit=99999999999999999999999",
    "limit=1&marker=not-a-uuid",
    "limit=1&marker=7a9b8f4e-2d1c-4e4b-9d5e-123456789abc",
    "mtu=99999999999999999999999",
    "revision_number=99999999999999999999999",
    "revision_number=-5",
    "sort_key=revision_number&limit=1&marker=7a9b8f4e-2d1c-4e4b-9d5e-123456789abc",
    "sort_key=name&sort_dir=",
    "fields=",
    "name=%00",
    "id=",
    "tags=",
    "not-tags-any=,,,",
])
def test_odd_queries_are_never_500(api: Api, query: str) -> None:
    api.network()
    r = api.get(f"/v2.0/networks?{query}")
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert_fault(r, 400)


@pytest.mark.parametrize("header", ["revision_number=99999999999999999999999", "revision_number=-1",
                                    "revision_number=", "*", "revision_number=1, revision_number=2"])
def test_odd_if_match_headers_are_never_500(api: Api, header: str) -> None:
    net = api.network(name="keep")
    r = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "x"}}, headers={"If-Match": header})
    assert r.status_code in (400, 412), r.text
    assert_fault(r, r.status_code)
    r = api.delete(f"/v2.0/networks/{net['id']}", headers={"If-Match": header})
    assert r.status_code in (400, 412), r.text
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["name"] == "keep"


@pytest.mark.parametrize(("collection", "query"), [
    ("subnets", "ip_version=99999999999999999999999"),
    ("subnets", "ip_version=7"),
    ("ports", "revision_number=99999999999999999999999"),
    ("ports", "mac_address=99999999999999999999999"),
    ("ports", "fixed_ips=ip_address%3D99999999999999999999999"),
])
def test_odd_queries_on_subnets_and_ports(api: Api, collection: str, query: str) -> None:
    r = api.get(f"/v2.0/{collection}?{query}")
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert_fault(r, 400)


def test_quota_values_out_of_range(api: Api) -> None:
    _bad(api.put("/v2.0/quotas/p", json={"quota": {"network": 2**40}}))
    _bad(api.put("/v2.0/quotas/p", content=b"{bad", headers=JSON))
    assert api.get("/v2.0/quotas").json() == {"quotas": []}


def test_bad_tags_path(api: Api) -> None:
    net = api.network()
    _bad(api.put(f"/v2.0/networks/{net['id']}/tags", content=b"{bad", headers=JSON))
    _bad(api.post(f"/v2.0/networks/{net['id']}/tags", json={"tags": ["a"]}), 404)
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["tags"] == []
