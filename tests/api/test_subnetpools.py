"""Subnet pools and address scopes: attributes, defaults, validation, allocation of subnets from a pool,
quotas, the default pools, prefix operations, onboarding, visibility of shared pools and scopes."""

from __future__ import annotations

from typing import Any

from tests.api.test_routers import add_interface, l3_view, report_l3, report_lb
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault, ids

POOL_ATTRS = {"id", "name", "project_id", "tenant_id", "description", "tags", "created_at", "updated_at",
              "revision_number", "prefixes", "default_quota", "ip_version", "default_prefixlen", "min_prefixlen",
              "max_prefixlen", "is_default", "shared", "address_scope_id"}


def _pool(api: Api, prefixes: list[str], **attrs: Any) -> dict[str, Any]:
    return api.create("subnetpools", name=attrs.pop("name", "pool"), prefixes=prefixes, **attrs)


def _from_pool(api: Api, net_id: str, pool_id: str | None, version: int = 4, **attrs: Any) -> Any:
    body: dict[str, Any] = {"network_id": net_id, "ip_version": version, **attrs}
    if pool_id is not None:
        body["subnetpool_id"] = pool_id
    return api.post("/v2.0/subnets", json={"subnet": body})


# ---------------------------------------------------------------- subnet pools: CRUD and validation
def test_pool_defaults_v4(api: Api) -> None:
    pool = _pool(api, ["10.10.0.0/16", "10.11.0.0/16"])
    assert set(pool) == POOL_ATTRS
    # adjacent prefixes are compacted, as Neutron stores them
    assert pool["prefixes"] == ["10.10.0.0/15"]
    bounds = (pool["min_prefixlen"], pool["max_prefixlen"], pool["default_prefixlen"])
    assert pool["ip_version"] == 4 and bounds == ("8", "32", "8")  # strings, as Neutron answers them
    assert pool["default_quota"] is None and pool["is_default"] is False and pool["shared"] is False
    assert pool["address_scope_id"] is None and pool["revision_number"] == 1
    assert api.get(f"/v2.0/subnetpools/{pool['id']}").json() == {"subnetpool": pool}


def test_prefixes_with_host_bits_are_kept_as_their_networks(api: Api) -> None:
    assert _pool(api, ["10.11.12.13/24"])["prefixes"] == ["10.11.12.0/24"]


def test_pool_defaults_v6(api: Api) -> None:
    pool = _pool(api, ["2001:db8::/48"])
    bounds = (pool["min_prefixlen"], pool["max_prefixlen"], pool["default_prefixlen"])
    assert pool["ip_version"] == 6 and bounds == ("64", "128", "64")


def test_pool_validation(api: Api) -> None:
    def bad(status: int, type_: str | None, **body: Any) -> None:
        assert_fault(api.post("/v2.0/subnetpools", json={"subnetpool": body}), status, type_)

    bad(400, None, prefixes=["10.0.0.0/8"])  # the name is required
    bad(400, None, name="", prefixes=["10.0.0.0/8"])
    bad(400, None, name="p")  # prefixes are required
    bad(400, "EmptySubnetPoolPrefixList", name="p", prefixes=[])
    bad(400, "PrefixVersionMismatch", name="p", prefixes=["10.0.0.0/8", "2001:db8::/32"])
    bad(400, None, name="p", prefixes=["10.0.0.1"])
    bad(400, None, name="p", prefixes=["nonsense"])
    bad(400, "IllegalSubnetPoolPrefixBounds", name="p", prefixes=["10.0.0.0/8"], min_prefixlen=24, max_prefixlen=16)
    bad(400, "IllegalSubnetPoolPrefixBounds", name="p", prefixes=["10.0.0.0/8"], max_prefixlen=33)
    bad(400, "IllegalSubnetPoolPrefixBounds", name="p", prefixes=["10.0.0.0/8"], min_prefixlen=16,
        default_prefixlen=12)
    bad(400, None, name="p", prefixes=["10.0.0.0/8"], default_quota=-1)
    bad(400, None, name="p", prefixes=["10.0.0.0/8"], ip_version=4)  # read-only
    assert api.get("/v2.0/subnetpools").json()["subnetpools"] == []


