"""Property-based fuzzing driven by the generated OpenAPI document: no input may produce a 5xx,
every error has Neutron's body, and a refused create writes nothing."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fermion.resources.catalog import openapi_document
from tests.conftest import Api

DOC = openapi_document()
SCHEMAS = DOC["components"]["schemas"]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
octet = st.integers(0, 300).map(str)
ipv4 = st.tuples(octet, octet, octet, octet).map(".".join)
ipv6 = st.sampled_from(["fe80::1", "2001:db8::1", "::", "2001:db8::/64", "1::2::3", "2001:db8:0:1::5"])
cidr = st.tuples(ipv4 | ipv6, st.integers(-1, 130)).map(lambda t: f"{t[0].split('/')[0]}/{t[1]}")
mac = st.sampled_from(["fa:16:3e:00:00:01", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "zz:11", "FA-16-3E-AA-BB-CC"])
uuidish = st.uuids().map(str) | st.text(string.hexdigits + "-", max_size=40)
strings = st.text(max_size=300) | ipv4 | ipv6 | cidr | mac | uuidish
obj_keys = ["start", "end", "subnet_id", "ip_address", "destination", "nexthop", "mac_address", "bogus"]
objects = st.dictionaries(st.sampled_from(obj_keys), strings | junk, max_size=4)


def value_for(schema: dict[str, Any], ids: list[str]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    options: list[st.SearchStrategy[Any]] = [junk]
    if "string" in kinds:
        options += [strings, st.sampled_from(ids)]
    if "boolean" in kinds:
        options.append(st.booleans())
    if "integer" in kinds:
        options += [st.integers(-5, 70000), st.sampled_from([4, 6])]
    if "array" in kinds:
        options += [st.lists(strings | objects | st.sampled_from(ids), max_size=4)]
    if "object" in kinds:
        options.append(objects)
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    return st.one_of(options)


def body_for(schema_name: str, member: str, ids: list[str], base: dict[str, Any] | None = None,
             ) -> st.SearchStrategy[Any]:
    props = SCHEMAS[schema_name]["properties"][member]["properties"]
    names = [*props, "unknown_attr", "id", "status"]
    item = st.dictionaries(st.sampled_from(names), junk, max_size=6).flatmap(
        lambda d: st.fixed_dictionaries({}, optional={k: value_for(props.get(k, {}), ids) for k in names})
        .map(lambda good, d=d: {**d, **good} if len(d) < 2 else good))
    # a valid base with a few fuzzed attributes on top reaches the service layer, not only validation
    few = st.fixed_dictionaries({}, optional={k: value_for(props.get(k, {}), ids) for k in props})
    based = few.map(lambda extra: {**(base or {}), **dict(list(extra.items())[:2])})
    return st.one_of(item.map(lambda i: {member: i}), based.map(lambda i: {member: i}), junk,
                     st.just({f"{member}s": []}))


def assert_neutron_error(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert set(body["NeutronError"]) == {"type", "message", "detail"}, body


@pytest.fixture
def world(api: Api) -> dict[str, Any]:
    net = api.network(name="fuzz")
    v4 = api.subnet(net["id"], "10.20.0.0/24")
    v6 = api.subnet(net["id"], "2001:db8:20::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    port = api.port(net["id"])
    ext = api.network(name="fuzz-ext", **{"router:external": True})
    api.subnet(ext["id"], "198.18.20.0/24")
    router = api.create("routers", name="fuzz", external_gateway_info={"network_id": ext["id"]})
    fip = api.create("floatingips", floating_network_id=ext["id"])
    return {"api": api, "net": net, "ids": [net["id"], v4["id"], v6["id"], port["id"], ext["id"], router["id"]],
            "port": port, "subnet": v4, "router": router, "fip": fip, "ext": ext}


def _count(api: Api, collection: str) -> int:
    return len(api.get(f"/v2.0/{collection}").json()[collection])


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports", "routers", "floatingips"])
def test_fuzz_create(world: dict[str, Any], collection: str) -> None:
    api: Api = world["api"]
    member = collection[:-1]
    seen: set[int] = set()
    base = {"networks": {}, "ports": {"network_id": world["net"]["id"]},
            "subnets": {"network_id": world["net"]["id"], "cidr": "10.21.0.0/24", "ip_version": 4},
            "routers": {}, "floatingips": {"floating_network_id": world["ext"]["id"]}}[collection]

    @given(body=body_for(f"{member.capitalize()}Create", member, world["ids"], base))
    @FUZZ
    def run(body: Any) -> None:
        before = _count(api, collection)
        r = api.post(f"/v2.0/{collection}", json=body)
        seen.add(r.status_code)
        assert_neutron_error(r)
        if r.status_code >= 400:
            assert _count(api, collection) == before
        else:
            created = r.json()[member]
            assert api.delete(f"/v2.0/{collection}/{created['id']}").status_code in (204, 409)

    run()
    # the generator reaches past validation, not only into the 400 path
    assert 400 in seen
    assert 201 in seen, seen


@pytest.mark.parametrize("collection,key", [("networks", "net"), ("subnets", "subnet"), ("ports", "port"),
                                            ("routers", "router"), ("floatingips", "fip")])
def test_fuzz_update(world: dict[str, Any], collection: str, key: str) -> None:
    api: Api = world["api"]
    member = collection[:-1]
    ident = world[key]["id"]

    @FUZZ
    @given(body=body_for(f"{member.capitalize()}Update", member, world["ids"]))
    def run(body: Any) -> None:
        assert_neutron_error(api.put(f"/v2.0/{collection}/{ident}", json=body))

    run()


query_keys = st.sampled_from(["name", "id", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "fields",
                              "tags", "not-tags-any", "admin_state_up", "ip_version", "cidr", "fixed_ips",
                              "network_id", "mac_address", "bogus", "tenant_id", "mtu", "device_id"])


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports", "routers", "floatingips"])
def test_fuzz_list_queries(world: dict[str, Any], collection: str) -> None:
    api: Api = world["api"]

    @FUZZ
    @given(params=st.lists(st.tuples(query_keys, strings | st.sampled_from(world["ids"]) | st.just("id")),
                           max_size=5))
    def run(params: list[tuple[str, str]]) -> None:
        assert_neutron_error(api.get(f"/v2.0/{collection}", params=params))

    run()


def test_fuzz_raw_bytes(world: dict[str, Any]) -> None:
    api: Api = world["api"]

    @FUZZ
    @given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
           path=st.sampled_from(["/v2.0/networks", "/v2.0/ports", f"/v2.0/ports/{world['port']['id']}",
                                 f"/v2.0/networks/{world['net']['id']}/tags", "/v2.0/quotas/p1"]),
           method=st.sampled_from(["POST", "PUT"]))
    def run(raw: bytes, path: str, method: str) -> None:
        assert_neutron_error(api.request(method, path, content=raw))

    run()
