"""Routers (router, ext-gw-mode, extraroute, extraroute-atomic), floating IPs (fip-port-details) and L3 agent
scheduling (l3_agent_scheduler), as an API user sees them."""

from __future__ import annotations

from typing import Any

import pytest

from fermion.rpc.contracts import L3View, StateReport, ViewRequest, decode, encode
from tests.api.test_agents import age_heartbeat
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

L3 = "L3 agent"
LB_CONF = {"tunneling_ip": "198.18.0.21", "tunnel_types": ["vxlan"], "interface_mappings": {"physnet1": "eth1"}}


@pytest.fixture
def ext(admin: Api) -> dict[str, Any]:
    """An external network with a subnet, as an operator sets it up."""
    net = admin.network(name="public", **{"router:external": True})
    sub = admin.subnet(net["id"], "198.18.100.0/24", allocation_pools=[{"start": "198.18.100.10",
                                                                        "end": "198.18.100.99"}])
    return {"network": net, "subnet": sub}


def router(api: Api, **attrs: Any) -> dict[str, Any]:
    return api.create("routers", **attrs)


def add_interface(api: Api, router_id: str, **body: str) -> Any:
    return api.put(f"/v2.0/routers/{router_id}/add_router_interface", json=body)


def remove_interface(api: Api, router_id: str, **body: str) -> Any:
    return api.put(f"/v2.0/routers/{router_id}/remove_router_interface", json=body)


def tenant_net(api: Api, cidr: str = "10.1.0.0/24") -> tuple[dict[str, Any], dict[str, Any]]:
    net = api.network(name=f"net-{cidr}")
    return net, api.subnet(net["id"], cidr)


def report_l3(client: SyncClient, host: str) -> str:
    msg = StateReport(host=host, agent_type=L3, binary="fermion-l3-agent", topic="l3_agent",
                      configurations={"routers": 0}, start_flag=True)
    return str(client.app.transport.call("report_state", encode(msg))["agent_id"])


def report_lb(client: SyncClient, host: str) -> None:
    msg = StateReport(host=host, agent_type="Linux bridge agent", binary="fermion-linuxbridge-agent", topic="N/A",
                      configurations=LB_CONF, start_flag=True)
    client.app.transport.call("report_state", encode(msg))


def l3_view(client: SyncClient, host: str) -> L3View:
    return decode(L3View, client.app.transport.call("get_l3_view", encode(ViewRequest(host, L3))))


# ---------------------------------------------------------------- routers and gateways
def test_router_defaults_and_extensions(tenant: Api, api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"router", "ext-gw-mode", "extraroute", "extraroute-atomic", "l3_agent_scheduler",
            "fip-port-details"} <= aliases
    r = router(tenant, name="r1")
    assert r["name"] == "r1" and r["status"] == "ACTIVE" and r["admin_state_up"] is True
    assert r["external_gateway_info"] is None and r["routes"] == []
    assert r["project_id"] == r["tenant_id"] == "tenant-a"
    assert "distributed" not in r and "ha" not in r  # admin-only attributes
    assert tenant.get(f"/v2.0/routers/{r['id']}").json()["router"] == r
    assert [x["id"] for x in tenant.get("/v2.0/routers?name=r1").json()["routers"]] == [r["id"]]
    assert_fault(api.as_("tenant-b").get(f"/v2.0/routers/{r['id']}"), 404, "RouterNotFound")
    assert_fault(api.as_("tenant-a", "reader").post("/v2.0/routers", json={"router": {}}), 403)


def test_gateway_gets_an_external_address_and_snat_is_admin_only(tenant: Api, admin: Api,
                                                                 ext: dict[str, Any]) -> None:
    r = router(tenant, external_gateway_info={"network_id": ext["network"]["id"]})
    info = r["external_gateway_info"]
    assert info["network_id"] == ext["network"]["id"] and info["enable_snat"] is True
    (fixed,) = info["external_fixed_ips"]
    assert fixed["subnet_id"] == ext["subnet"]["id"] and fixed["ip_address"].startswith("198.18.100.")
    gw_ports = admin.get(f"/v2.0/ports?device_id={r['id']}&device_owner=network:router_gateway").json()["ports"]
    assert [p["fixed_ips"] for p in gw_ports] == [[fixed]]
    body = {"router": {"external_gateway_info": {"network_id": ext["network"]["id"], "enable_snat": False}}}
    assert_fault(tenant.put(f"/v2.0/routers/{r['id']}", json=body), 403)
    updated = admin.put(f"/v2.0/routers/{r['id']}", json=body).json()["router"]
    assert updated["external_gateway_info"]["enable_snat"] is False
    assert updated["external_gateway_info"]["external_fixed_ips"] == [fixed]
    cleared = tenant.put(f"/v2.0/routers/{r['id']}", json={"router": {"external_gateway_info": {}}})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["router"]["external_gateway_info"] is None
    assert admin.get("/v2.0/ports?device_owner=network:router_gateway").json()["ports"] == []