def test_pool_update_prefixes_must_keep_the_old_ones(api: Api) -> None:
    pool = _pool(api, ["10.10.0.0/16"], min_prefixlen=20, default_prefixlen=24)
    r = api.put(f"/v2.0/subnetpools/{pool['id']}", json={"subnetpool": {"prefixes": ["10.20.0.0/16"]}})
    assert_fault(r, 400, "IllegalSubnetPoolPrefixUpdate")
    r = api.put(f"/v2.0/subnetpools/{pool['id']}",
                json={"subnetpool": {"prefixes": ["10.10.0.0/16", "10.20.0.0/16"], "name": "wider",
                                     "max_prefixlen": 28}})
    assert r.status_code == 200, r.text
    upd = r.json()["subnetpool"]
    assert upd["prefixes"] == ["10.10.0.0/16", "10.20.0.0/16"] and upd["name"] == "wider"
    assert (upd["min_prefixlen"], upd["default_prefixlen"], upd["max_prefixlen"]) == ("20", "24", "28")
    assert upd["revision_number"] == 2
    r = api.put(f"/v2.0/subnetpools/{pool['id']}", json={"subnetpool": {"default_prefixlen": 30}})
    assert_fault(r, 400, "IllegalSubnetPoolPrefixBounds")
    assert_fault(api.put(f"/v2.0/subnetpools/{pool['id']}", json={"subnetpool": {"shared": True}}), 400)


def test_pool_filters_sort_pagination_tags(api: Api) -> None:
    a = _pool(api, ["10.1.0.0/16"], name="a", tags=["red"])
    b = _pool(api, ["2001:db8::/48"], name="b")
    assert ids(api.get("/v2.0/subnetpools?ip_version=6"), "subnetpools") == [b["id"]]
    assert ids(api.get("/v2.0/subnetpools?name=a"), "subnetpools") == [a["id"]]
    assert ids(api.get("/v2.0/subnetpools?tags=red"), "subnetpools") == [a["id"]]
    assert ids(api.get("/v2.0/subnetpools?sort_key=name&sort_dir=desc"), "subnetpools") == [b["id"], a["id"]]
    page = api.get("/v2.0/subnetpools?limit=1&sort_key=name").json()
    assert [p["id"] for p in page["subnetpools"]] == [a["id"]]
    assert page["subnetpools_links"][0]["rel"] == "next"
    assert api.put(f"/v2.0/subnetpools/{a['id']}/tags/blue").status_code == 201
    assert api.get(f"/v2.0/subnetpools/{a['id']}").json()["subnetpool"]["tags"] == ["blue", "red"]
    assert_fault(api.get("/v2.0/subnetpools?bogus=1"), 400)


def test_pool_if_match_and_not_found(api: Api) -> None:
    pool = _pool(api, ["10.1.0.0/16"])
    r = api.put(f"/v2.0/subnetpools/{pool['id']}", json={"subnetpool": {"name": "x"}},
                headers={"If-Match": "revision_number=7"})
    assert_fault(r, 412)
    assert api.delete(f"/v2.0/subnetpools/{pool['id']}").status_code == 204
    assert_fault(api.get(f"/v2.0/subnetpools/{pool['id']}"), 404, "SubnetPoolNotFound")


# ---------------------------------------------------------------- subnets from a pool
def test_subnet_by_prefixlen_and_default_prefixlen(api: Api) -> None:
    pool = _pool(api, ["10.50.0.0/16"], default_prefixlen=24, min_prefixlen=20, max_prefixlen=28)
    net = api.network()
    r = _from_pool(api, net["id"], pool["id"])
    assert r.status_code == 201, r.text
    first = r.json()["subnet"]
    assert first["cidr"] == "10.50.0.0/24" and first["subnetpool_id"] == pool["id"]
    assert first["gateway_ip"] == "10.50.0.1"
    assert first["allocation_pools"] == [{"start": "10.50.0.2", "end": "10.50.0.254"}]
    assert "prefixlen" not in first and "use_default_subnetpool" not in first
    second = _from_pool(api, net["id"], pool["id"], prefixlen=26).json()["subnet"]
    # best fit: the smallest free block that holds a /26
    assert second["cidr"] == "10.50.1.0/26"
    third = _from_pool(api, net["id"], pool["id"], prefixlen=26).json()["subnet"]
    assert third["cidr"] == "10.50.1.64/26"
    assert_fault(_from_pool(api, net["id"], pool["id"], prefixlen=29), 400, "MaxPrefixSubnetAllocationError")
    assert_fault(_from_pool(api, net["id"], pool["id"], prefixlen=19), 400, "MinPrefixSubnetAllocationError")
    listed = {s["id"] for s in api.get(f"/v2.0/subnets?subnetpool_id={pool['id']}").json()["subnets"]}
    assert listed == {first["id"], second["id"], third["id"]}


