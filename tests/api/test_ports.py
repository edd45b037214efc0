"""Ports: MAC addresses, fixed IPs, device attributes, address pairs, port security, binding, bulk."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

MAC = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")
PORT_ATTRS = {"id", "project_id", "tenant_id", "name", "description", "tags", "created_at", "updated_at",
              "revision_number", "network_id", "admin_state_up", "mac_address", "fixed_ips", "device_id",
              "device_owner", "status", "port_security_enabled", "allowed_address_pairs", "security_groups",
              "binding:host_id", "binding:vnic_type", "binding:profile", "binding:vif_type",
              "binding:vif_details"}


@pytest.fixture
def net(api: Api) -> dict[str, Any]:
    return api.network(name="net")


@pytest.fixture
def sub(api: Api, net: dict[str, Any]) -> dict[str, Any]:
    return api.subnet(net["id"], "10.0.0.0/24")


def _post(api: Api, **attrs: Any) -> Any:
    return api.post("/v2.0/ports", json={"port": attrs})


def _no_ports(api: Api) -> None:
    assert api.get("/v2.0/ports").json()["ports"] == []


def _in_pool(ip: str) -> bool:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a, b, c) == (10, 0, 0) and 2 <= d <= 254


def test_create_defaults(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    r = _post(api, network_id=net["id"])
    assert r.status_code == 201, r.text
    port = r.json()["port"]
    assert PORT_ATTRS <= set(port)
    assert port["network_id"] == net["id"]
    assert port["project_id"] == port["tenant_id"] == "admin-project"
    assert port["admin_state_up"] is True
    assert MAC.match(port["mac_address"]), port["mac_address"]
    assert len(port["fixed_ips"]) == 1
    assert port["fixed_ips"][0]["subnet_id"] == sub["id"]
    assert _in_pool(port["fixed_ips"][0]["ip_address"])
    assert port["device_id"] == "" and port["device_owner"] == ""
    assert port["status"] == "DOWN"
    assert port["port_security_enabled"] is True
    assert port["allowed_address_pairs"] == []
    assert port["binding:vnic_type"] == "normal"
    assert port["binding:host_id"] == ""
    assert port["binding:profile"] == {}
    assert port["binding:vif_type"] == "unbound"


def test_show_list_update_delete(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    port = api.port(net["id"], name="p")
    r = api.get(f"/v2.0/ports/{port['id']}")
    assert r.status_code == 200 and r.json() == {"port": port}
    assert ids(api.get("/v2.0/ports"), "ports") == [port["id"]]
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "q", "admin_state_up": False,
                                                           "description": "d"}})
    assert r.status_code == 200, r.text
    upd = r.json()["port"]
    assert (upd["name"], upd["admin_state_up"], upd["description"]) == ("q", False, "d")
    assert upd["revision_number"] == port["revision_number"] + 1
    assert upd["fixed_ips"] == port["fixed_ips"] and upd["mac_address"] == port["mac_address"]
    assert api.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert_fault(api.get(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")
    assert_fault(api.delete(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "x"}}), 404, "PortNotFound")


def test_port_on_network_without_subnets_has_no_ips(api: Api, net: dict[str, Any]) -> None:
    assert api.port(net["id"])["fixed_ips"] == []


def test_port_on_missing_network_is_404(api: Api) -> None:
    assert_fault(_post(api, network_id=str(uuid.uuid4())), 404, "NetworkNotFound")
    _no_ports(api)


def test_given_mac_address(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"], mac_address="FA:16:3E:AA:BB:CC")
    assert port["mac_address"] == "fa:16:3e:aa:bb:cc"


def test_duplicate_mac_on_a_network_is_409(api: Api, net: dict[str, Any]) -> None:
    first = api.port(net["id"], mac_address="fa:16:3e:aa:bb:cc")
    assert_fault(_post(api, network_id=net["id"], mac_address="fa:16:3e:aa:bb:cc"), 409, "MacAddressInUse")
    assert ids(api.get("/v2.0/ports"), "ports") == [first["id"]]
    # the same MAC on another network is allowed
    other = api.network()
    assert api.port(other["id"], mac_address="fa:16:3e:aa:bb:cc")["mac_address"] == "fa:16:3e:aa:bb:cc"


def test_mac_update_to_one_in_use_is_409(api: Api, net: dict[str, Any]) -> None:
    api.port(net["id"], mac_address="fa:16:3e:aa:bb:cc")
    port = api.port(net["id"])
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"mac_address": "fa:16:3e:aa:bb:cc"}}),
                 409, "MacAddressInUse")
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"mac_address": "fa:16:3e:aa:bb:cd"}})
    assert r.status_code == 200 and r.json()["port"]["mac_address"] == "fa:16:3e:aa:bb:cd"


def test_generated_macs_are_unique(api: Api, net: dict[str, Any]) -> None:
    r = api.post("/v2.0/ports", json={"ports": [{"network_id": net["id"]} for _ in range(20)]})
    assert r.status_code == 201
    macs = [p["mac_address"] for p in r.json()["ports"]]
    assert len(set(macs)) == 20 and all(MAC.match(m) for m in macs)


def test_fixed_ip_by_ip_address(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    port = api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.50"}]


def test_fixed_ip_by_subnet_id(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    second = api.subnet(net["id"], "10.0.1.0/24")
    port = api.port(net["id"], fixed_ips=[{"subnet_id": second["id"]}])
    assert len(port["fixed_ips"]) == 1
    assert port["fixed_ips"][0]["subnet_id"] == second["id"]
    assert port["fixed_ips"][0]["ip_address"].startswith("10.0.1.")
    both = api.port(net["id"], fixed_ips=[{"subnet_id": second["id"], "ip_address": "10.0.1.77"},
                                          {"subnet_id": sub["id"]}])
    assert {f["subnet_id"] for f in both["fixed_ips"]} == {sub["id"], second["id"]}
    assert {"subnet_id": second["id"], "ip_address": "10.0.1.77"} in both["fixed_ips"]


def test_empty_fixed_ips_gives_no_address(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    assert api.port(net["id"], fixed_ips=[])["fixed_ips"] == []


def test_address_already_allocated_is_409(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    first = api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert_fault(_post(api, network_id=net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}]), 409,
                 "IpAddressAlreadyAllocated")
    assert ids(api.get("/v2.0/ports"), "ports") == [first["id"]]


def test_deleting_a_port_frees_its_address(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    first = api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert api.delete(f"/v2.0/ports/{first['id']}").status_code == 204
    again = api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert again["fixed_ips"][0]["ip_address"] == "10.0.0.50"


@pytest.mark.parametrize(("fixed", "status", "type_"), [
    ([{"ip_address": "10.9.9.9"}], 400, "InvalidIpForNetwork"),
    ([{"ip_address": "10.0.0.255"}], 400, "InvalidIpForSubnet"),
    ([{"ip_address": "10.0.0.0"}], 400, "InvalidIpForSubnet"),
    ([{"subnet_id": "SUB", "ip_address": "10.0.1.5"}], 400, "InvalidIpForSubnet"),
    ([{"subnet_id": str(uuid.UUID(int=7))}], 404, "SubnetNotFound"),
    ([{"subnet_id": "not-a-uuid"}], 400, None),
    ([{"ip_address": "10.0.0.300"}], 400, None),
    ([{"bogus": "x"}], 400, None),
    ([{}], 400, None),
    ("10.0.0.5", 400, None),
])
def test_invalid_fixed_ips(api: Api, net: dict[str, Any], sub: dict[str, Any], fixed: Any, status: int,
                           type_: str | None) -> None:
    if isinstance(fixed, list):
        fixed = [{k: (sub["id"] if v == "SUB" else v) for k, v in f.items()} for f in fixed]
    assert_fault(_post(api, network_id=net["id"], fixed_ips=fixed), status, type_)
    _no_ports(api)


def test_subnet_of_another_network_is_rejected(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    other = api.network()
    other_sub = api.subnet(other["id"], "10.5.0.0/24")
    assert_fault(_post(api, network_id=net["id"], fixed_ips=[{"subnet_id": other_sub["id"]}]), 400)
    _no_ports(api)


def test_update_fixed_ips(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    port = api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.0.0.60"}]}})
    assert r.status_code == 200, r.text
    assert r.json()["port"]["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.60"}]
    # the old address is free again
    assert api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.50"}])["fixed_ips"][0]["ip_address"] == \
        "10.0.0.50"
    other = api.port(net["id"])
    taken = other["fixed_ips"][0]["ip_address"]
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"ip_address": taken}]}}),
                 409, "IpAddressAlreadyAllocated")
    assert api.get(f"/v2.0/ports/{port['id']}").json()["port"]["fixed_ips"][0]["ip_address"] == "10.0.0.60"


def test_exhausted_subnet_is_409(api: Api, net: dict[str, Any]) -> None:
    api.subnet(net["id"], "10.0.0.0/29", allocation_pools=[{"start": "10.0.0.2", "end": "10.0.0.3"}])
    api.port(net["id"])
    api.port(net["id"])
    assert_fault(_post(api, network_id=net["id"]), 409, "IpAddressGenerationFailure")
    assert len(api.get("/v2.0/ports").json()["ports"]) == 2


def test_device_id_and_owner(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"], device_id="vm-1", device_owner="compute:nova")
    assert (port["device_id"], port["device_owner"]) == ("vm-1", "compute:nova")
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"device_id": "", "device_owner": ""}})
    assert r.status_code == 200
    assert (r.json()["port"]["device_id"], r.json()["port"]["device_owner"]) == ("", "")


def test_router_interface_may_take_the_gateway(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    port = api.port(net["id"], device_owner="network:router_interface", device_id="r1",
                    fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.0.0.1"}])
    assert port["fixed_ips"][0]["ip_address"] == "10.0.0.1"


def test_allowed_address_pairs(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    pairs = [{"ip_address": "10.0.0.200", "mac_address": "fa:16:3e:00:00:01"}, {"ip_address": "192.168.0.0/24"}]
    port = api.port(net["id"], allowed_address_pairs=pairs)
    # a pair without a MAC takes the port's own MAC (Neutron fills it in)
    assert port["allowed_address_pairs"] == [pairs[0], {"ip_address": "192.168.0.0/24",
                                                        "mac_address": port["mac_address"]}]
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"allowed_address_pairs": []}})
    assert r.status_code == 200 and r.json()["port"]["allowed_address_pairs"] == []
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"allowed_address_pairs": [{"ip_address": "10.0.0.9"}]}})
    assert r.status_code == 200
    assert r.json()["port"]["allowed_address_pairs"] == [{"ip_address": "10.0.0.9",
                                                          "mac_address": port["mac_address"]}]


@pytest.mark.parametrize("pairs", [
    [{"mac_address": "fa:16:3e:00:00:01"}],
    [{"ip_address": "bogus"}],
    [{"ip_address": "10.0.0.5", "mac_address": "zz"}],
    [{"ip_address": "10.0.0.5", "other": 1}],
    {"ip_address": "10.0.0.5"},
])
def test_invalid_allowed_address_pairs(api: Api, net: dict[str, Any], pairs: Any) -> None:
    assert_fault(_post(api, network_id=net["id"], allowed_address_pairs=pairs), 400)
    _no_ports(api)


def test_port_security(api: Api, net: dict[str, Any]) -> None:
    assert api.port(net["id"], port_security_enabled=False)["port_security_enabled"] is False
    insecure = api.network(port_security_enabled=False)
    assert api.port(insecure["id"])["port_security_enabled"] is False  # inherited from the network
    assert api.port(insecure["id"], port_security_enabled=True)["port_security_enabled"] is True


def test_address_pairs_need_port_security(api: Api, net: dict[str, Any]) -> None:
    r = _post(api, network_id=net["id"], port_security_enabled=False,
              allowed_address_pairs=[{"ip_address": "10.0.0.9"}])
    assert_fault(r, 409, "AddressPairAndPortSecurityRequired")
    _no_ports(api)
    port = api.port(net["id"], allowed_address_pairs=[{"ip_address": "10.0.0.9"}])
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"port_security_enabled": False}}), 409,
                 "AddressPairAndPortSecurityRequired")
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"port_security_enabled": False,
                                                           "allowed_address_pairs": [], "security_groups": []}})
    assert r.status_code == 200 and r.json()["port"]["port_security_enabled"] is False


def test_binding_attributes_admin_only(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"], **{"binding:host_id": "compute1", "binding:profile": {"a": 1},
                                  "binding:vnic_type": "direct"})
    assert port["binding:host_id"] == "compute1"
    assert port["binding:profile"] == {"a": 1}
    assert port["binding:vnic_type"] == "direct"
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": "compute2"}})
    assert r.status_code == 200 and r.json()["port"]["binding:host_id"] == "compute2"
    # an admin can filter by host
    assert ids(api.get("/v2.0/ports?binding:host_id=compute2"), "ports") == [port["id"]]


def test_binding_attributes_hidden_from_members(api: Api) -> None:
    alice = api.as_("alice")
    net = alice.network()
    port = alice.port(net["id"])
    for shown in (port, alice.get(f"/v2.0/ports/{port['id']}").json()["port"],
                  alice.get("/v2.0/ports").json()["ports"][0]):
        assert "binding:host_id" not in shown
        assert "binding:profile" not in shown
        assert "binding:vif_type" not in shown
        assert "binding:vif_details" not in shown
        assert shown["binding:vnic_type"] == "normal"
    admin_view = api.get(f"/v2.0/ports/{port['id']}").json()["port"]
    assert {"binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"} <= set(admin_view)
    assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": net["id"], "binding:host_id": "h"}}),
                 403, "PolicyNotAuthorized")
    assert_fault(alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:profile": {"x": 1}}}), 403,
                 "PolicyNotAuthorized")
    assert alice.get(f"/v2.0/ports/{port['id']}?fields=binding:host_id").json()["port"] == {}


def test_invalid_vnic_type(api: Api, net: dict[str, Any]) -> None:
    assert_fault(_post(api, network_id=net["id"], **{"binding:vnic_type": "warp"}), 400)
    _no_ports(api)


def test_network_id_is_not_updatable(api: Api, net: dict[str, Any]) -> None:
    port = api.port(net["id"])
    other = api.network()
    assert_fault(api.put(f"/v2.0/ports/{port['id']}", json={"port": {"network_id": other["id"]}}), 400)


def test_bulk_create(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    r = api.post("/v2.0/ports", json={"ports": [{"network_id": net["id"], "name": "a"},
                                                {"network_id": net["id"], "name": "b",
                                                 "fixed_ips": [{"ip_address": "10.0.0.9"}]}]})
    assert r.status_code == 201, r.text
    ports = r.json()["ports"]
    assert [p["name"] for p in ports] == ["a", "b"]
    assert ports[1]["fixed_ips"][0]["ip_address"] == "10.0.0.9"


@pytest.mark.parametrize("bad", [
    {"fixed_ips": [{"ip_address": "10.0.0.9"}]},  # clashes with the first item
    {"fixed_ips": [{"ip_address": "10.9.9.9"}]},
    {"mac_address": "fa:16:3e:00:00:09"},  # clashes with the first item
    {"network_id": str(uuid.UUID(int=1))},
    {"mac_address": "bogus"},
    {"unknown": 1},
])
def test_bulk_create_is_atomic(api: Api, net: dict[str, Any], sub: dict[str, Any], bad: dict[str, Any]) -> None:
    items = [{"network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.9"}], "mac_address": "fa:16:3e:00:00:09"},
             {"network_id": net["id"], **bad}]
    r = api.post("/v2.0/ports", json={"ports": items})
    assert 400 <= r.status_code < 500
    assert_fault(r, r.status_code)
    _no_ports(api)
    # nothing is held: the first item alone now succeeds
    assert api.post("/v2.0/ports", json={"ports": items[:1]}).status_code == 201


def test_ports_filtered_by_fixed_ips(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    a = api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.10"}])
    api.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.11"}])
    assert ids(api.get("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.10"), "ports") == [a["id"]]
    assert len(ids(api.get(f"/v2.0/ports?fixed_ips=subnet_id%3D{sub['id']}"), "ports")) == 2
    assert_fault(api.get("/v2.0/ports?fixed_ips=ip_address%3Dnope"), 400)


def test_update_fixed_ips_by_subnet_keeps_the_address(api: Api, net: dict[str, Any], sub: dict[str, Any]) -> None:
    port = api.port(net["id"])
    current = port["fixed_ips"][0]["ip_address"]
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"subnet_id": sub["id"]}]}})
    assert r.status_code == 200, r.text
    assert r.json()["port"]["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": current}]
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"subnet_id": sub["id"]},
                                                                          {"subnet_id": sub["id"]}]}})
    assert r.status_code == 200, r.text
    ips = [f["ip_address"] for f in r.json()["port"]["fixed_ips"]]
    assert current in ips and len(set(ips)) == 2
    r = api.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": []}})
    assert r.status_code == 200 and r.json()["port"]["fixed_ips"] == []


def test_ports_filtered_by_network(api: Api, net: dict[str, Any]) -> None:
    other = api.network()
    mine = api.port(net["id"])
    api.port(other["id"])
    assert ids(api.get(f"/v2.0/ports?network_id={net['id']}"), "ports") == [mine["id"]]