def test_gateway_with_a_fixed_address_and_bad_gateways(admin: Api, tenant: Api, ext: dict[str, Any]) -> None:
    gw = {"network_id": ext["network"]["id"], "external_fixed_ips": [{"ip_address": "198.18.100.50"}]}
    r = router(admin, external_gateway_info=gw)
    assert r["external_gateway_info"]["external_fixed_ips"][0]["ip_address"] == "198.18.100.50"
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"external_gateway_info": gw}}), 403)
    internal, _ = tenant_net(tenant)
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"external_gateway_info": {
        "network_id": internal["id"]}}}), 400)
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"external_gateway_info": {
        "network_id": "00000000-0000-0000-0000-000000000000"}}}), 404, "NetworkNotFound")
    assert_fault(tenant.post("/v2.0/routers", json={"router": {"external_gateway_info": {"enable_snat": True}}}),
                 400)


# ---------------------------------------------------------------- interfaces
def test_interfaces_by_subnet_and_by_port(tenant: Api, admin: Api) -> None:
    r = router(tenant)
    net1, sub1 = tenant_net(tenant, "10.1.0.0/24")
    net2, sub2 = tenant_net(tenant, "10.2.0.0/24")
    res = add_interface(tenant, r["id"], subnet_id=sub1["id"])
    assert res.status_code == 200, res.text
    info = res.json()
    assert info["id"] == r["id"] and info["subnet_id"] == sub1["id"] and info["subnet_ids"] == [sub1["id"]]
    assert info["network_id"] == net1["id"] and info["project_id"] == "tenant-a"
    port = tenant.get(f"/v2.0/ports/{info['port_id']}").json()["port"]
    assert port["device_owner"] == "network:router_interface" and port["device_id"] == r["id"]
    assert port["fixed_ips"] == [{"subnet_id": sub1["id"], "ip_address": "10.1.0.1"}]

    p = tenant.port(net2["id"], fixed_ips=[{"subnet_id": sub2["id"], "ip_address": "10.2.0.254"}])
    res = add_interface(tenant, r["id"], port_id=p["id"])
    assert res.status_code == 200, res.text
    assert res.json()["port_id"] == p["id"] and res.json()["subnet_ids"] == [sub2["id"]]
    p = tenant.get(f"/v2.0/ports/{p['id']}").json()["port"]
    assert p["device_owner"] == "network:router_interface" and p["device_id"] == r["id"]
    owned = tenant.get(f"/v2.0/ports?device_id={r['id']}").json()["ports"]
    assert len(owned) == 2

    # in use: router, subnet and port cannot go while the interface exists
    assert_fault(tenant.delete(f"/v2.0/routers/{r['id']}"), 409, "RouterInUse")
    assert_fault(tenant.delete(f"/v2.0/subnets/{sub1['id']}"), 409, "SubnetInUse")
    assert_fault(tenant.delete(f"/v2.0/ports/{info['port_id']}"), 409, "ServicePortInUse")
    assert_fault(tenant.delete(f"/v2.0/networks/{net1['id']}"), 409, "NetworkInUse")

    res = remove_interface(tenant, r["id"], subnet_id=sub1["id"])
    assert res.status_code == 200, res.text
    assert res.json()["port_id"] == info["port_id"]
    assert tenant.get(f"/v2.0/ports/{info['port_id']}").status_code == 404
    res = remove_interface(tenant, r["id"], port_id=p["id"])
    assert res.status_code == 200, res.text
    assert tenant.delete(f"/v2.0/subnets/{sub1['id']}").status_code == 204
    assert tenant.delete(f"/v2.0/routers/{r['id']}").status_code == 204


