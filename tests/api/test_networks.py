"""Networks: attributes, defaults, CRUD status codes, bulk create and deletion rules."""

from __future__ import annotations

import re
import uuid

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
STANDARD = {"id", "project_id", "tenant_id", "name", "description", "tags", "created_at", "updated_at",
            "revision_number"}
NETWORK_ATTRS = STANDARD | {"admin_state_up", "shared", "mtu", "status", "subnets", "router:external",
                            "port_security_enabled"}


def test_create_returns_201_with_neutron_defaults(api: Api) -> None:
    r = api.post("/v2.0/networks", json={"network": {}})
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    assert NETWORK_ATTRS <= set(net)
    assert uuid.UUID(net["id"])
    assert net["project_id"] == net["tenant_id"] == "admin-project"
    assert net["name"] == "" and net["description"] == ""
    assert net["tags"] == []
    assert net["admin_state_up"] is True
    assert net["shared"] is False
    assert net["router:external"] is False
    assert net["port_security_enabled"] is True
    assert net["mtu"] == 1450  # VXLAN tenant network (default tenant type)
    assert net["status"] == "ACTIVE"
    assert net["subnets"] == []
    assert TIMESTAMP.match(net["created_at"]) and TIMESTAMP.match(net["updated_at"])
    assert isinstance(net["revision_number"], int)


def test_create_with_every_writable_attribute(api: Api) -> None:
    net = api.network(name="blue", description="the blue one", admin_state_up=False, shared=True, mtu=1400,
                      port_security_enabled=False, tags=["b", "a"], **{"router:external": True})
    assert net["name"] == "blue"
    assert net["description"] == "the blue one"
    assert net["admin_state_up"] is False
    assert net["shared"] is True
    assert net["mtu"] == 1400
    assert net["port_security_enabled"] is False
    assert net["router:external"] is True
    assert sorted(net["tags"]) == ["a", "b"]


def test_show_returns_the_same_document_as_create(api: Api) -> None:
    net = api.network(name="n")
    r = api.get(f"/v2.0/networks/{net['id']}")
    assert r.status_code == 200
    assert r.json() == {"network": net}


def test_show_missing_is_404_network_not_found(api: Api) -> None:
    missing = str(uuid.uuid4())
    err = assert_fault(api.get(f"/v2.0/networks/{missing}"), 404, "NetworkNotFound")
    assert missing in err["message"]


def test_list_contains_created_networks(api: Api) -> None:
    a, b = api.network(name="a"), api.network(name="b")
    r = api.get("/v2.0/networks")
    assert set(ids(r, "networks")) == {a["id"], b["id"]}
    assert set(r.json()) == {"networks"}


def test_update_changes_attributes_and_bumps_revision(api: Api) -> None:
    net = api.network(name="old")
    r = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "new", "description": "d",
                                                                  "admin_state_up": False, "mtu": 1450}})
    assert r.status_code == 200, r.text
    upd = r.json()["network"]
    assert (upd["name"], upd["description"], upd["admin_state_up"], upd["mtu"]) == ("new", "d", False, 1450)
    assert upd["revision_number"] == net["revision_number"] + 1
    assert upd["created_at"] == net["created_at"]
    assert upd["updated_at"] >= net["updated_at"]
    shown = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert shown == upd
    r = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "newer"}})
    assert r.json()["network"]["revision_number"] == net["revision_number"] + 2


def test_update_missing_is_404(api: Api) -> None:
    assert_fault(api.put(f"/v2.0/networks/{uuid.uuid4()}", json={"network": {"name": "x"}}), 404,
                 "NetworkNotFound")


def test_update_shared_and_external_as_admin(api: Api) -> None:
    net = api.network()
    r = api.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": True, "router:external": True}})
    assert r.status_code == 200, r.text
    assert r.json()["network"]["shared"] is True
    assert r.json()["network"]["router:external"] is True


