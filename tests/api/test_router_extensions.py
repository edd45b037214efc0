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


@pytest.fixture
def admin(api: Api) -> Api:
    return api.as_("admin-project", "admin")


@pytest.fixture
def tenant(api: Api) -> Api:
    return api.as_("tenant-a", "member")


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