def test_interface_errors(tenant: Api, api: Api) -> None:
    r = router(tenant)
    net, sub = tenant_net(tenant, "10.1.0.0/24")
    assert add_interface(tenant, r["id"], subnet_id=sub["id"]).status_code == 200
    assert_fault(add_interface(tenant, r["id"], subnet_id=sub["id"]), 400)  # already has a port there
    net2 = tenant.network()
    overlapping = tenant.subnet(net2["id"], "10.1.0.0/16")
    err = assert_fault(add_interface(tenant, r["id"], subnet_id=overlapping["id"]), 400)
    assert "overlaps" in err["message"]
    no_gw = tenant.subnet(tenant.network()["id"], "10.3.0.0/24", gateway_ip=None)
    assert_fault(add_interface(tenant, r["id"], subnet_id=no_gw["id"]), 400)
    used = tenant.port(net["id"], device_id="some-vm", device_owner="compute:nova")
    assert_fault(add_interface(tenant, r["id"], port_id=used["id"]), 409, "PortInUse")
    assert_fault(add_interface(tenant, r["id"]), 400)
    assert_fault(add_interface(tenant, r["id"], subnet_id=sub["id"], port_id=used["id"]), 400)
    _, foreign = tenant_net(api.as_("tenant-b"), "10.9.0.0/24")
    assert_fault(add_interface(tenant, r["id"], subnet_id=foreign["id"]), 404, "SubnetNotFound")
    assert_fault(remove_interface(tenant, r["id"], subnet_id=no_gw["id"]), 404,
                 "RouterInterfaceNotFoundForSubnet")
    assert_fault(remove_interface(tenant, r["id"], port_id=used["id"]), 404, "RouterInterfaceNotFound")
    assert_fault(api.as_("tenant-b").put(f"/v2.0/routers/{r['id']}/add_router_interface",
                                         json={"subnet_id": sub["id"]}), 404, "RouterNotFound")
    assert_fault(tenant.get(f"/v2.0/routers/{r['id']}/add_router_interface"), 405)


# ---------------------------------------------------------------- extra routes
def test_extra_routes_replace_and_atomic_edits(tenant: Api) -> None:
    r = router(tenant)
    _, sub = tenant_net(tenant, "10.1.0.0/24")
    add_interface(tenant, r["id"], subnet_id=sub["id"])
    routes = [{"destination": "10.50.0.0/16", "nexthop": "10.1.0.10"}]
    res = tenant.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": routes}})
    assert res.status_code == 200, res.text
    assert res.json()["router"]["routes"] == routes
    res = tenant.put(f"/v2.0/routers/{r['id']}/add_extraroutes", json={"router": {"routes": [
        {"destination": "10.60.0.5/16", "nexthop": "10.1.0.11"}, routes[0]]}})
    assert res.status_code == 200, res.text
    assert res.json()["router"]["routes"] == [routes[0], {"destination": "10.60.0.0/16", "nexthop": "10.1.0.11"}]
    res = tenant.put(f"/v2.0/routers/{r['id']}/remove_extraroutes", json={"router": {"routes": routes}})
    assert res.json()["router"]["routes"] == [{"destination": "10.60.0.0/16", "nexthop": "10.1.0.11"}]
    err = assert_fault(tenant.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": [
        {"destination": "10.70.0.0/16", "nexthop": "10.99.0.1"}]}}), 400, "InvalidRoutes")
    assert "not connected" in err["message"]
    assert_fault(tenant.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": [
        {"destination": "10.70.0.0/16", "nexthop": "10.1.0.1"}]}}), 400, "InvalidRoutes")
    assert_fault(tenant.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": [
        {"destination": "nonsense", "nexthop": "10.1.0.9"}]}}), 400)
    # an interface a route needs cannot be removed
    assert_fault(remove_interface(tenant, r["id"], subnet_id=sub["id"]), 409, "RouterInterfaceInUseByRoute")


# ---------------------------------------------------------------- floating IPs
@pytest.fixture
def wired(tenant: Api, ext: dict[str, Any]) -> dict[str, Any]:
    """A tenant router with a gateway and an interface, and a VM port behind it."""
    r = router(tenant, external_gateway_info={"network_id": ext["network"]["id"]})
    net, sub = tenant_net(tenant, "10.1.0.0/24")
    add_interface(tenant, r["id"], subnet_id=sub["id"])
    vm = tenant.port(net["id"], device_id="vm-1", device_owner="compute:nova", name="vm-1")
    return {"router": r, "network": net, "subnet": sub, "vm": vm, "ext": ext}