def test_subnet_with_a_cidr_inside_the_pool(api: Api) -> None:
    pool = _pool(api, ["10.60.0.0/16"], default_prefixlen=24)
    net = api.network()
    r = _from_pool(api, net["id"], pool["id"], cidr="10.60.7.0/24", gateway_ip="10.60.7.254")
    assert r.status_code == 201, r.text
    assert r.json()["subnet"]["cidr"] == "10.60.7.0/24"
    assert r.json()["subnet"]["gateway_ip"] == "10.60.7.254"
    # taken, outside the pool, and given together with prefixlen
    net2 = api.network()
    assert_fault(_from_pool(api, net2["id"], pool["id"], cidr="10.60.7.0/25"), 400, "SubnetAllocationError")
    assert_fault(_from_pool(api, net2["id"], pool["id"], cidr="10.61.0.0/24"), 400, "SubnetAllocationError")
    assert_fault(_from_pool(api, net2["id"], pool["id"], cidr="10.60.8.0/24", prefixlen=24), 400)
    # the next automatic allocation skips the taken block, best fit: the smallest free block left beside it
    assert _from_pool(api, net2["id"], pool["id"]).json()["subnet"]["cidr"] == "10.60.6.0/24"


def test_subnet_from_pool_errors(api: Api) -> None:
    pool = _pool(api, ["10.70.0.0/24"], default_prefixlen=25)
    net = api.network()
    assert_fault(_from_pool(api, net["id"], None), 400)  # neither cidr nor pool
    assert_fault(_from_pool(api, net["id"], pool["id"], version=6), 400)
    assert_fault(_from_pool(api, net["id"], "6b5b1e38-9a16-4cf1-9b52-0d1a8c0e9d11"), 404, "SubnetPoolNotFound")
    assert_fault(_from_pool(api, net["id"], pool["id"], allocation_pools=[{"start": "10.70.0.5",
                                                                           "end": "10.70.0.9"}]), 400)
    assert _from_pool(api, net["id"], pool["id"]).status_code == 201
    assert _from_pool(api, net["id"], pool["id"]).status_code == 201
    assert_fault(_from_pool(api, net["id"], pool["id"]), 409, "SubnetAllocationError")  # exhausted
    # a network's subnets of one IP version come from one pool
    other = api.network()
    assert api.subnet(other["id"], "10.80.0.0/24")
    assert_fault(_from_pool(api, other["id"], _pool(api, ["10.90.0.0/16"], default_prefixlen=24)["id"]), 400,
                 "NetworkSubnetPoolAffinityError")
    assert len(api.get(f"/v2.0/subnets?network_id={other['id']}").json()["subnets"]) == 1


def test_pool_in_use_cannot_be_deleted_and_frees_on_subnet_delete(api: Api) -> None:
    pool = _pool(api, ["10.71.0.0/24"], default_prefixlen=24)
    net = api.network()
    sub = _from_pool(api, net["id"], pool["id"]).json()["subnet"]
    assert_fault(api.delete(f"/v2.0/subnetpools/{pool['id']}"), 400, "SubnetPoolDeleteError")
    assert_fault(_from_pool(api, net["id"], pool["id"]), 409)
    assert api.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert _from_pool(api, net["id"], pool["id"]).json()["subnet"]["cidr"] == "10.71.0.0/24"


