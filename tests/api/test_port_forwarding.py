"""Floating IP port forwardings (floating-ip-port-forwarding, -description, -port-ranges, -detail and
expose-port-forwarding-in-fip), as an API user sees them, and what the L3 agent is told."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_floatingip_router import external
from tests.api.test_routers import add_interface, l3_view, report_l3, router, tenant_net
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault

EXTENSIONS = {"floating-ip-port-forwarding", "floating-ip-port-forwarding-description",
              "floating-ip-port-forwarding-port-ranges", "floating-ip-port-forwarding-detail",
              "expose-port-forwarding-in-fip"}


def pf_path(fip_id: str, ident: str | None = None) -> str:
    return f"/v2.0/floatingips/{fip_id}/port_forwardings" + (f"/{ident}" if ident else "")


def add_pf(api: Api, fip_id: str, /, **attrs: Any) -> Any:
    return api.post(pf_path(fip_id), json={"port_forwarding": attrs})


def created(api: Api, fip_id: str, /, **attrs: Any) -> dict[str, Any]:
    r = add_pf(api, fip_id, **attrs)
    assert r.status_code == 201, r.text
    return r.json()["port_forwarding"]  # type: ignore[no-any-return]


@pytest.fixture
def site(tenant: Api, admin: Api) -> dict[str, Any]:
    """A router with a gateway on `public` and an interface on 10.1.0.0/24, two instance ports there and a
    free floating IP."""
    ext = external(admin, "public", "198.18.100.0/24")
    r = router(tenant, external_gateway_info={"network_id": ext})
    net, sub = tenant_net(tenant, "10.1.0.0/24")
    assert add_interface(tenant, r["id"], subnet_id=sub["id"]).status_code == 200
    vm1 = tenant.port(net["id"], device_owner="compute:nova", name="vm1")
    vm2 = tenant.port(net["id"], device_owner="compute:nova", name="vm2")
    fip = tenant.create("floatingips", floating_network_id=ext)
    return {"ext": ext, "router": r, "net": net, "subnet": sub, "vm1": vm1, "vm2": vm2, "fip": fip}


def ip_of(port: dict[str, Any]) -> str:
    return str(port["fixed_ips"][0]["ip_address"])


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert EXTENSIONS <= aliases
    ext = api.get("/v2.0/extensions/floating-ip-port-forwarding").json()["extension"]
    assert ext["name"] == "Floating IP Port Forwarding"


def test_lifecycle_and_exposure_on_the_floating_ip(tenant: Api, site: dict[str, Any]) -> None:
    fip, vm1 = site["fip"], site["vm1"]
    assert fip["port_forwardings"] == [] and fip["router_id"] is None
    pf = created(tenant, fip["id"], internal_port_id=vm1["id"], internal_ip_address=ip_of(vm1),
                 internal_port=1111, external_port=2222, protocol="TCP", description="ssh")
    assert pf == {"id": pf["id"], "internal_port_id": vm1["id"], "internal_ip_address": ip_of(vm1),
                  "internal_port": 1111, "external_port": 2222, "internal_port_range": "1111:1111",
                  "external_port_range": "2222:2222", "protocol": "tcp", "description": "ssh"}
    # the floating IP took the router that reaches the internal port, and shows the forwarding
    shown = tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]
    assert shown["router_id"] == site["router"]["id"] and shown["port_id"] is None
    assert shown["port_forwardings"] == [{"id": pf["id"], "internal_port_id": vm1["id"],
                                          "internal_ip_address": ip_of(vm1), "protocol": "tcp",
                                          "internal_port": 1111, "external_port": 2222}]
    assert tenant.get(pf_path(fip["id"], pf["id"])).json()["port_forwarding"] == pf
    assert tenant.get(pf_path(fip["id"])).json()["port_forwardings"] == [pf]
    r = tenant.put(pf_path(fip["id"], pf["id"]), json={"port_forwarding": {"internal_port": 3333}})
    assert r.status_code == 200, r.text
    assert r.json()["port_forwarding"] == {**pf, "internal_port": 3333, "internal_port_range": "3333:3333"}
    # a floating IP with forwardings can be neither deleted nor associated with a port
    assert_fault(tenant.delete(f"/v2.0/floatingips/{fip['id']}"), 409, "FipInUseByPortForwarding")
    assert_fault(tenant.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": site["vm2"]["id"]}}),
                 409, "FipInUseByPortForwarding")
    assert tenant.delete(pf_path(fip["id"], pf["id"])).status_code == 204
    assert_fault(tenant.get(pf_path(fip["id"], pf["id"])), 404, "PortForwardingNotFound")
    # the last forwarding gone, the floating IP leaves the router and can go
    shown = tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]
    assert shown["router_id"] is None and shown["port_forwardings"] == []
    assert tenant.delete(f"/v2.0/floatingips/{fip['id']}").status_code == 204


def test_port_ranges(tenant: Api, site: dict[str, Any]) -> None:
    fip, vm1, vm2 = site["fip"], site["vm1"], site["vm2"]
    same = created(tenant, fip["id"], internal_port_id=vm1["id"], internal_port_range="9000:9009",
                   external_port_range="8000:8009", protocol="udp")
    assert same["internal_ip_address"] == ip_of(vm1)  # the port's first IPv4 address when none is named
    assert (same["internal_port"], same["external_port"]) == (None, None)
    assert (same["internal_port_range"], same["external_port_range"]) == ("9000:9009", "8000:8009")
    many_to_one = created(tenant, fip["id"], internal_port_id=vm2["id"], internal_port_range="80",
                          external_port_range="8080:8089", protocol="tcp")
    assert (many_to_one["internal_port"], many_to_one["internal_port_range"]) == (80, "80:80")
    exposed = tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]["port_forwardings"]
    assert {p["id"]: p.get("external_port") for p in exposed} == {same["id"]: None, many_to_one["id"]: None}
    # lengths must match unless the internal side is one port
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm2["id"], internal_port_range="100:102",
                        external_port_range="200:205", protocol="tcp"), 400)
    # singles and ranges never together; end before start; out of range
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm2["id"], internal_port=22,
                        external_port_range="300:301", protocol="tcp"), 400)
    for bad in ("10:5", "0:10", "1:70000", "a:b"):
        assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm2["id"], internal_port_range=bad,
                            external_port_range=bad, protocol="tcp"), 400)
    # an external range overlapping another forwarding of the protocol on this floating IP
    err = assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm2["id"], internal_port=22, external_port=8005,
                              protocol="udp"), 400)
    assert "8000:8009 and 8005:8005" in err["message"]
    # the same external port with the other protocol is fine
    created(tenant, fip["id"], internal_port_id=vm2["id"], internal_port=22, external_port=8005, protocol="tcp")
    listed = tenant.get(pf_path(fip["id"]), params={"protocol": "udp"}).json()["port_forwardings"]
    assert [p["id"] for p in listed] == [same["id"]]
    listed = tenant.get(pf_path(fip["id"]), params={"external_port_range": "8080:8089"}).json()["port_forwardings"]
    assert [p["id"] for p in listed] == [many_to_one["id"]]
    assert_fault(tenant.get(pf_path(fip["id"]), params={"internal_port": "22"}), 400)  # not a filter


def test_neutron_validation(tenant: Api, admin: Api, site: dict[str, Any]) -> None:
    fip, vm1, vm2 = site["fip"], site["vm1"], site["vm2"]
    created(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=1111, external_port=2222, protocol="tcp")
    # the same external port again, to another destination
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm2["id"], internal_port=3333, external_port=2222,
                        protocol="tcp"), 400)
    # different external ports to the same destination
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=1111, external_port=5555,
                        protocol="tcp"), 400)
    # out of range ports
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=4444, external_port=333333,
                        protocol="tcp"), 400)
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=444444, external_port=3333,
                        protocol="tcp"), 400)
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=1, external_port=2,
                        protocol="icmp"), 400)
    # an address that is not the port's
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm1["id"], internal_ip_address="10.1.0.250",
                        internal_port=1, external_port=2, protocol="tcp"), 400)
    assert_fault(add_pf(tenant, fip["id"], internal_port_id="00000000-0000-0000-0000-000000000000",
                        internal_port=1, external_port=2, protocol="tcp"), 404, "PortNotFound")
    # a port that has a floating IP of its own
    tenant.create("floatingips", floating_network_id=site["ext"], port_id=vm2["id"])
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm2["id"], internal_port=1, external_port=2,
                        protocol="tcp"), 409, "PortHasBindingFloatingIP")
    # a floating IP associated with a port takes no forwarding
    used = tenant.create("floatingips", floating_network_id=site["ext"], port_id=tenant.port(
        site["net"]["id"], device_owner="compute:nova")["id"])
    assert_fault(add_pf(tenant, used["id"], internal_port_id=vm1["id"], internal_port=7, external_port=7,
                        protocol="tcp"), 409, "FloatingIPPortAlreadyAssociated")
    # an internal port no router reaches from the floating IP's network
    lonely_net, _ = tenant_net(tenant, "10.2.0.0/24")
    lonely = tenant.port(lonely_net["id"], device_owner="compute:nova")
    err = assert_fault(add_pf(tenant, fip["id"], internal_port_id=lonely["id"], internal_port=1, external_port=9,
                              protocol="tcp"), 400)
    assert "is not reachable from subnet" in err["message"]
    # unknown floating IP, missing attributes, bad method
    assert_fault(tenant.get(pf_path("00000000-0000-0000-0000-000000000000")), 404, "FloatingIPNotFound")
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=vm1["id"], protocol="tcp"), 400)
    assert_fault(tenant.post(pf_path(fip["id"]), json={"forwarding": {}}), 400)
    assert tenant.put(pf_path(fip["id"]), json={}).status_code == 405


def test_a_removed_port_or_address_takes_its_forwardings(tenant: Api, site: dict[str, Any]) -> None:
    fip, vm1, vm2 = site["fip"], site["vm1"], site["vm2"]
    created(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=22, external_port=2201, protocol="tcp")
    created(tenant, fip["id"], internal_port_id=vm2["id"], internal_port=22, external_port=2202, protocol="tcp")
    assert tenant.delete(f"/v2.0/ports/{vm1['id']}").status_code == 204
    left = tenant.get(pf_path(fip["id"])).json()["port_forwardings"]
    assert [p["internal_port_id"] for p in left] == [vm2["id"]]
    # vm2 moves to another address: its forwarding to the old one goes, and the floating IP is free again
    r = tenant.put(f"/v2.0/ports/{vm2['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.1.0.77"}]}})
    assert r.status_code == 200, r.text
    shown = tenant.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]
    assert shown["port_forwardings"] == [] and shown["router_id"] is None


def test_policy(tenant: Api, api: Api, site: dict[str, Any]) -> None:
    fip, vm1 = site["fip"], site["vm1"]
    pf = created(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=22, external_port=22, protocol="tcp")
    stranger = api.as_("tenant-b", "member")
    assert_fault(stranger.get(pf_path(fip["id"])), 404, "FloatingIPNotFound")
    assert_fault(stranger.delete(pf_path(fip["id"], pf["id"])), 404, "FloatingIPNotFound")
    reader = api.as_("tenant-a", "reader")
    assert [p["id"] for p in reader.get(pf_path(fip["id"])).json()["port_forwardings"]] == [pf["id"]]
    assert_fault(add_pf(reader, fip["id"], internal_port_id=vm1["id"], internal_port=23, external_port=23,
                        protocol="tcp"), 403, "PolicyNotAuthorized")
    assert_fault(reader.delete(pf_path(fip["id"], pf["id"])), 403, "PolicyNotAuthorized")
    admin = api.as_("admin-project", "admin")
    assert admin.get(pf_path(fip["id"], pf["id"])).status_code == 200
    # another project's port is not found for a member, even on its own floating IP
    other_net = stranger.network()
    stranger.subnet(other_net["id"], "10.3.0.0/24")
    theirs = stranger.port(other_net["id"])
    assert_fault(add_pf(tenant, fip["id"], internal_port_id=theirs["id"], internal_port=1, external_port=1,
                        protocol="tcp"), 404, "PortNotFound")


def test_the_l3_agent_view_carries_the_forwardings(client: SyncClient, tenant: Api, site: dict[str, Any]) -> None:
    report_l3(client, "net-1")
    fip, vm1, vm2 = site["fip"], site["vm1"], site["vm2"]
    created(tenant, fip["id"], internal_port_id=vm1["id"], internal_port=22, external_port=2222, protocol="tcp")
    created(tenant, fip["id"], internal_port_id=vm2["id"], internal_port_range="5000:5009",
            external_port_range="6000:6009", protocol="udp")
    (mine,) = [r for r in l3_view(client, "net-1").routers if r.id == site["router"]["id"]]
    got = sorted((p.floating_ip, p.protocol, p.external_port, p.internal_ip, p.internal_port)
                 for p in mine.port_forwardings)
    addr = fip["floating_ip_address"]
    assert got == [(addr, "tcp", "2222", ip_of(vm1), "22"), (addr, "udp", "6000:6009", ip_of(vm2), "5000:5009")]
    assert mine.floating_ips == []  # a forwarded floating IP is no 1:1 NAT