def test_floating_ip_associate_disassociate_reassociate(tenant: Api, admin: Api, wired: dict[str, Any]) -> None:
    ext_id = wired["ext"]["network"]["id"]
    fip = tenant.create("floatingips", floating_network_id=ext_id)
    assert fip["floating_ip_address"].startswith("198.18.100.")
    assert fip["port_id"] is None and fip["fixed_ip_address"] is None and fip["router_id"] is None
    assert fip["status"] == "DOWN" and fip["port_details"] is None and "name" not in fip
    fport = admin.get(f"/v2.0/ports?device_id={fip['id']}").json()["ports"]
    assert [p["device_owner"] for p in fport] == ["network:floatingip"]

    vm = wired["vm"]
    res = tenant.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": vm["id"]}})
    assert res.status_code == 200, res.text
    got = res.json()["floatingip"]
    assert got["port_id"] == vm["id"] and got["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"]
    assert got["router_id"] == wired["router"]["id"]
    assert got["port_details"]["network_id"] == wired["network"]["id"]
    assert got["port_details"]["device_id"] == "vm-1" and got["port_details"]["name"] == "vm-1"
    assert [f["id"] for f in tenant.get(f"/v2.0/floatingips?port_id={vm['id']}").json()["floatingips"]] == \
        [fip["id"]]

    # one fixed address has at most one floating IP per external network
    other = tenant.create("floatingips", floating_network_id=ext_id)
    assert_fault(tenant.put(f"/v2.0/floatingips/{other['id']}", json={"floatingip": {"port_id": vm["id"]}}),
                 409, "FloatingIPPortAlreadyAssociated")
    # the gateway cannot go while it carries the floating IP
    assert_fault(tenant.put(f"/v2.0/routers/{wired['router']['id']}",
                            json={"router": {"external_gateway_info": {}}}), 409,
                 "RouterExternalGatewayInUseByFloatingIp")
    assert_fault(remove_interface(tenant, wired["router"]["id"], subnet_id=wired["subnet"]["id"]), 409,
                 "RouterInterfaceInUseByFloatingIP")

    res = tenant.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
    got = res.json()["floatingip"]
    assert got["port_id"] is None and got["fixed_ip_address"] is None and got["router_id"] is None
    res = tenant.put(f"/v2.0/floatingips/{other['id']}", json={"floatingip": {"port_id": vm["id"]}})
    assert res.status_code == 200 and res.json()["floatingip"]["port_id"] == vm["id"]

    # deleting the instance's port leaves the floating IP, unassociated
    assert tenant.delete(f"/v2.0/ports/{vm['id']}").status_code == 204
    got = tenant.get(f"/v2.0/floatingips/{other['id']}").json()["floatingip"]
    assert got["port_id"] is None and got["router_id"] is None
    assert tenant.delete(f"/v2.0/floatingips/{other['id']}").status_code == 204
    assert admin.get(f"/v2.0/ports?device_id={other['id']}").json()["ports"] == []
    assert_fault(tenant.get(f"/v2.0/floatingips/{other['id']}"), 404, "FloatingIPNotFound")


def test_floating_ip_fixed_address_selection_and_errors(tenant: Api, admin: Api, api: Api,
                                                        wired: dict[str, Any]) -> None:
    ext_id = wired["ext"]["network"]["id"]
    two = tenant.port(wired["network"]["id"], fixed_ips=[{"ip_address": "10.1.0.20"}, {"ip_address": "10.1.0.21"}])
    assert_fault(tenant.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "port_id": two["id"]}}), 400)
    fip = tenant.create("floatingips", floating_network_id=ext_id, port_id=two["id"], fixed_ip_address="10.1.0.21")
    assert fip["fixed_ip_address"] == "10.1.0.21" and fip["router_id"] == wired["router"]["id"]
    assert_fault(tenant.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "port_id": two["id"], "fixed_ip_address": "10.1.0.99"}}), 400)
    # a subnet without a router to the external network
    lonely, _ = tenant_net(tenant, "10.5.0.0/24")
    p = tenant.port(lonely["id"])
    assert_fault(tenant.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "port_id": p["id"]}}), 404, "ExternalGatewayForFloatingIPNotFound")
    # not an external network; someone else's port; admin-only address choice
    assert_fault(tenant.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": lonely["id"]}}), 400)
    assert_fault(api.as_("tenant-b").post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "port_id": two["id"]}}), 404, "PortNotFound")
    assert_fault(tenant.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "floating_ip_address": "198.18.100.150"}}), 403)
    chosen = admin.create("floatingips", floating_network_id=ext_id, floating_ip_address="198.18.100.150")
    assert chosen["floating_ip_address"] == "198.18.100.150"
    assert_fault(admin.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "floating_ip_address": "198.18.100.150"}}), 409)
    assert_fault(api.as_("tenant-b").get(f"/v2.0/floatingips/{fip['id']}"), 404, "FloatingIPNotFound")