def test_pool_quota_counts_addresses_per_project(api: Api) -> None:
    pool = _pool(api, ["10.72.0.0/16"], default_prefixlen=24, default_quota=512, shared=True)
    alice = api.as_("alice")
    net = alice.network()
    assert _from_pool(alice, net["id"], pool["id"]).status_code == 201
    assert _from_pool(alice, net["id"], pool["id"]).status_code == 201
    assert_fault(_from_pool(alice, net["id"], pool["id"], prefixlen=30), 409, "SubnetPoolQuotaExceeded")
    bob = api.as_("bob")  # the quota is per project
    assert _from_pool(bob, bob.network()["id"], pool["id"]).status_code == 201


def test_pool_quota_counts_ipv6_in_64s(api: Api) -> None:
    pool = _pool(api, ["2001:db8::/48"], default_quota=2)
    net = api.network()
    assert _from_pool(api, net["id"], pool["id"], version=6).status_code == 201
    assert _from_pool(api, net["id"], pool["id"], version=6).status_code == 201
    assert_fault(_from_pool(api, net["id"], pool["id"], version=6), 409, "SubnetPoolQuotaExceeded")


# ---------------------------------------------------------------- default pools
def test_default_pools(api: Api) -> None:
    net = api.network()
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                   "use_default_subnetpool": True}})
    assert_fault(r, 400)  # no default pool yet
    v4 = _pool(api, ["10.73.0.0/16"], is_default=True, default_prefixlen=26)
    assert v4["is_default"] is True
    assert_fault(api.post("/v2.0/subnetpools", json={"subnetpool": {"name": "d2", "prefixes": ["10.74.0.0/16"],
                                                                     "is_default": True}}), 400, "InvalidInput")
    v6 = _pool(api, ["2001:db8:1::/48"], is_default=True)  # one per IP version
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                   "use_default_subnetpool": True}})
    assert r.status_code == 201, r.text
    assert r.json()["subnet"]["subnetpool_id"] == v4["id"] and r.json()["subnet"]["cidr"] == "10.73.0.0/26"
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 6,
                                                   "use_default_subnetpool": True}})
    assert r.status_code == 201 and r.json()["subnet"]["subnetpool_id"] == v6["id"]
    r = api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                   "use_default_subnetpool": True, "subnetpool_id": v4["id"]}})
    assert_fault(r, 400)
    # a default pool the caller cannot see (not shared, not its own) is no default for it
    member = api.as_("carol")
    r = member.post("/v2.0/subnets", json={"subnet": {"network_id": member.network()["id"], "ip_version": 4,
                                                      "use_default_subnetpool": True}})
    assert_fault(r, 400)
    # only an admin marks a pool default
    r = member.post("/v2.0/subnetpools", json={"subnetpool": {"name": "m", "prefixes": ["10.75.0.0/16"],
                                                              "is_default": True}})
    assert_fault(r, 403)
    mine = _pool(member, ["10.75.0.0/16"])
    assert_fault(member.put(f"/v2.0/subnetpools/{mine['id']}", json={"subnetpool": {"is_default": True}}), 403)


