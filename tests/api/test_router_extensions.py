"""Router extensions of issue 15: conntrack helpers (l3-conntrack-helper, expose-l3-conntrack-helper), floating
IP pools (floatingip-pools) and fixed router port addresses (l3-port-ip-change-not-allowed), as an API user
sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fermion.rpc.contracts import L3View, StateReport, ViewRequest, decode, encode
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.neutron import assert_fault

L3 = "L3 agent"


def helpers_path(router_id: str, ident: str | None = None) -> str:
    return f"/v2.0/routers/{router_id}/conntrack_helpers" + (f"/{ident}" if ident else "")


def add_helper(api: Api, rid: str, /, **attrs: Any) -> Any:
    return api.post(helpers_path(rid), json={"conntrack_helper": attrs})


# ---------------------------------------------------------------- conntrack helpers
def test_conntrack_helpers_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"l3-conntrack-helper", "expose-l3-conntrack-helper"} <= aliases
    ext = api.get("/v2.0/extensions/l3-conntrack-helper").json()["extension"]
    assert ext["name"] == "L3 Conntrack helper"


def test_conntrack_helper_lifecycle_and_exposure_on_the_router(tenant: Api) -> None:
    router = tenant.create("routers", name="r1")
    assert router["conntrack_helpers"] == []
    r = add_helper(tenant, router["id"], protocol="TCP", port=21, helper="ftp")
    assert r.status_code == 201, r.text
    helper = r.json()["conntrack_helper"]
    assert set(helper) == {"id", "protocol", "port", "helper"}  # project_id is never shown
    assert (helper["protocol"], helper["port"], helper["helper"]) == ("tcp", 21, "ftp")
    seen = tenant.get(f"/v2.0/routers/{router['id']}").json()["router"]
    assert seen["conntrack_helpers"] == [{"protocol": "tcp", "port": 21, "helper": "ftp"}]
    assert seen["revision_number"] > router["revision_number"]

    shown = tenant.get(helpers_path(router["id"], helper["id"])).json()["conntrack_helper"]
    assert shown == helper
    assert tenant.get(helpers_path(router["id"], helper["id"]), params={"fields": "port"}).json() == {
        "conntrack_helper": {"port": 21}}

    r = tenant.put(helpers_path(router["id"], helper["id"]), json={"conntrack_helper": {"port": 2121}})
    assert r.status_code == 200, r.text
    assert r.json()["conntrack_helper"] == {**helper, "port": 2121}
    r = add_helper(tenant, router["id"], protocol="udp", port=69, helper="tftp")
    assert r.status_code == 201
    listed = tenant.get(helpers_path(router["id"]), params={"sort_key": "port", "sort_dir": "desc"}).json()
    assert [h["port"] for h in listed["conntrack_helpers"]] == [2121, 69]
    only = tenant.get(helpers_path(router["id"]), params={"helper": "tftp"}).json()["conntrack_helpers"]
    assert [h["helper"] for h in only] == ["tftp"]
    page = tenant.get(helpers_path(router["id"]), params={"limit": 1}).json()
    assert len(page["conntrack_helpers"]) == 1 and page["conntrack_helpers_links"][0]["rel"] == "next"

    assert tenant.delete(helpers_path(router["id"], helper["id"])).status_code == 204
    assert_fault(tenant.get(helpers_path(router["id"], helper["id"])), 404, "ConntrackHelperNotFound")
    assert_fault(tenant.delete(helpers_path(router["id"], helper["id"])), 404, "ConntrackHelperNotFound")
    left = tenant.get(f"/v2.0/routers/{router['id']}").json()["router"]["conntrack_helpers"]
    assert left == [{"protocol": "udp", "port": 69, "helper": "tftp"}]
    # deleting the router takes its helpers along
    assert tenant.delete(f"/v2.0/routers/{router['id']}").status_code == 204
    assert_fault(tenant.get(helpers_path(router["id"])), 404, "RouterNotFound")


@pytest.mark.parametrize(("attrs", "type_"), [
    ({"protocol": "tcp", "port": 21, "helper": "nope"}, "ConntrackHelperNotAllowed"),
    ({"protocol": "udp", "port": 21, "helper": "ftp"}, "InvalidProtocolForHelper"),
    ({"protocol": "tcp", "port": 0, "helper": "ftp"}, None),
    ({"protocol": "tcp", "port": 65536, "helper": "ftp"}, None),
    ({"protocol": "tcp", "port": "x", "helper": "ftp"}, None),
    ({"protocol": "bogus", "port": 21, "helper": "ftp"}, None),
    ({"protocol": "tcp", "port": 21}, None),
    ({"protocol": "tcp", "port": 21, "helper": "ftp", "router_id": "x"}, None),
    ({"protocol": "tcp", "port": 21, "helper": "x" * 65}, None),
])
def test_conntrack_helper_validation(tenant: Api, attrs: dict[str, Any], type_: str | None) -> None:
    router = tenant.create("routers")
    assert_fault(add_helper(tenant, router["id"], **attrs), 400, type_)
    assert tenant.get(helpers_path(router["id"])).json()["conntrack_helpers"] == []


def test_conntrack_helper_duplicates_and_errors(tenant: Api) -> None:
    router = tenant.create("routers")
    first = add_helper(tenant, router["id"], protocol="tcp", port=21, helper="ftp").json()["conntrack_helper"]
    err = assert_fault(add_helper(tenant, router["id"], protocol="tcp", port=21, helper="ftp"), 400, "BadRequest")
    assert "duplicate conntrack helper" in err["message"]
    other = add_helper(tenant, router["id"], protocol="tcp", port=2121, helper="ftp").json()["conntrack_helper"]
    assert_fault(tenant.put(helpers_path(router["id"], other["id"]), json={"conntrack_helper": {"port": 21}}),
                 400, "BadRequest")
    assert_fault(tenant.put(helpers_path(router["id"], first["id"]), json={"conntrack_helper": {"protocol": "udp"}}),
                 400, "InvalidProtocolForHelper")
    assert_fault(tenant.put(helpers_path(router["id"], first["id"]), json={"conntrack_helper": {"id": "x"}}), 400)
    missing = "00000000-0000-0000-0000-000000000000"
    assert_fault(add_helper(tenant, missing, protocol="tcp", port=21, helper="ftp"), 404, "RouterNotFound")
    assert_fault(tenant.get(helpers_path(router["id"], missing)), 404, "ConntrackHelperNotFound")
    # a helper is found only under its own router
    second = tenant.create("routers")
    assert_fault(tenant.get(helpers_path(second["id"], first["id"])), 404, "ConntrackHelperNotFound")
    assert_fault(tenant.post(helpers_path(router["id"]), json={"helper": {}}), 400)
    assert tenant.put(helpers_path(router["id"]), json={}).status_code == 405


def test_conntrack_helper_policy(tenant: Api, api: Api) -> None:
    router = tenant.create("routers")
    helper = add_helper(tenant, router["id"], protocol="tcp", port=21, helper="ftp").json()["conntrack_helper"]
    stranger = api.as_("tenant-b", "member")
    assert_fault(stranger.get(helpers_path(router["id"])), 404, "RouterNotFound")
    assert_fault(add_helper(stranger, router["id"], protocol="tcp", port=22, helper="ftp"), 404, "RouterNotFound")
    assert_fault(stranger.delete(helpers_path(router["id"], helper["id"])), 404, "RouterNotFound")
    reader = api.as_("tenant-a", "reader")
    assert [h["id"] for h in reader.get(helpers_path(router["id"])).json()["conntrack_helpers"]] == [helper["id"]]
    assert_fault(add_helper(reader, router["id"], protocol="tcp", port=22, helper="ftp"), 403, "PolicyNotAuthorized")
    assert_fault(reader.delete(helpers_path(router["id"], helper["id"])), 403, "PolicyNotAuthorized")
    admin = api.as_("admin-project", "admin")
    assert admin.get(helpers_path(router["id"], helper["id"])).status_code == 200
    assert add_helper(admin, router["id"], protocol="udp", port=69, helper="tftp").status_code == 201


def test_allowed_helpers_come_from_configuration(tmp_path: Path) -> None:
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, {"l3": {"conntrack_helpers": ("tftp:udp", "sip:udp", "sip:tcp")}}) as c:
        api = Api(c, "p1", "member")
        router = api.create("routers")
        assert_fault(add_helper(api, router["id"], protocol="tcp", port=21, helper="ftp"), 400,
                     "ConntrackHelperNotAllowed")
        assert add_helper(api, router["id"], protocol="udp", port=5060, helper="sip").status_code == 201
        assert add_helper(api, router["id"], protocol="tcp", port=5060, helper="sip").status_code == 201
        assert_fault(add_helper(api, router["id"], protocol="tcp", port=69, helper="tftp"), 400,
                     "InvalidProtocolForHelper")


def test_the_l3_agent_view_carries_the_helpers(client: Any, tenant: Api) -> None:
    msg = StateReport(host="net-1", agent_type=L3, binary="fermion-l3-agent", topic="l3_agent",
                      configurations={"routers": 0}, start_flag=True)
    client.app.transport.call("report_state", encode(msg))
    router = tenant.create("routers")
    add_helper(tenant, router["id"], protocol="udp", port=69, helper="tftp")
    view = decode(L3View, client.app.transport.call("get_l3_view", encode(ViewRequest("net-1", L3))))
    (mine,) = [r for r in view.routers if r.id == router["id"]]
    assert [(h.protocol, h.port, h.helper) for h in mine.conntrack_helpers] == [("udp", 69, "tftp")]


# ---------------------------------------------------------------- floating IP pools
def test_floatingip_pools_list_every_ipv4_subnet_of_external_networks(admin: Api, tenant: Api) -> None:
    assert "floatingip-pools" in {e["alias"] for e in admin.get("/v2.0/extensions").json()["extensions"]}
    public = admin.network(name="public", **{"router:external": True})
    v4 = admin.subnet(public["id"], "198.18.100.0/24", name="public-v4")
    v4b = admin.subnet(public["id"], "198.18.101.0/24", name="public-v4b")
    admin.subnet(public["id"], "2001:db8:100::/64")  # IPv6: no floating IPs from it (no fip64)
    private = tenant.network(name="private")
    tenant.subnet(private["id"], "10.0.0.0/24")
    r = tenant.get("/v2.0/floatingip_pools")
    assert r.status_code == 200, r.text
    pools = sorted(r.json()["floatingip_pools"], key=lambda p: p["cidr"])
    assert pools == [
        {"subnet_id": v4["id"], "subnet_name": "public-v4", "network_id": public["id"], "cidr": "198.18.100.0/24",
         "project_id": "tenant-a", "tenant_id": "tenant-a"},
        {"subnet_id": v4b["id"], "subnet_name": "public-v4b", "network_id": public["id"],
         "cidr": "198.18.101.0/24", "project_id": "tenant-a", "tenant_id": "tenant-a"}]
    assert tenant.get("/v2.0/floatingip-pools").json() == r.json()
    only = tenant.get("/v2.0/floatingip_pools", params=[("fields", "cidr"), ("fields", "subnet_id")]).json()
    assert sorted(only["floatingip_pools"], key=lambda p: p["cidr"])[0] == {"cidr": "198.18.100.0/24",
                                                                            "subnet_id": v4["id"]}
    assert tenant.post("/v2.0/floatingip_pools", json={}).status_code == 404
    assert tenant.get(f"/v2.0/floatingip_pools/{v4['id']}").status_code == 404


# ---------------------------------------------------------------- l3-port-ip-change-not-allowed
def test_router_interface_addresses_cannot_change(admin: Api, tenant: Api) -> None:
    assert "l3-port-ip-change-not-allowed" in {e["alias"] for e in
                                              admin.get("/v2.0/extensions").json()["extensions"]}
    net = tenant.network()
    sub = tenant.subnet(net["id"], "10.5.0.0/24")
    router = tenant.create("routers")
    port_id = tenant.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                         json={"subnet_id": sub["id"]}).json()["port_id"]
    for who in (tenant, admin):
        err = assert_fault(who.put(f"/v2.0/ports/{port_id}", json={"port": {
            "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.5.0.7"}]}}), 400, "BadRequest")
        assert port_id in err["message"]
    port = tenant.get(f"/v2.0/ports/{port_id}").json()["port"]
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.5.0.1"}]
    # the same addresses again, or other attributes, are fine
    same = tenant.put(f"/v2.0/ports/{port_id}", json={"port": {"fixed_ips": port["fixed_ips"], "name": "gw"}})
    assert same.status_code == 200, same.text
    # an ordinary port still changes its address
    plain = tenant.port(net["id"])
    moved = tenant.put(f"/v2.0/ports/{plain['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.5.0.9"}]}})
    assert moved.status_code == 200 and moved.json()["port"]["fixed_ips"][0]["ip_address"] == "10.5.0.9"


# ---------------------------------------------------------------- flavors, service profiles, service providers
SINGLE_NODE = "neutron.services.l3_router.service_providers.single_node.SingleNodeDriver"


def test_service_providers(tenant: Api) -> None:
    r = tenant.get("/v2.0/service-providers")
    assert r.status_code == 200, r.text
    assert r.json() == {"service_providers": [{"service_type": "L3_ROUTER_NAT", "name": "single_node",
                                               "default": False}]}
    assert tenant.get("/v2.0/service-providers", params={"service_type": "LOADBALANCER"}).json() == {
        "service_providers": []}
    assert tenant.get("/v2.0/service-providers", params={"fields": "name"}).json() == {
        "service_providers": [{"name": "single_node"}]}


def test_flavor_and_service_profile_lifecycle(admin: Api, tenant: Api) -> None:
    aliases = {e["alias"] for e in admin.get("/v2.0/extensions").json()["extensions"]}
    assert {"flavors", "service-type", "l3-flavors"} <= aliases
    r = admin.post("/v2.0/flavors", json={"flavor": {"name": "gold", "description": "fast",
                                                     "service_type": "FLAVORS"}})
    assert r.status_code == 201, r.text
    flavor = r.json()["flavor"]
    assert flavor == {"id": flavor["id"], "name": "gold", "description": "fast", "service_type": "FLAVORS",
                      "enabled": True, "service_profiles": []}
    r = admin.post("/v2.0/service_profiles", json={"service_profile": {"description": "sp",
                                                                       "metainfo": '{"data": "value"}'}})
    assert r.status_code == 201, r.text
    profile = r.json()["service_profile"]
    assert profile == {"id": profile["id"], "description": "sp", "driver": "", "metainfo": '{"data": "value"}',
                       "enabled": True}
    # tenants see flavors, never profiles
    assert [f["id"] for f in tenant.get("/v2.0/flavors").json()["flavors"]] == [flavor["id"]]
    assert tenant.get("/v2.0/service_profiles").json()["service_profiles"] == []
    assert_fault(tenant.get(f"/v2.0/service_profiles/{profile['id']}"), 404, "ServiceProfileNotFound")
    assert_fault(tenant.post("/v2.0/flavors", json={"flavor": {"service_type": "FLAVORS"}}), 403)
    assert_fault(tenant.delete(f"/v2.0/flavors/{flavor['id']}"), 403)
    assert admin.get("/v2.0/flavors", params={"id": "33"}).json() == {"flavors": []}  # as tempest asks
    assert [f["name"] for f in admin.get("/v2.0/flavors", params={"enabled": "true"}).json()["flavors"]] == ["gold"]

    # bindings
    path = f"/v2.0/flavors/{flavor['id']}/service_profiles"
    r = admin.post(path, json={"service_profile": {"id": profile["id"]}})
    assert r.status_code == 201 and r.json() == {"service_profile": {"id": profile["id"]}}
    assert_fault(admin.post(path, json={"service_profile": {"id": profile["id"]}}), 409,
                 "FlavorServiceProfileBindingExists")
    assert admin.get(f"/v2.0/flavors/{flavor['id']}").json()["flavor"]["service_profiles"] == [profile["id"]]
    assert admin.get(f"{path}/{profile['id']}").json() == {"service_profile": {
        "service_profile_id": profile["id"], "flavor_id": flavor["id"]}}
    assert_fault(tenant.post(path, json={"service_profile": {"id": profile["id"]}}), 403)
    # a bound profile cannot change or go
    assert_fault(admin.put(f"/v2.0/service_profiles/{profile['id']}", json={"service_profile": {"enabled": False}}),
                 409, "ServiceProfileInUse")
    assert_fault(admin.delete(f"/v2.0/service_profiles/{profile['id']}"), 409, "ServiceProfileInUse")
    assert admin.delete(f"{path}/{profile['id']}").status_code == 204
    assert_fault(admin.delete(f"{path}/{profile['id']}"), 404, "FlavorServiceProfileBindingNotFound")
    r = admin.put(f"/v2.0/service_profiles/{profile['id']}", json={"service_profile": {"description": "new"}})
    assert r.status_code == 200 and r.json()["service_profile"]["description"] == "new"

    r = admin.put(f"/v2.0/flavors/{flavor['id']}", json={"flavor": {"name": "silver", "enabled": False}})
    assert r.status_code == 200 and (r.json()["flavor"]["name"], r.json()["flavor"]["enabled"]) == ("silver", False)
    assert_fault(admin.put(f"/v2.0/flavors/{flavor['id']}", json={"flavor": {"service_type": "L3_ROUTER_NAT"}}), 400)
    assert admin.delete(f"/v2.0/service_profiles/{profile['id']}").status_code == 204
    assert admin.delete(f"/v2.0/flavors/{flavor['id']}").status_code == 204
    assert_fault(admin.get(f"/v2.0/flavors/{flavor['id']}"), 404, "FlavorNotFound")


@pytest.mark.parametrize(("path", "body", "type_"), [
    ("flavors", {"flavor": {"service_type": "NOPE"}}, "InvalidFlavorServiceType"),
    ("flavors", {"flavor": {"name": "x"}}, None),
    ("flavors", {"flavor": {"service_type": "FLAVORS", "enabled": "maybe"}}, None),
    ("flavors", {"flavor": {"service_type": "FLAVORS", "id": "x"}}, None),
    ("service_profiles", {"service_profile": {}}, "ServiceProfileEmpty"),
    ("service_profiles", {"service_profile": {"driver": "no.such.Driver"}}, "ServiceProfileDriverNotFound"),
])
def test_flavor_validation(admin: Api, path: str, body: dict[str, Any], type_: str | None) -> None:
    status = 404 if type_ == "ServiceProfileDriverNotFound" else 400
    assert_fault(admin.post(f"/v2.0/{path}", json=body), status, type_)


def test_routers_with_flavors(admin: Api, tenant: Api) -> None:
    flavor = admin.post("/v2.0/flavors", json={"flavor": {"name": "l3", "service_type": "L3_ROUTER_NAT"}}
                        ).json()["flavor"]
    # no profile yet: the flavor leads to no provider
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"flavor_id": flavor["id"]}}), 404,
                 "FlavorServiceProfileBindingNotFound")
    profile = admin.post("/v2.0/service_profiles", json={"service_profile": {"driver": SINGLE_NODE}}
                         ).json()["service_profile"]
    admin.post(f"/v2.0/flavors/{flavor['id']}/service_profiles", json={"service_profile": {"id": profile["id"]}})
    assert admin.get(f"/v2.0/flavors/{flavor['id']}/next_providers").json() == {"next_providers": [
        {"provider": "single_node", "driver": SINGLE_NODE, "metainfo": ""}]}
    r = tenant.post("/v2.0/routers", json={"router": {"name": "flavored", "flavor_id": flavor["id"]}})
    assert r.status_code == 201, r.text
    router = r.json()["router"]
    assert router["flavor_id"] == flavor["id"]
    assert tenant.get("/v2.0/routers", params={"flavor_id": flavor["id"]}).json()["routers"][0]["id"] == router["id"]
    assert tenant.create("routers")["flavor_id"] is None
    assert_fault(tenant.put(f"/v2.0/routers/{router['id']}", json={"router": {"flavor_id": None}}), 400)
    assert_fault(admin.delete(f"/v2.0/flavors/{flavor['id']}"), 409, "FlavorInUse")
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"flavor_id": "nope"}}), 404, "FlavorNotFound")
    other = admin.post("/v2.0/flavors", json={"flavor": {"service_type": "FLAVORS"}}).json()["flavor"]
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"flavor_id": other["id"]}}), 400,
                 "InvalidFlavorServiceType")
    admin.put(f"/v2.0/flavors/{flavor['id']}", json={"flavor": {"enabled": False}})
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"flavor_id": flavor["id"]}}), 503, "FlavorDisabled")
    assert tenant.delete(f"/v2.0/routers/{router['id']}").status_code == 204
    assert admin.delete(f"/v2.0/flavors/{flavor['id']}").status_code == 204


# ---------------------------------------------------------------- auto-allocated topology
def default_pool(admin: Api) -> dict[str, Any]:
    """The default IPv4 subnet pool, shared: auto-allocated subnets are /24s of it, one after another."""
    return admin.create("subnetpools", name="auto", prefixes=["10.128.0.0/16"], default_prefixlen=24,
                        shared=True, is_default=True)


def topology_path(project: str) -> str:
    return f"/v2.0/auto-allocated-topology/{project}"


def default_external(admin: Api) -> dict[str, Any]:
    net = admin.network(name="public", is_default=True, **{"router:external": True})
    admin.subnet(net["id"], "198.18.110.0/24")
    return net


def test_is_default_marks_one_external_network(admin: Api, tenant: Api) -> None:
    assert "auto-allocated-topology" in {e["alias"] for e in admin.get("/v2.0/extensions").json()["extensions"]}
    assert admin.network()["is_default"] is False
    internal = admin.network(is_default=True)
    assert internal["is_default"] is False  # only an external network can be the default
    public = default_external(admin)
    assert public["is_default"] is True
    other = admin.network(**{"router:external": True})
    assert_fault(admin.put(f"/v2.0/networks/{other['id']}", json={"network": {"is_default": True}}), 409,
                 "DefaultExternalNetworkExists")
    assert_fault(admin.post("/v2.0/networks", json={"network": {"router:external": True, "is_default": True}}),
                 409, "DefaultExternalNetworkExists")
    assert [n["id"] for n in admin.get("/v2.0/networks", params={"is_default": "true"}).json()["networks"]] == [
        public["id"]]
    assert public["id"] not in [n["id"] for n in admin.get("/v2.0/networks",
                                                           params={"is_default": "false"}).json()["networks"]]
    assert_fault(tenant.post("/v2.0/networks", json={"network": {"is_default": True}}), 403)
    # no longer external: no longer the default; then another may be
    r = admin.put(f"/v2.0/networks/{public['id']}", json={"network": {"router:external": False}})
    assert r.status_code == 200 and r.json()["network"]["is_default"] is False
    r = admin.put(f"/v2.0/networks/{other['id']}", json={"network": {"is_default": True}})
    assert r.status_code == 200 and r.json()["network"]["is_default"] is True


def test_auto_allocation_without_default_pools_or_external_network_fails_as_neutron(admin: Api,
                                                                                     tenant: Api) -> None:
    err = assert_fault(tenant.get(topology_path("tenant-a")), 409, "AutoAllocationFailure")
    assert err["message"] == "Deployment error: No default router:external network."
    assert_fault(tenant.get(topology_path("tenant-a"), params={"fields": "dry-run"}), 409, "AutoAllocationFailure")
    default_external(admin)
    err = assert_fault(tenant.get(topology_path("tenant-a"), params={"fields": "dry-run"}), 409,
                       "AutoAllocationFailure")
    assert err["message"] == "Deployment error: No default subnetpools defined."
    err = assert_fault(tenant.get(topology_path("tenant-a")), 409, "AutoAllocationFailure")
    assert err["message"] == "Deployment error: Unable to provide tenant private network."
    mine = {"project_id": "tenant-a"}
    assert tenant.get("/v2.0/networks", params=mine).json()["networks"] == []  # nothing half-built
    assert tenant.get("/v2.0/routers").json()["routers"] == []


def test_auto_allocated_topology_is_built_once_and_torn_down(client: Any, admin: Api, tenant: Api) -> None:
    default_pool(admin)
    default_external(admin)
    assert tenant.get(topology_path("tenant-a"), params={"fields": "dry-run"}).json() == {
        "auto_allocated_topology": {"id": "dry-run=pass", "tenant_id": "tenant-a", "project_id": "tenant-a"}}
    assert_fault(tenant.get(topology_path("tenant-a"), params={"fields": "id"}), 400)
    r = tenant.get(topology_path("tenant-a"))
    assert r.status_code == 200, r.text
    topo = r.json()["auto_allocated_topology"]
    assert set(topo) == {"id", "tenant_id", "project_id"} and topo["tenant_id"] == "tenant-a"
    net = tenant.get(f"/v2.0/networks/{topo['id']}").json()["network"]
    assert (net["name"], net["admin_state_up"], net["shared"]) == ("auto_allocated_network", True, False)
    (subnet,) = tenant.get("/v2.0/subnets", params={"network_id": net["id"]}).json()["subnets"]
    assert (subnet["name"], subnet["cidr"]) == ("auto_allocated_subnet_v4", "10.128.0.0/24")
    (router,) = tenant.get("/v2.0/routers").json()["routers"]
    assert router["name"] == "auto_allocated_router" and router["external_gateway_info"] is not None
    ports = tenant.get("/v2.0/ports", params={"device_id": router["id"],
                                              "device_owner": "network:router_interface"}).json()["ports"]
    assert [p["fixed_ips"][0]["subnet_id"] for p in ports] == [subnet["id"]]
    # again, and with "None" for the caller's project: the same topology
    assert tenant.get(topology_path("tenant-a")).json()["auto_allocated_topology"] == topo
    assert tenant.get(topology_path("None")).json()["auto_allocated_topology"] == topo
    # another project's topology: only an admin may ask, and it is built for that project
    assert_fault(tenant.get(topology_path("tenant-b")), 403, "PolicyNotAuthorized")
    theirs = admin.get(topology_path("tenant-b")).json()["auto_allocated_topology"]
    assert theirs["tenant_id"] == "tenant-b" and theirs["id"] != topo["id"]
    assert admin.get(f"/v2.0/networks/{theirs['id']}").json()["network"]["project_id"] == "tenant-b"
    # an instance on it keeps DELETE from tearing it down
    vm = tenant.port(net["id"], device_owner="compute:nova")
    assert_fault(tenant.delete(topology_path("tenant-a")), 409, "NetworkInUse")
    assert tenant.delete(f"/v2.0/ports/{vm['id']}").status_code == 204
    assert tenant.delete(topology_path("tenant-a")).status_code == 204
    assert tenant.get("/v2.0/networks", params={"project_id": "tenant-a"}).json()["networks"] == []
    assert tenant.get("/v2.0/routers").json()["routers"] == []
    assert tenant.delete(topology_path("tenant-a")).status_code == 204  # nothing left: still fine
    assert tenant.get(topology_path("tenant-a")).json()["auto_allocated_topology"]["id"] != topo["id"]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=pytest.mark.mysql)])
def test_concurrent_requests_build_one_topology(tmp_path: Path, kind: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with servers.temporary_database(kind, tmp_path) as url, make_client(url, tmp_path) as c:
        admin = Api(c, "admin-project", "admin")
        default_pool(admin)
        default_external(admin)
        member = Api(c, "racer", "member")
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: member.get(topology_path("racer")), range(8)))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
        ids = {r.json()["auto_allocated_topology"]["id"] for r in answers}
        assert len(ids) == 1
        assert [n["id"] for n in member.get("/v2.0/networks", params={"project_id": "racer"}).json()["networks"]
                ] == list(ids)
        assert len(member.get("/v2.0/routers").json()["routers"]) == 1
        assert len(member.get("/v2.0/subnets").json()["subnets"]) == 1
        usage = member.get("/v2.0/quotas/racer/details").json()["quota"]
        assert usage["network"]["used"] == 1 and usage["router"]["used"] == 1