def test_quotas_for_routers_and_floating_ips(tenant: Api, admin: Api, ext: dict[str, Any]) -> None:
    admin.put("/v2.0/quotas/tenant-a", json={"quota": {"router": 1, "floatingip": 1}})
    router(tenant)
    assert_fault(tenant.post("/v2.0/routers", json={"router": {}}), 409, "OverQuota")
    tenant.create("floatingips", floating_network_id=ext["network"]["id"])
    assert_fault(tenant.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["network"]["id"]}}), 409, "OverQuota")
    usage = tenant.get("/v2.0/quotas/tenant-a/details.json").json()["quota"]
    assert usage["router"]["used"] == 1 and usage["floatingip"]["used"] == 1


# ---------------------------------------------------------------- L3 agents
def test_routers_are_scheduled_to_l3_agents_and_can_be_moved(client: SyncClient, admin: Api, tenant: Api,
                                                              wired: dict[str, Any]) -> None:
    r = wired["router"]
    assert admin.get(f"/v2.0/routers/{r['id']}/l3-agents").json()["agents"] == []
    report_lb(client, "net-1")
    first = report_l3(client, "net-1")  # the unhosted router is scheduled when an L3 agent reports
    assert [a["id"] for a in admin.get(f"/v2.0/routers/{r['id']}/l3-agents").json()["agents"]] == [first]
    assert [x["id"] for x in admin.get(f"/v2.0/agents/{first}/l3-routers").json()["routers"]] == [r["id"]]
    ports = admin.get(f"/v2.0/ports?device_id={r['id']}").json()["ports"]
    assert {p["binding:host_id"] for p in ports} == {"net-1"}
    assert {p["binding:vif_type"] for p in ports} == {"bridge"}

    view = l3_view(client, "net-1")
    (seen,) = view.routers
    assert seen.id == r["id"] and seen.enable_snat is True
    assert [i.addresses for i in seen.interfaces] == [["10.1.0.1/24"]]
    assert seen.gateway is not None and seen.gateway.addresses[0].endswith("/24")
    assert seen.gateway_ip == "198.18.100.1"
    assert l3_view(client, "elsewhere").routers == []

    fip = tenant.create("floatingips", floating_network_id=wired["ext"]["network"]["id"],
                        port_id=wired["vm"]["id"])
    (seen,) = l3_view(client, "net-1").routers
    assert [(f.floating_ip, f.fixed_ip) for f in seen.floating_ips] == \
        [(fip["floating_ip_address"], wired["vm"]["fixed_ips"][0]["ip_address"])]

    # the agent dies: an operator moves its router to another agent
    report_lb(client, "net-2")
    second = report_l3(client, "net-2")
    age_heartbeat(client, first)
    assert tenant.get(f"/v2.0/agents/{first}/l3-routers").status_code == 403
    assert_fault(admin.post(f"/v2.0/agents/{second}/l3-routers", json={"router_id": r["id"]}), 409)
    assert admin.delete(f"/v2.0/agents/{first}/l3-routers/{r['id']}").status_code == 204
    added = admin.post(f"/v2.0/agents/{second}/l3-routers", json={"router_id": r["id"]})
    assert added.status_code == 201 and added.headers["content-type"] == "application/json"
    assert added.content == b"null"  # Neutron's body: the scheduler's None, serialized
    assert [a["id"] for a in admin.get(f"/v2.0/routers/{r['id']}/l3-agents").json()["agents"]] == [second]
    ports = admin.get(f"/v2.0/ports?device_id={r['id']}").json()["ports"]
    assert {p["binding:host_id"] for p in ports} == {"net-2"}
    assert [x.id for x in l3_view(client, "net-2").routers] == [r["id"]]
    assert l3_view(client, "net-1").routers == []
    assert_fault(admin.delete(f"/v2.0/agents/{first}/l3-routers/{r['id']}"), 409)


def test_new_router_goes_to_the_least_loaded_live_agent(client: SyncClient, admin: Api, tenant: Api) -> None:
    a = report_l3(client, "net-a")
    b = report_l3(client, "net-b")
    placed = [admin.get(f"/v2.0/routers/{router(tenant)['id']}/l3-agents").json()["agents"][0]["id"]
              for _ in range(4)]
    assert sorted(placed) == sorted([a, a, b, b])
    age_heartbeat(client, a)
    for _ in range(2):
        r = router(tenant)
        assert [x["id"] for x in admin.get(f"/v2.0/routers/{r['id']}/l3-agents").json()["agents"]] == [b]