# ---------------------------------------------------------------- prefix operations and onboarding
def test_add_and_remove_prefixes(api: Api) -> None:
    pool = _pool(api, ["10.76.0.0/24"], default_prefixlen=24)
    path = f"/v2.0/subnetpools/{pool['id']}"
    r = api.put(f"{path}/add_prefixes", json={"prefixes": ["10.76.1.0/24", "10.77.0.0/24"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"prefixes": ["10.76.0.0/23", "10.77.0.0/24"]}
    assert_fault(api.put(f"{path}/add_prefixes", json={"prefixes": ["2001:db8::/64"]}), 400, "PrefixVersionMismatch")
    assert_fault(api.put(f"{path}/add_prefixes", json={"prefixes": "10.0.0.0/8"}), 400)
    net = api.network()
    sub = _from_pool(api, net["id"], pool["id"], cidr="10.77.0.0/24").json()["subnet"]
    assert_fault(api.put(f"{path}/remove_prefixes", json={"prefixes": ["10.77.0.0/24"]}), 400,
                 "IllegalSubnetPoolPrefixUpdate")
    r = api.put(f"{path}/remove_prefixes", json={"prefixes": ["10.76.0.0/24"]})
    assert r.status_code == 200 and r.json() == {"prefixes": ["10.76.1.0/24", "10.77.0.0/24"]}
    shown = api.get(path).json()["subnetpool"]
    assert shown["prefixes"] == ["10.76.1.0/24", "10.77.0.0/24"] and shown["revision_number"] == 3
    assert api.get(f"/v2.0/subnets/{sub['id']}").status_code == 200
    other = api.as_("mallory")
    assert_fault(other.put(f"{path}/add_prefixes", json={"prefixes": ["10.78.0.0/24"]}), 404, "SubnetPoolNotFound")


def test_onboard_network_subnets(api: Api) -> None:
    pool = _pool(api, ["10.79.0.0/24"], min_prefixlen=16)
    net = api.network()
    a = api.subnet(net["id"], "10.80.1.0/24")
    b = api.subnet(net["id"], "10.80.2.0/24")
    v6 = api.subnet(net["id"], "2001:db8:5::/64")
    r = api.put(f"/v2.0/subnetpools/{pool['id']}/onboard_network_subnets", json={"network_id": net["id"]})
    assert r.status_code == 200, r.text
    assert sorted(r.json(), key=lambda x: x["cidr"]) == [{"id": a["id"], "cidr": a["cidr"]},
                                                         {"id": b["id"], "cidr": b["cidr"]}]
    assert api.get(f"/v2.0/subnets/{a['id']}").json()["subnet"]["subnetpool_id"] == pool["id"]
    assert api.get(f"/v2.0/subnets/{v6['id']}").json()["subnet"]["subnetpool_id"] is None
    assert api.get(f"/v2.0/subnetpools/{pool['id']}").json()["subnetpool"]["prefixes"] == [
        "10.79.0.0/24", "10.80.1.0/24", "10.80.2.0/24"]
    # a subnet that overlaps what the pool has handed out is refused
    other = _pool(api, ["10.80.0.0/16"], min_prefixlen=16)
    net2 = api.network()
    _from_pool(api, net2["id"], other["id"], cidr="10.80.1.0/24")
    net3 = api.network()
    api.subnet(net3["id"], "10.80.1.0/25")
    r = api.put(f"/v2.0/subnetpools/{other['id']}/onboard_network_subnets", json={"network_id": net3["id"]})
    assert_fault(r, 400, "IllegalSubnetPoolUpdate")
    assert_fault(api.put(f"/v2.0/subnetpools/{pool['id']}/onboard_network_subnets", json={}), 400)
    assert_fault(api.put(f"/v2.0/subnetpools/{pool['id']}/onboard_network_subnets",
                         json={"network_id": "6b5b1e38-9a16-4cf1-9b52-0d1a8c0e9d11"}), 404, "NetworkNotFound")


# ---------------------------------------------------------------- address scopes
def test_address_scope_crud_and_validation(api: Api) -> None:
    r = api.post("/v2.0/address-scopes", json={"address_scope": {"name": "s", "ip_version": 4}})
    assert r.status_code == 201, r.text
    scope = r.json()["address_scope"]
    assert {"id", "name", "ip_version", "shared", "project_id", "tenant_id", "tags", "revision_number"} <= set(scope)
    assert scope["shared"] is False and scope["ip_version"] == 4
    assert_fault(api.post("/v2.0/address-scopes", json={"address_scope": {"name": "s", "ip_version": 5}}), 400)
    assert_fault(api.post("/v2.0/address-scopes", json={"address_scope": {"name": "s"}}), 400)
    r = api.put(f"/v2.0/address-scopes/{scope['id']}", json={"address_scope": {"name": "t", "shared": True}})
    assert r.status_code == 200 and r.json()["address_scope"]["shared"] is True
    r = api.put(f"/v2.0/address-scopes/{scope['id']}", json={"address_scope": {"shared": False}})
    assert_fault(r, 400, "AddressScopeUpdateError")
    assert_fault(api.put(f"/v2.0/address-scopes/{scope['id']}", json={"address_scope": {"ip_version": 6}}), 400)
    assert ids(api.get("/v2.0/address-scopes?ip_version=4"), "address_scopes") == [scope["id"]]
    assert ids(api.get("/v2.0/address-scopes?ip_version=6"), "address_scopes") == []
    assert api.delete(f"/v2.0/address-scopes/{scope['id']}").status_code == 204
    assert_fault(api.get(f"/v2.0/address-scopes/{scope['id']}"), 404, "AddressScopeNotFound")


def test_pools_in_a_scope(api: Api) -> None:
    scope = api.post("/v2.0/address-scopes",
                     json={"address_scope": {"name": "s", "ip_version": 4}}).json()["address_scope"]
    pool = _pool(api, ["10.81.0.0/16"], address_scope_id=scope["id"], default_prefixlen=24)
    assert pool["address_scope_id"] == scope["id"]
    r = api.post("/v2.0/subnetpools", json={"subnetpool": {"name": "o", "prefixes": ["10.81.128.0/24"],
                                                           "address_scope_id": scope["id"]}})
    assert_fault(r, 409, "AddressScopePrefixConflict")
    r = api.post("/v2.0/subnetpools", json={"subnetpool": {"name": "v6", "prefixes": ["2001:db8::/48"],
                                                           "address_scope_id": scope["id"]}})
    assert_fault(r, 400, "IllegalSubnetPoolIpVersionAssociationToAddressScope")
    assert_fault(api.delete(f"/v2.0/address-scopes/{scope['id']}"), 409, "AddressScopeInUse")
    # a network reports the scope of its subnets' pool
    net = api.network()
    assert net["ipv4_address_scope"] is None and net["ipv6_address_scope"] is None
    _from_pool(api, net["id"], pool["id"])
    shown = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert shown["ipv4_address_scope"] == scope["id"] and shown["ipv6_address_scope"] is None
    # moving the pool out of the scope moves the network out too
    r = api.put(f"/v2.0/subnetpools/{pool['id']}", json={"subnetpool": {"address_scope_id": None}})
    assert r.status_code == 200, r.text
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["ipv4_address_scope"] is None
    assert api.delete(f"/v2.0/address-scopes/{scope['id']}").status_code == 204


def test_shared_pools_and_scopes_are_visible_to_every_project(api: Api) -> None:
    scope = api.post("/v2.0/address-scopes", json={"address_scope": {"name": "pub", "ip_version": 4,
                                                                     "shared": True}}).json()["address_scope"]
    shared = _pool(api, ["10.82.0.0/16"], shared=True, default_prefixlen=24, address_scope_id=scope["id"])
    private = _pool(api, ["10.83.0.0/16"], default_prefixlen=24)
    dave = api.as_("dave")
    assert ids(dave.get("/v2.0/subnetpools"), "subnetpools") == [shared["id"]]
    assert ids(dave.get("/v2.0/address-scopes"), "address_scopes") == [scope["id"]]
    assert_fault(dave.get(f"/v2.0/subnetpools/{private['id']}"), 404, "SubnetPoolNotFound")
    net = dave.network()
    r = _from_pool(dave, net["id"], shared["id"])
    assert r.status_code == 201, r.text
    assert r.json()["subnet"]["project_id"] == "dave"
    assert_fault(_from_pool(dave, dave.network()["id"], private["id"]), 404, "SubnetPoolNotFound")
    # only the owner (or an admin) changes or deletes a shared pool
    assert_fault(dave.put(f"/v2.0/subnetpools/{shared['id']}", json={"subnetpool": {"name": "x"}}), 403)
    assert_fault(dave.delete(f"/v2.0/address-scopes/{scope['id']}"), 403)
    # members may not create shared pools or scopes
    assert_fault(dave.post("/v2.0/subnetpools", json={"subnetpool": {"name": "s", "prefixes": ["10.9.0.0/16"],
                                                                     "shared": True}}), 403)
    assert_fault(dave.post("/v2.0/address-scopes", json={"address_scope": {"name": "s", "ip_version": 4,
                                                                           "shared": True}}), 403)
    # a shared scope (a wildcard access_as_shared policy) is joined by another project's pool, as in Neutron
    # with rbac-address-scope
    r = dave.post("/v2.0/subnetpools", json={"subnetpool": {"name": "joined", "prefixes": ["10.89.0.0/16"],
                                                            "address_scope_id": scope["id"]}})
    assert r.status_code == 201, r.text
    assert r.json()["subnetpool"]["address_scope_id"] == scope["id"]
    # and a pool in an admin's shared scope is not changed by its (non-admin) owner
    own = _pool(dave, ["10.84.0.0/16"])
    r = api.put(f"/v2.0/subnetpools/{own['id']}", json={"subnetpool": {"address_scope_id": scope["id"]}})
    assert r.status_code == 200, r.text
    r = dave.put(f"/v2.0/subnetpools/{own['id']}", json={"subnetpool": {"prefixes": ["10.84.0.0/16", "10.87.0.0/16"]}})
    assert_fault(r, 400, "IllegalSubnetPoolUpdate")
    # another project's scope that is not shared is not found
    hidden = api.post("/v2.0/address-scopes", json={"address_scope": {"name": "p", "ip_version": 4}}).json()
    r = dave.post("/v2.0/subnetpools", json={"subnetpool": {"name": "x", "prefixes": ["10.88.0.0/16"],
                                                            "address_scope_id": hidden["address_scope"]["id"]}})
    assert_fault(r, 404, "AddressScopeNotFound")


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"address-scope", "subnet_allocation", "default-subnetpools", "subnetpool-prefix-ops", "subnet_onboard",
            "subnet-service-types", "ip-substring-filtering", "network-ip-availability"} <= aliases


def test_the_l3_view_carries_each_router_ports_address_scope(client: SyncClient, api: Api) -> None:
    scope = api.post("/v2.0/address-scopes", json={"address_scope": {"name": "s", "ip_version": 4}}).json()
    scope_id = scope["address_scope"]["id"]
    pool = _pool(api, ["10.85.0.0/16"], default_prefixlen=24, address_scope_id=scope_id)
    scoped_net, plain_net = api.network(), api.network()
    scoped = _from_pool(api, scoped_net["id"], pool["id"]).json()["subnet"]
    plain = api.subnet(plain_net["id"], "10.86.0.0/24")
    r = api.create("routers", name="r")
    for sub in (scoped, plain):
        assert add_interface(api, r["id"], subnet_id=sub["id"]).status_code == 200
    report_lb(client, "scope-host")
    report_l3(client, "scope-host")
    (seen,) = l3_view(client, "scope-host").routers
    scopes = {i.addresses[0]: i.ipv4_address_scope for i in seen.interfaces}
    assert scopes == {"10.85.0.1/24": scope_id, "10.86.0.1/24": None}
    # onboarding the other subnet into the scoped pool puts that interface in the scope too
    r2 = api.put(f"/v2.0/subnetpools/{pool['id']}/onboard_network_subnets", json={"network_id": plain_net["id"]})
    assert r2.status_code == 200, r2.text
    (seen,) = l3_view(client, "scope-host").routers
    assert {i.ipv4_address_scope for i in seen.interfaces} == {scope_id}


def test_prefix_lengths_are_strings_but_filter_and_sort_as_numbers(api: Api) -> None:
    a = _pool(api, ["10.11.12.0/24"], name="a", min_prefixlen="29")
    assert (a["min_prefixlen"], a["default_prefixlen"], a["max_prefixlen"]) == ("29", "29", "32")
    b = _pool(api, ["10.12.0.0/16"], name="b", min_prefixlen=9)
    assert ids(api.get("/v2.0/subnetpools?min_prefixlen=29"), "subnetpools") == [a["id"]]
    assert ids(api.get("/v2.0/subnetpools?sort_key=min_prefixlen&sort_dir=asc"), "subnetpools") == [b["id"], a["id"]]
    r = api.put(f"/v2.0/subnetpools/{a['id']}", json={"subnetpool": {"max_prefixlen": "30", "min_prefixlen": "28"}})
    assert r.status_code == 200, r.text
    assert (r.json()["subnetpool"]["min_prefixlen"], r.json()["subnetpool"]["max_prefixlen"]) == ("28", "30")


def test_a_shared_default_pool_serves_every_project(api: Api) -> None:
    pool = _pool(api, ["10.89.0.0/16"], is_default=True, shared=True, default_prefixlen=24)
    member = api.as_("grace")
    r = member.post("/v2.0/subnets", json={"subnet": {"network_id": member.network()["id"], "ip_version": 4,
                                                      "use_default_subnetpool": True}})
    assert r.status_code == 201, r.text
    assert r.json()["subnet"]["subnetpool_id"] == pool["id"] and r.json()["subnet"]["cidr"] == "10.89.0.0/24"
