"""floating-ip-router-writable: a client names the router that hosts a floating IP's NAT, as an API user sees it.

The topology the extension exists for (Neutron's spec "Indirect Floating IP Router Selection"): an outer router
with the gateway, an inner router on the instance's subnet, both on a transit network. No router has both the
gateway and the instance's subnet, so only a named router lets the instance have a floating IP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.test_routers import add_interface, l3_view, remove_interface, report_l3, report_lb, router, tenant_net
from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault


def external(admin: Api, name: str, cidr: str) -> str:
    net = admin.network(name=name, **{"router:external": True})
    admin.subnet(net["id"], cidr)
    return str(net["id"])


@pytest.fixture
def two_hop(tenant: Api, admin: Api) -> dict[str, Any]:
    ext_id = external(admin, "public", "198.18.100.0/24")
    outer = router(tenant, name="outer", external_gateway_info={"network_id": ext_id})
    inner = router(tenant, name="inner")
    net, sub = tenant_net(tenant, "10.1.0.0/24")
    transit, transit_sub = tenant_net(tenant, "10.9.0.0/24")
    assert add_interface(tenant, inner["id"], subnet_id=sub["id"]).status_code == 200
    assert add_interface(tenant, outer["id"], subnet_id=transit_sub["id"]).status_code == 200  # 10.9.0.1
    hop = tenant.port(transit["id"], fixed_ips=[{"ip_address": "10.9.0.2"}])
    assert add_interface(tenant, inner["id"], port_id=hop["id"]).status_code == 200
    for rid, routes in ((outer["id"], [{"destination": "10.1.0.0/24", "nexthop": "10.9.0.2"}]),
                        (inner["id"], [{"destination": "0.0.0.0/0", "nexthop": "10.9.0.1"}])):
        assert tenant.put(f"/v2.0/routers/{rid}", json={"router": {"routes": routes}}).status_code == 200
    vm = tenant.port(net["id"], device_id="vm-1", device_owner="compute:nova", name="vm-1")
    return {"ext": ext_id, "outer": outer, "inner": inner, "subnet": sub, "vm": vm}


def fip_body(**attrs: Any) -> dict[str, Any]:
    return {"floatingip": attrs}


def put_fip(api: Api, fip_id: str, **attrs: Any) -> dict[str, Any]:
    r = api.put(f"/v2.0/floatingips/{fip_id}", json=fip_body(**attrs))
    assert r.status_code == 200, r.text
    return r.json()["floatingip"]  # type: ignore[no-any-return]


def counts(admin: Api) -> tuple[int, int]:
    return (len(admin.get("/v2.0/floatingips").json()["floatingips"]),
            len(admin.get("/v2.0/ports?device_owner=network:floatingip").json()["ports"]))


def test_extension_is_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"router", "floating-ip-router-writable"} <= aliases
    ext = api.get("/v2.0/extensions/floating-ip-router-writable").json()["extension"]
    assert ext["name"] == "Floating IP Router (writable)"
    assert ext["description"] == "Provides a writable router_id attribute for a floating IP resource."


def test_a_named_router_hosts_the_floating_ip_of_a_port_behind_another_router(tenant: Api,
                                                                                two_hop: dict[str, Any]) -> None:
    vm, outer = two_hop["vm"], two_hop["outer"]
    # without a router named, the hosting router is computed as ever: none serves both
    assert_fault(tenant.post("/v2.0/floatingips", json=fip_body(floating_network_id=two_hop["ext"],
                                                                port_id=vm["id"])),
                 404, "ExternalGatewayForFloatingIPNotFound")
    fip = tenant.create("floatingips", floating_network_id=two_hop["ext"], port_id=vm["id"], router_id=outer["id"])
    assert fip["router_id"] == outer["id"] and fip["port_id"] == vm["id"]
    # DOWN until the agent serving the router reports it realized (test_floatingip_status.py)
    assert fip["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"] and fip["status"] == "DOWN"
    assert tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]["router_id"] == outer["id"]
    listed = tenant.get("/v2.0/floatingips", params={"router_id": outer["id"]}).json()["floatingips"]
    assert [f["id"] for f in listed] == [fip["id"]]

    # the same on update: associate an existing floating IP, naming the router
    other_vm = tenant.port(vm["network_id"], device_id="vm-2", device_owner="compute:nova")
    spare = tenant.create("floatingips", floating_network_id=two_hop["ext"])
    assert_fault(tenant.put(f"/v2.0/floatingips/{spare['id']}", json=fip_body(port_id=other_vm["id"])),
                 404, "ExternalGatewayForFloatingIPNotFound")
    got = put_fip(tenant, spare["id"], port_id=other_vm["id"], router_id=outer["id"])
    assert (got["router_id"], got["port_id"], got["status"]) == (outer["id"], other_vm["id"], "DOWN")
    # naming the port it already has keeps the router (nothing is recomputed)
    assert put_fip(tenant, spare["id"], port_id=other_vm["id"])["router_id"] == outer["id"]

    # the hosting router keeps its gateway while it hosts floating IPs, so it cannot go either
    assert_fault(tenant.put(f"/v2.0/routers/{outer['id']}", json={"router": {"external_gateway_info": {}}}),
                 409, "RouterExternalGatewayInUseByFloatingIp")
    assert_fault(tenant.delete(f"/v2.0/routers/{outer['id']}"), 409, "RouterInUse")
    # the path to the port is the client's business (as Neutron's spec): the inner router may lose its interface
    r = remove_interface(tenant, two_hop["inner"]["id"], subnet_id=two_hop["subnet"]["id"])
    assert r.status_code == 200, r.text


def test_a_named_router_must_exist_be_visible_and_have_its_gateway_on_the_floating_network(
        tenant: Api, admin: Api, api: Api, two_hop: dict[str, Any]) -> None:
    ext_id, vm = two_hop["ext"], two_hop["vm"]
    before = counts(admin)
    missing = "6e3c1f54-0d7e-4c49-9a4b-3c2f4d5e6a7b"
    for port in ({}, {"port_id": vm["id"]}):
        err = assert_fault(tenant.post("/v2.0/floatingips", json=fip_body(floating_network_id=ext_id,
                                                                          router_id=missing, **port)),
                           404, "RouterNotFound")
        assert err["message"] == f"Router {missing} could not be found."
    # another project's router does not exist for the caller; an admin may name it
    theirs = router(api.as_("tenant-b"), external_gateway_info={"network_id": ext_id})
    assert_fault(tenant.post("/v2.0/floatingips", json=fip_body(floating_network_id=ext_id,
                                                                router_id=theirs["id"])), 404, "RouterNotFound")
    # no gateway, or a gateway on another external network: the router cannot host the floating IP
    bare = router(tenant, name="bare")
    elsewhere = router(tenant, name="elsewhere", external_gateway_info={
        "network_id": external(admin, "other-public", "198.18.101.0/24")})
    for rid in (bare["id"], elsewhere["id"]):
        for port in ({}, {"port_id": vm["id"]}):
            err = assert_fault(tenant.post("/v2.0/floatingips", json=fip_body(floating_network_id=ext_id,
                                                                              router_id=rid, **port)),
                               409, "RouterExternalGatewayNotOnFloatingNetwork")
            assert err["message"].startswith(f"Router {rid} has no external gateway on network {ext_id}.")
    assert_fault(tenant.post("/v2.0/floatingips", json=fip_body(floating_network_id=ext_id, router_id="r1")), 400)
    assert counts(admin) == before  # nothing half-written: no floating IP, no floating port
    usage = admin.get("/v2.0/quotas/tenant-a/details").json()["quota"]["floatingip"]
    assert usage["used"] == 0

    # the same rules on update, and a refused update changes nothing
    fip = tenant.create("floatingips", floating_network_id=ext_id, port_id=vm["id"], router_id=two_hop["outer"]["id"])
    assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json=fip_body(router_id=missing)), 404,
                 "RouterNotFound")
    assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json=fip_body(router_id=theirs["id"])), 404,
                 "RouterNotFound")
    assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json=fip_body(port_id=None, router_id=bare["id"])),
                 409, "RouterExternalGatewayNotOnFloatingNetwork")
    got = tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]
    assert (got["router_id"], got["port_id"]) == (two_hop["outer"]["id"], vm["id"])
    admin_named = admin.create("floatingips", floating_network_id=ext_id, router_id=theirs["id"],
                               project_id="tenant-a")
    assert admin_named["router_id"] == theirs["id"]


def test_a_floating_ip_without_a_port_may_name_its_router(tenant: Api, two_hop: dict[str, Any]) -> None:
    outer = two_hop["outer"]
    fip = tenant.create("floatingips", floating_network_id=two_hop["ext"], router_id=outer["id"])
    assert (fip["router_id"], fip["port_id"], fip["fixed_ip_address"], fip["status"]) == \
        (outer["id"], None, None, "DOWN")
    # it holds the router's gateway as an associated floating IP does
    assert_fault(tenant.put(f"/v2.0/routers/{outer['id']}", json={"router": {"external_gateway_info": {}}}),
                 409, "RouterExternalGatewayInUseByFloatingIp")
    # updates that name neither port nor router keep it; null clears it
    assert put_fip(tenant, fip["id"], description="reserved")["router_id"] == outer["id"]
    assert put_fip(tenant, fip["id"])["router_id"] == outer["id"]
    assert put_fip(tenant, fip["id"], router_id=None)["router_id"] is None
    assert put_fip(tenant, fip["id"], router_id=outer["id"])["router_id"] == outer["id"]
    # a port associated later without a router named: computed as ever (here, none serves the port)
    assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json=fip_body(port_id=two_hop["vm"]["id"])),
                 404, "ExternalGatewayForFloatingIPNotFound")
    assert tenant.delete(f"/v2.0/floatingips/{fip['id']}").status_code == 204
    r = tenant.put(f"/v2.0/routers/{outer['id']}", json={"router": {"external_gateway_info": {}}})
    assert r.status_code == 200, r.text


def test_updates_of_an_associated_floating_ip(tenant: Api, admin: Api, two_hop: dict[str, Any]) -> None:
    ext_id, vm, outer = two_hop["ext"], two_hop["vm"], two_hop["outer"]
    # the inner router also gets a gateway: it now serves the port directly, and is the computed router
    inner = two_hop["inner"]
    put = tenant.put(f"/v2.0/routers/{inner['id']}", json={"router": {"external_gateway_info": {"network_id": ext_id}}})
    assert put.status_code == 200, put.text
    fip = tenant.create("floatingips", floating_network_id=ext_id, port_id=vm["id"])
    assert fip["router_id"] == inner["id"]
    # naming another router that has the gateway moves the NAT there and keeps the port
    got = put_fip(tenant, fip["id"], router_id=outer["id"])
    assert (got["router_id"], got["port_id"]) == (outer["id"], vm["id"])
    # router_id null with a port: the router is computed again
    got = put_fip(tenant, fip["id"], router_id=None)
    assert (got["router_id"], got["port_id"]) == (inner["id"], vm["id"])
    got = put_fip(tenant, fip["id"], description="kept")
    assert (got["router_id"], got["port_id"]) == (inner["id"], vm["id"])
    # taking the port away takes the router with it, unless the same update names one
    got = put_fip(tenant, fip["id"], port_id=None)
    assert (got["router_id"], got["port_id"], got["status"]) == (None, None, "DOWN")
    put_fip(tenant, fip["id"], port_id=vm["id"], router_id=outer["id"])
    got = put_fip(tenant, fip["id"], port_id=None, router_id=outer["id"])
    assert (got["router_id"], got["port_id"], got["fixed_ip_address"]) == (outer["id"], None, None)
    # an empty update disassociates, as ever
    put_fip(tenant, fip["id"], port_id=vm["id"], router_id=outer["id"])
    got = put_fip(tenant, fip["id"])
    assert (got["router_id"], got["port_id"]) == (None, None)
    # deleting the port leaves the floating IP with neither port nor router, as for a computed router
    put_fip(tenant, fip["id"], port_id=vm["id"], router_id=outer["id"])
    assert tenant.delete(f"/v2.0/ports/{vm['id']}").status_code == 204
    got = tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]
    assert (got["router_id"], got["port_id"]) == (None, None)
    assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json=fip_body(fixed_ip_address="10.1.0.50",
                                                                             router_id=outer["id"])), 400)


def test_the_hosting_router_translates_and_a_floating_ip_without_a_port_changes_nothing(
        client: SyncClient, tenant: Api, two_hop: dict[str, Any]) -> None:
    report_lb(client, "net-1")
    report_l3(client, "net-1")
    vm, outer, inner = two_hop["vm"], two_hop["outer"], two_hop["inner"]
    tenant.create("floatingips", floating_network_id=two_hop["ext"], router_id=outer["id"])

    def nat() -> dict[str, list[tuple[str, str]]]:
        return {r.id: [(f.floating_ip, f.fixed_ip) for f in r.floating_ips] for r in l3_view(client, "net-1").routers}

    assert nat() == {outer["id"]: [], inner["id"]: []}
    fip = tenant.create("floatingips", floating_network_id=two_hop["ext"], port_id=vm["id"], router_id=outer["id"])
    assert nat() == {outer["id"]: [(fip["floating_ip_address"], vm["fixed_ips"][0]["ip_address"])], inner["id"]: []}
    put_fip(tenant, fip["id"], port_id=None, router_id=outer["id"])
    assert nat() == {outer["id"]: [], inner["id"]: []}


def test_router_id_is_policed_as_its_own_attribute(tmp_path: Path) -> None:
    """create_floatingip:router_id and update_floatingip:router_id: an operator may keep the choice to admins."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"create_floatingip:router_id": "rule:admin_only"\n'
                      '"update_floatingip:router_id": "rule:admin_only"\n', encoding="utf-8")
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, policy_file=str(policy)) as c:
        admin = Api(c, "admin-project", "admin")
        tenant = admin.as_("tenant-a", "member")
        ext_id = external(admin, "public", "198.18.100.0/24")
        outer = router(tenant, external_gateway_info={"network_id": ext_id})
        assert_fault(tenant.post("/v2.0/floatingips", json=fip_body(floating_network_id=ext_id,
                                                                    router_id=outer["id"])), 403, "PolicyNotAuthorized")
        fip = tenant.create("floatingips", floating_network_id=ext_id, router_id=None)  # the default is not policed
        assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json=fip_body(router_id=outer["id"])), 403,
                     "PolicyNotAuthorized")
        assert put_fip(admin, fip["id"], router_id=outer["id"])["router_id"] == outer["id"]