def test_mtu_above_the_physical_mtu_is_rejected(api: Api) -> None:
    assert_fault(api.post("/v2.0/networks", json={"network": {"mtu": 9000}}), 400)
    net = api.network()
    assert_fault(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"mtu": 9000}}), 400)
    assert api.get("/v2.0/networks").json()["networks"] == [net]


def test_delete_is_204_then_404(api: Api) -> None:
    net = api.network()
    r = api.delete(f"/v2.0/networks/{net['id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert_fault(api.get(f"/v2.0/networks/{net['id']}"), 404, "NetworkNotFound")
    assert_fault(api.delete(f"/v2.0/networks/{net['id']}"), 404, "NetworkNotFound")
    assert api.get("/v2.0/networks").json()["networks"] == []


def test_subnets_attribute_lists_subnet_ids(api: Api) -> None:
    net = api.network()
    s1 = api.subnet(net["id"], "10.0.0.0/24")
    s2 = api.subnet(net["id"], "10.0.1.0/24")
    shown = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert sorted(shown["subnets"]) == sorted([s1["id"], s2["id"]])
    assert api.delete(f"/v2.0/subnets/{s1['id']}").status_code == 204
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["subnets"] == [s2["id"]]


def test_delete_with_a_port_is_409_network_in_use(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"])
    port = api.port(net["id"])
    assert_fault(api.delete(f"/v2.0/networks/{net['id']}"), 409, "NetworkInUse")
    assert api.get(f"/v2.0/networks/{net['id']}").status_code == 200
    assert api.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert api.delete(f"/v2.0/networks/{net['id']}").status_code == 204


def test_delete_removes_its_subnets(api: Api) -> None:
    net = api.network()
    sub = api.subnet(net["id"])
    other = api.network()
    kept = api.subnet(other["id"])
    assert api.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    assert_fault(api.get(f"/v2.0/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert ids(api.get("/v2.0/subnets"), "subnets") == [kept["id"]]


def test_dhcp_port_does_not_block_network_delete(api: Api) -> None:
    net = api.network()
    api.subnet(net["id"])
    dhcp = api.port(net["id"], device_owner="network:dhcp", device_id="dhcp-host")
    assert api.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    assert_fault(api.get(f"/v2.0/ports/{dhcp['id']}"), 404, "PortNotFound")


def test_bulk_create_returns_all_in_order(api: Api) -> None:
    r = api.post("/v2.0/networks", json={"networks": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    assert r.status_code == 201, r.text
    nets = r.json()["networks"]
    assert [n["name"] for n in nets] == ["a", "b", "c"]
    assert len({n["id"] for n in nets}) == 3
    assert sorted(ids(api.get("/v2.0/networks"), "networks")) == sorted(n["id"] for n in nets)


def test_bulk_create_is_atomic_on_validation_error(api: Api) -> None:
    r = api.post("/v2.0/networks", json={"networks": [{"name": "ok"}, {"name": "bad", "mtu": "big"}]})
    assert_fault(r, 400)
    assert api.get("/v2.0/networks").json()["networks"] == []


def test_bulk_create_is_atomic_on_late_failure(api: Api) -> None:
    # the second item passes request validation and fails in the service, after the first was inserted
    r = api.post("/v2.0/networks", json={"networks": [{"name": "ok"}, {"name": "bad", "mtu": 9000}]})
    assert_fault(r, 400)
    assert api.get("/v2.0/networks").json()["networks"] == []


def test_bulk_create_empty_list_is_400(api: Api) -> None:
    assert_fault(api.post("/v2.0/networks", json={"networks": []}), 400)


def test_method_not_allowed_on_collection_and_member(api: Api) -> None:
    net = api.network()
    assert_fault(api.put("/v2.0/networks", json={"network": {}}), 405)
    assert_fault(api.post(f"/v2.0/networks/{net['id']}", json={"network": {}}), 405)
