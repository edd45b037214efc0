"""Trunks (trunk, trunk-details) as an API user sees them: the trunk and its subports, Neutron's checks and error
bodies, what a trunk does to its ports, and its status as agents (played over the in-process RPC transport)
report the parent port."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_binding import report, report_ports
from tests.api.test_binding_ovs import report_ovs
from tests.conftest import Api
from tests.support.asgi import SyncClient
from tests.support.neutron import assert_fault, ids

MISSING = "00000000-0000-4000-8000-00000000beef"


def vlan(port: dict[str, Any], seg: int) -> dict[str, Any]:
    return {"port_id": port["id"], "segmentation_type": "vlan", "segmentation_id": seg}


def new_port(api: Api, **attrs: Any) -> dict[str, Any]:
    net = api.network()
    return api.port(net["id"], **attrs)


def create(api: Api, parent: dict[str, Any], subs: list[dict[str, Any]] | None = None, **attrs: Any) -> Any:
    body: dict[str, Any] = {"port_id": parent["id"], **attrs}
    if subs is not None:
        body["sub_ports"] = subs
    return api.post("/v2.0/trunks", json={"trunk": body})


def trunk(api: Api, parent: dict[str, Any], subs: list[dict[str, Any]] | None = None, **attrs: Any) -> dict[str, Any]:
    r = create(api, parent, subs, **attrs)
    assert r.status_code == 201, r.text
    return r.json()["trunk"]  # type: ignore[no-any-return]


def action(api: Api, trunk_id: str, name: str, subs: Any) -> Any:
    return api.put(f"/v2.0/trunks/{trunk_id}/{name}", json={"sub_ports": subs})


def show(api: Api, trunk_id: str) -> dict[str, Any]:
    r = api.get(f"/v2.0/trunks/{trunk_id}")
    assert r.status_code == 200, r.text
    return r.json()["trunk"]  # type: ignore[no-any-return]


def port(api: Api, port_id: str) -> dict[str, Any]:
    r = api.get(f"/v2.0/ports/{port_id}")
    assert r.status_code == 200, r.text
    return r.json()["port"]  # type: ignore[no-any-return]


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"trunk", "trunk-details"} <= aliases
    assert api.get("/v2.0/extensions/trunk").json()["extension"]["name"] == "Trunk Extension"


def test_create_show_update_list_delete(tenant: Api) -> None:
    parent = new_port(tenant)
    made = trunk(tenant, parent, name="t1", description="first", tags=["red"])
    assert made == show(tenant, made["id"])
    assert {k: made[k] for k in ("name", "description", "port_id", "admin_state_up", "status", "sub_ports", "tags",
                                 "project_id", "tenant_id", "revision_number")} == {
        "name": "t1", "description": "first", "port_id": parent["id"], "admin_state_up": True, "status": "DOWN",
        "sub_ports": [], "tags": ["red"], "project_id": "tenant-a", "tenant_id": "tenant-a", "revision_number": 1}
    assert made["created_at"].endswith("Z") and made["updated_at"].endswith("Z")
    r = tenant.put(f"/v2.0/trunks/{made['id']}", json={"trunk": {"name": "t2", "admin_state_up": False}})
    assert r.status_code == 200, r.text
    updated = r.json()["trunk"]
    assert (updated["name"], updated["admin_state_up"], updated["revision_number"]) == ("t2", False, 2)
    assert_fault(tenant.put(f"/v2.0/trunks/{made['id']}", json={"trunk": {"port_id": parent["id"]}}), 400)
    assert_fault(tenant.put(f"/v2.0/trunks/{made['id']}", json={"trunk": {"status": "ACTIVE"}}), 400)
    other = trunk(tenant, new_port(tenant), name="t3")
    assert ids(tenant.get("/v2.0/trunks", params={"sort_key": "name", "sort_dir": "desc"}), "trunks") == [
        other["id"], made["id"]]
    assert ids(tenant.get("/v2.0/trunks", params={"port_id": parent["id"]}), "trunks") == [made["id"]]
    assert ids(tenant.get("/v2.0/trunks", params={"admin_state_up": "true"}), "trunks") == [other["id"]]
    assert ids(tenant.get("/v2.0/trunks", params={"tags": "red"}), "trunks") == [made["id"]]
    page = tenant.get("/v2.0/trunks", params={"limit": 1, "sort_key": "name"}).json()
    assert [t["id"] for t in page["trunks"]] == [made["id"]] and page["trunks_links"][0]["rel"] == "next"
    assert tenant.get("/v2.0/trunks", params={"fields": ["id", "status"]}).json()["trunks"][0].keys() == {
        "id", "status"}
    assert_fault(tenant.get("/v2.0/trunks", params={"sub_ports": "x"}), 400)
    assert tenant.put(f"/v2.0/trunks/{made['id']}/tags/blue").status_code == 201
    assert show(tenant, made["id"])["tags"] == ["blue", "red"]
    # a disabled trunk is not deleted (TrunkDisabled); enabled again it is
    assert_fault(tenant.delete(f"/v2.0/trunks/{made['id']}"), 409, "TrunkDisabled")
    tenant.put(f"/v2.0/trunks/{made['id']}", json={"trunk": {"admin_state_up": True}})
    assert tenant.delete(f"/v2.0/trunks/{made['id']}").status_code == 204
    err = assert_fault(tenant.get(f"/v2.0/trunks/{made['id']}"), 404, "TrunkNotFound")
    assert err["message"] == f"Trunk {made['id']} could not be found."


def test_subports_are_added_listed_and_removed(tenant: Api) -> None:
    parent = new_port(tenant)
    a, b = new_port(tenant), new_port(tenant)
    made = trunk(tenant, parent, [vlan(a, 100)])
    assert made["sub_ports"] == [vlan(a, 100)]
    r = action(tenant, made["id"], "add_subports", [{**vlan(b, 20), "segmentation_id": "20"}])
    assert r.status_code == 200, r.text
    body = r.json()  # the trunk itself, unwrapped (Neutron)
    assert body["id"] == made["id"] and body["sub_ports"] == [vlan(b, 20), vlan(a, 100)]
    assert body["revision_number"] == made["revision_number"] + 1
    got = tenant.get(f"/v2.0/trunks/{made['id']}/get_subports")
    assert got.status_code == 200 and got.json() == {"sub_ports": [vlan(b, 20), vlan(a, 100)]}
    assert_fault(tenant.put(f"/v2.0/trunks/{made['id']}/get_subports"), 405)
    for sub in (a, b):  # owned by the trunk, on the parent's host (none)
        shown = port(tenant, sub["id"])
        assert (shown["device_owner"], shown["device_id"]) == ("trunk:subport", made["id"])
    r = action(tenant, made["id"], "remove_subports", [{"port_id": a["id"]}])
    assert r.status_code == 200 and r.json()["sub_ports"] == [vlan(b, 20)]
    assert (port(tenant, a["id"])["device_owner"], port(tenant, a["id"])["device_id"]) == ("", "")
    err = assert_fault(action(tenant, made["id"], "remove_subports", [{"port_id": a["id"]}]), 404, "SubPortNotFound")
    assert err["message"] == f"SubPort on trunk {made['id']} with parent port {a['id']} could not be found."
    # deleting the trunk frees its subports
    assert tenant.delete(f"/v2.0/trunks/{made['id']}").status_code == 204
    assert (port(tenant, b["id"])["device_owner"], port(tenant, b["id"])["device_id"]) == ("", "")
    assert tenant.delete(f"/v2.0/ports/{b['id']}").status_code == 204


def test_trunk_details_on_the_parent_port(tenant: Api) -> None:
    parent, sub, plain = new_port(tenant), new_port(tenant), new_port(tenant)
    made = trunk(tenant, parent, [vlan(sub, 7)])
    details = {"trunk_id": made["id"], "sub_ports": [{**vlan(sub, 7), "mac_address": sub["mac_address"]}]}
    assert port(tenant, parent["id"])["trunk_details"] == details
    assert "trunk_details" not in port(tenant, plain["id"]) and "trunk_details" not in port(tenant, sub["id"])
    listed = {p["id"]: p for p in tenant.get("/v2.0/ports").json()["ports"]}
    assert listed[parent["id"]]["trunk_details"] == details and "trunk_details" not in listed[plain["id"]]
    action(tenant, made["id"], "remove_subports", [{"port_id": sub["id"]}])
    assert port(tenant, parent["id"])["trunk_details"] == {"trunk_id": made["id"], "sub_ports": []}


@pytest.mark.parametrize(("subs", "message"), [
    ({"port_id": MISSING}, f"Invalid data format for subports: '{{'port_id': '{MISSING}'}}' is not a list"),
    (["x"], "Invalid data format for subport: 'x' is not a dict"),
    ([{"segmentation_type": "vlan", "segmentation_id": 3}], "A valid port UUID must be specified"),
    ([{"port_id": "nope", "segmentation_type": "vlan", "segmentation_id": 3}], "Invalid UUID for subport: 'nope'"),
    ([{"port_id": MISSING, "segmentation_type": "vlan"}],
     f"Invalid subport details '{{'port_id': '{MISSING}', 'segmentation_type': 'vlan'}}': missing segmentation "
     "information. Must specify both segmentation_id and segmentation_type"),
])
def test_malformed_subports_are_refused_before_any_lookup(tenant: Api, subs: Any, message: str) -> None:
    # the parent does not exist: the body is checked first (400, not 404), as Neutron's API layer does
    r = tenant.post("/v2.0/trunks", json={"trunk": {"port_id": MISSING, "sub_ports": subs}})
    err = assert_fault(r, 400, "HTTPBadRequest")
    assert err["message"] == f"Invalid input for sub_ports. Reason: {message}."
    made = trunk(tenant, new_port(tenant))
    err = assert_fault(action(tenant, made["id"], "add_subports", subs), 400, "InvalidInput")
    assert err["message"] == f"Invalid input for operation: {message}."


def test_segmentation_checks(tenant: Api) -> None:
    parent, a, b = new_port(tenant), new_port(tenant), new_port(tenant)
    err = assert_fault(create(tenant, parent, [vlan(a, 2), vlan(b, 2)]), 400)
    assert err["message"].endswith(f"Segmentation ID '2' for '{b['id']}' is not unique.")
    made = trunk(tenant, parent)
    for seg, why in ((0, "Segmentation ID '0' is not in range."), (4095, "Segmentation ID '4095' is not in range."),
                     ("x", "Invalid subport details: segmentation_id 'x' is not an integer.")):
        err = assert_fault(action(tenant, made["id"], "add_subports", [{**vlan(a, 1), "segmentation_id": seg}]),
                           400, "InvalidInput")
        assert err["message"] == f"Invalid input for operation: {why}"
    err = assert_fault(action(tenant, made["id"], "add_subports", [{**vlan(a, 1), "segmentation_type": "vxlan"}]),
                       400, "InvalidInput")
    assert err["message"] == "Invalid input for operation: Unknown segmentation_type 'vxlan'."
    assert_fault(action(tenant, made["id"], "add_subports", [{"port_id": a["id"]}]), 400, "InvalidInput")
    assert action(tenant, made["id"], "add_subports", [vlan(a, 4094)]).status_code == 200
    err = assert_fault(action(tenant, made["id"], "add_subports", [vlan(b, 4094)]), 409, "DuplicateSubPort")
    assert err["message"] == (f"segmentation_type vlan and segmentation_id 4094 already in use on trunk "
                              f"{made['id']}.")
    # another trunk may use the same VLAN
    assert trunk(tenant, new_port(tenant), [vlan(b, 4094)])["sub_ports"] == [vlan(b, 4094)]


def test_inherit_takes_the_segmentation_of_a_vlan_provider_network(admin: Api) -> None:
    net = admin.network(**{"provider:network_type": "vlan", "provider:physical_network": "physnet1",
                           "provider:segmentation_id": 321})
    sub = admin.port(net["id"])
    parent = admin.port(net["id"])  # (a VXLAN network's MTU is smaller than the subport's)
    made = trunk(admin, parent, [{"port_id": sub["id"], "segmentation_type": "inherit"}])
    assert made["sub_ports"] == [vlan(sub, 321)]
    vx = admin.network(**{"provider:network_type": "vxlan"})
    other = admin.port(vx["id"])
    err = assert_fault(action(admin, made["id"], "add_subports",
                              [{"port_id": other["id"], "segmentation_type": "inherit", "segmentation_id": -1}]),
                       400, "InvalidInput")
    assert err["message"] == "Invalid input for operation: Unknown segmentation_type 'vxlan'."


def test_ports_in_use(tenant: Api) -> None:
    parent, a, b = new_port(tenant), new_port(tenant), new_port(tenant)
    made = trunk(tenant, parent, [vlan(a, 10)])
    err = assert_fault(create(tenant, parent), 409, "ParentPortInUse")
    assert err["message"] == (f"Port {parent['id']} is currently in use and is not eligible for use as a parent "
                              "port.")
    err = assert_fault(create(tenant, a), 409, "TrunkPortInUse")
    assert err["message"] == f"Port {a['id']} is in use by another trunk."
    assert_fault(action(tenant, made["id"], "add_subports", [vlan(parent, 11)]), 409, "ParentPortInUse")
    assert_fault(create(tenant, b, [vlan(parent, 3)]), 409, "ParentPortInUse")
    assert_fault(create(tenant, b, [vlan(a, 3)]), 409, "TrunkPortInUse")
    assert_fault(create(tenant, b, [vlan(b, 3)]), 409, "ParentPortInUse")
    busy = new_port(tenant, device_id="vm-1")
    err = assert_fault(action(tenant, made["id"], "add_subports", [vlan(busy, 12)]), 409, "PortInUse")
    assert err["message"] == (f"Unable to complete operation on port {busy['id']} for network "
                              f"{busy['network_id']}. Port already has an attached device vm-1.")
    err = assert_fault(create(tenant, {"id": MISSING}), 404, "PortNotFound")
    assert err["message"] == f"Port {MISSING} could not be found."
    assert_fault(action(tenant, made["id"], "add_subports", [{**vlan(b, 1), "port_id": MISSING}]), 404,
                 "PortNotFound")
    assert_fault(action(tenant, MISSING, "add_subports", [vlan(b, 1)]), 404, "TrunkNotFound")
    # a trunk's ports are not deleted
    err = assert_fault(tenant.delete(f"/v2.0/ports/{parent['id']}"), 409, "PortInUseAsTrunkParent")
    assert err["message"] == f"Port {parent['id']} is currently a parent port for trunk {made['id']}."
    err = assert_fault(tenant.delete(f"/v2.0/ports/{a['id']}"), 409, "PortInUseAsSubPort")
    assert err["message"] == f"Port {a['id']} is currently a subport for trunk {made['id']}."


def test_subport_mtu_may_not_exceed_the_parents(admin: Api) -> None:
    small = admin.network(mtu=1400)
    big = admin.network(mtu=1450)
    p_small, p_small2, p_big = admin.port(small["id"]), admin.port(small["id"]), admin.port(big["id"])
    err = assert_fault(create(admin, p_small, [vlan(p_big, 5)]), 409, "SubPortMtuGreaterThanTrunkPortMtu")
    assert err["message"] == (f"MTU 1450 of subport {p_big['id']} cannot be greater than MTU 1400 of trunk "
                              f"{p_small['id']}.")
    made = trunk(admin, p_small)
    assert_fault(action(admin, made["id"], "add_subports", [vlan(p_big, 5)]), 409,
                 "SubPortMtuGreaterThanTrunkPortMtu")
    assert action(admin, made["id"], "add_subports", [vlan(p_small2, 5)]).status_code == 200
    assert trunk(admin, p_big, [])["port_id"] == p_big["id"]


def test_a_disabled_trunk_keeps_its_subports(tenant: Api) -> None:
    parent, a, b = new_port(tenant), new_port(tenant), new_port(tenant)
    made = trunk(tenant, parent, [vlan(a, 10)], admin_state_up=False)
    err = assert_fault(action(tenant, made["id"], "add_subports", [vlan(b, 11)]), 409, "TrunkDisabled")
    assert err["message"] == f"Trunk {made['id']} is currently disabled."
    assert_fault(action(tenant, made["id"], "remove_subports", [{"port_id": a["id"]}]), 409, "TrunkDisabled")
    assert show(tenant, made["id"])["sub_ports"] == [vlan(a, 10)]


def test_nothing_is_half_written(tenant: Api) -> None:
    parent, a, b = new_port(tenant), new_port(tenant), new_port(tenant, device_id="vm-2")
    assert_fault(create(tenant, parent, [vlan(a, 1), vlan(b, 2)]), 409, "PortInUse")
    assert tenant.get("/v2.0/trunks").json()["trunks"] == []
    assert port(tenant, a["id"])["device_owner"] == "" and "trunk_details" not in port(tenant, parent["id"])
    made = trunk(tenant, parent)
    c = new_port(tenant)
    action(tenant, made["id"], "add_subports", [vlan(c, 2)])
    assert_fault(action(tenant, made["id"], "add_subports", [vlan(a, 1), vlan(new_port(tenant), 2)]), 409,
                 "DuplicateSubPort")
    shown = show(tenant, made["id"])
    assert shown["sub_ports"] == [vlan(c, 2)] and shown["revision_number"] == 2
    assert port(tenant, a["id"])["device_owner"] == ""


def test_other_projects(alice: Api, bob: Api) -> None:
    parent, sub = new_port(alice), new_port(alice)
    made = trunk(alice, parent)
    assert_fault(bob.get(f"/v2.0/trunks/{made['id']}"), 404, "TrunkNotFound")
    assert_fault(bob.get(f"/v2.0/trunks/{made['id']}/get_subports"), 404, "TrunkNotFound")
    assert_fault(action(bob, made["id"], "add_subports", [vlan(new_port(bob), 3)]), 404, "TrunkNotFound")
    assert_fault(bob.delete(f"/v2.0/trunks/{made['id']}"), 404, "TrunkNotFound")
    assert bob.get("/v2.0/trunks").json()["trunks"] == []
    assert_fault(create(bob, sub), 404, "PortNotFound")  # another project's port is not there for bob
    assert_fault(create(bob, new_port(bob), [vlan(sub, 3)]), 404, "PortNotFound")
    reader = alice.as_("alice", "reader")
    assert reader.get(f"/v2.0/trunks/{made['id']}/get_subports").status_code == 200
    assert_fault(action(reader, made["id"], "add_subports", [vlan(sub, 3)]), 403, "PolicyNotAuthorized")


def test_status_follows_the_parent_port(client: SyncClient, admin: Api) -> None:
    report_ovs(client, "ovs-1")  # it maps physnet1 only
    net = admin.network(**{"provider:network_type": "flat", "provider:physical_network": "physnet1"})
    admin.subnet(net["id"])
    parent = admin.port(net["id"], port_security_enabled=False)
    sub = admin.port(net["id"], port_security_enabled=False)
    made = trunk(admin, parent, [vlan(sub, 10)])
    assert made["status"] == "DOWN"
    admin.put(f"/v2.0/ports/{parent['id']}", json={"port": {"binding:host_id": "ovs-1"}})
    # the subport follows its parent to its host
    assert port(admin, sub["id"])["binding:host_id"] == "ovs-1" and port(admin, sub["id"])["binding:vif_type"] == "ovs"
    assert show(admin, made["id"])["status"] == "DOWN"  # the parent is not ACTIVE yet
    report_ports(client, "ovs-1", up={parent["id"]: port(admin, parent["id"])["revision_number"]})
    assert port(admin, parent["id"])["status"] == "ACTIVE"
    assert show(admin, made["id"])["status"] == "BUILD"  # the parent is wired, its subport not yet
    report_ports(client, "ovs-1", up={sub["id"]: port(admin, sub["id"])["revision_number"]})
    assert show(admin, made["id"])["status"] == "ACTIVE"
    # a subport whose binding fails (its network's physnet is not mapped on the host) degrades the trunk: the
    # others still carry their VLANs, and more may be added
    elsewhere = admin.network(**{"provider:network_type": "flat", "provider:physical_network": "physnet9"})
    bad = admin.port(elsewhere["id"], port_security_enabled=False)
    assert action(admin, made["id"], "add_subports", [vlan(bad, 11)]).json()["status"] == "DEGRADED"
    assert port(admin, bad["id"])["binding:vif_type"] == "binding_failed"
    more = admin.port(net["id"], port_security_enabled=False)
    assert action(admin, made["id"], "add_subports", [vlan(more, 12)]).json()["status"] == "BUILD"
    report_ports(client, "ovs-1", up={more["id"]: port(admin, more["id"])["revision_number"]})
    assert show(admin, made["id"])["status"] == "DEGRADED"
    assert action(admin, made["id"], "remove_subports", [{"port_id": bad["id"]}]).json()["status"] == "ACTIVE"
    assert port(admin, bad["id"])["binding:host_id"] == ""
    # a parent whose binding fails puts its trunk in ERROR, which refuses new subports
    lost = admin.port(elsewhere["id"], port_security_enabled=False)
    broken = trunk(admin, lost)
    admin.put(f"/v2.0/ports/{lost['id']}", json={"port": {"binding:host_id": "ovs-1"}})
    assert port(admin, lost["id"])["binding:vif_type"] == "binding_failed"
    assert show(admin, broken["id"])["status"] == "ERROR"
    assert_fault(action(admin, broken["id"], "add_subports", [vlan(admin.port(net["id"]), 13)]), 409,
                 "TrunkInErrorState")
    report_ports(client, "ovs-1", down=[parent["id"]])
    assert show(admin, made["id"])["status"] == "DOWN"
    # bound on an OVS host, the trunk may go; subports are freed from the host
    assert admin.delete(f"/v2.0/trunks/{made['id']}").status_code == 204
    assert port(admin, sub["id"])["binding:host_id"] == "" and port(admin, sub["id"])["device_owner"] == ""


def test_bound_parents_need_a_trunk_driver_on_their_host(client: SyncClient, admin: Api) -> None:
    report(client, "lb-1")
    report_ovs(client, "ovs-1")
    net = admin.network()
    admin.subnet(net["id"])
    on_lb = admin.port(net["id"], **{"binding:host_id": "lb-1"})
    assert port(admin, on_lb["id"])["binding:vif_type"] == "bridge"
    assert_fault(create(admin, on_lb), 409, "ParentPortInUse")  # Linux-bridge hosts have no trunk driver here
    parent = admin.port(net["id"], port_security_enabled=False, **{"binding:host_id": "ovs-1"})
    made = trunk(admin, parent)
    admin.put(f"/v2.0/ports/{parent['id']}", json={"port": {"binding:host_id": "lb-1"}})
    err = assert_fault(admin.delete(f"/v2.0/trunks/{made['id']}"), 409, "TrunkInUse")
    assert err["message"] == f"Trunk {made['id']} is currently in use."
    admin.put(f"/v2.0/ports/{parent['id']}", json={"port": {"binding:host_id": ""}})
    assert admin.delete(f"/v2.0/trunks/{made['id']}").status_code == 204


def test_subports_follow_a_live_migrated_parent(client: SyncClient, admin: Api) -> None:
    report_ovs(client, "ovs-1")
    report_ovs(client, "ovs-2")
    net = admin.network()
    admin.subnet(net["id"])
    parent = admin.port(net["id"], port_security_enabled=False, device_owner="compute:nova", device_id="vm-9",
                        **{"binding:host_id": "ovs-1"})
    sub = admin.port(net["id"], port_security_enabled=False)
    trunk(admin, parent, [vlan(sub, 10)])
    assert port(admin, sub["id"])["binding:host_id"] == "ovs-1"
    r = admin.post(f"/v2.0/ports/{parent['id']}/bindings", json={"binding": {"host": "ovs-2"}})
    assert r.status_code == 201, r.text
    assert port(admin, sub["id"])["binding:host_id"] == "ovs-1"  # an inactive binding moves nothing
    r = admin.put(f"/v2.0/ports/{parent['id']}/bindings/ovs-2/activate")
    assert r.status_code == 200, r.text
    shown = port(admin, sub["id"])
    assert (shown["binding:host_id"], shown["binding:vif_type"]) == ("ovs-2", "ovs")
