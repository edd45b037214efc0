"""Tenancy and policy under noauth identities: visibility, ownership, roles and policy overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_client
from tests.support import servers
from tests.support.neutron import assert_fault, ids


def _net_ids(who: Api) -> set[str]:
    return set(ids(who.get("/v2.0/networks"), "networks"))


def test_project_sees_own_shared_and_external_networks(api: Api, alice: Api, bob: Api) -> None:
    mine = alice.network(name="mine")
    theirs = bob.network(name="theirs")
    shared = api.network(name="shared", shared=True, project_id="carol")
    external = api.network(name="ext", project_id="carol", **{"router:external": True})
    private = api.network(name="private", project_id="carol")
    assert _net_ids(alice) == {mine["id"], shared["id"], external["id"]}
    assert _net_ids(bob) == {theirs["id"], shared["id"], external["id"]}
    assert _net_ids(api) == {mine["id"], theirs["id"], shared["id"], external["id"], private["id"]}
    assert alice.get(f"/v2.0/networks/{shared['id']}").status_code == 200
    assert alice.get(f"/v2.0/networks/{external['id']}").json()["network"]["router:external"] is True


def test_other_projects_private_network_is_404(alice: Api, bob: Api) -> None:
    net = bob.network()
    url = f"/v2.0/networks/{net['id']}"
    assert_fault(alice.get(url), 404, "NetworkNotFound")
    assert_fault(alice.put(url, json={"network": {"name": "mine now"}}), 404, "NetworkNotFound")
    assert_fault(alice.delete(url), 404, "NetworkNotFound")
    assert_fault(alice.get(f"{url}/tags"), 404, "NetworkNotFound")
    assert bob.get(url).json()["network"]["name"] == ""


def test_other_projects_subnets_and_ports_are_invisible(alice: Api, bob: Api) -> None:
    net = bob.network()
    sub = bob.subnet(net["id"])
    port = bob.port(net["id"])
    assert alice.get("/v2.0/subnets").json()["subnets"] == []
    assert alice.get("/v2.0/ports").json()["ports"] == []
    assert_fault(alice.get(f"/v2.0/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert_fault(alice.get(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")
    assert_fault(alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "x"}}), 404, "PortNotFound")
    assert_fault(alice.delete(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")
    assert_fault(alice.delete(f"/v2.0/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert bob.get(f"/v2.0/ports/{port['id']}").status_code == 200


def test_cannot_use_another_projects_private_network(alice: Api, bob: Api) -> None:
    net = bob.network()
    bob.subnet(net["id"])
    assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 404, "NetworkNotFound")
    assert_fault(alice.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.1.0.0/24",
                                                               "ip_version": 4}}), 404, "NetworkNotFound")
    assert ids(bob.get("/v2.0/ports"), "ports") == []
    assert len(bob.get("/v2.0/subnets").json()["subnets"]) == 1


def test_external_network_is_visible_but_not_usable_for_ports(api: Api, alice: Api) -> None:
    ext = api.network(**{"router:external": True})
    api.subnet(ext["id"], "203.0.113.0/24")
    assert alice.get(f"/v2.0/networks/{ext['id']}").status_code == 200
    assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": ext["id"]}}), 404)
    assert api.get("/v2.0/ports").json()["ports"] == []


def test_ports_on_a_shared_network(api: Api, alice: Api, bob: Api) -> None:
    shared = api.network(shared=True, project_id="alice")
    sub = alice.subnet(shared["id"], "10.0.0.0/24")
    # bob can see the subnet of a shared network and create a port on it
    assert bob.get(f"/v2.0/subnets/{sub['id']}").status_code == 200
    port = bob.port(shared["id"])
    assert port["project_id"] == "bob"
    assert port["fixed_ips"][0]["subnet_id"] == sub["id"]
    by_subnet = bob.port(shared["id"], fixed_ips=[{"subnet_id": sub["id"]}])
    assert by_subnet["fixed_ips"][0]["subnet_id"] == sub["id"]
    # the network owner sees ports other projects put on its network
    assert set(ids(alice.get("/v2.0/ports"), "ports")) == {port["id"], by_subnet["id"]}
    assert alice.get(f"/v2.0/ports/{port['id']}").status_code == 200
    # a third project does not
    carol = api.as_("carol")
    assert carol.get("/v2.0/ports").json()["ports"] == []
    assert_fault(carol.get(f"/v2.0/ports/{port['id']}"), 404, "PortNotFound")


def test_network_owner_may_delete_but_not_update_foreign_ports(api: Api, alice: Api, bob: Api) -> None:
    shared = alice.network()
    api.put(f"/v2.0/networks/{shared['id']}", json={"network": {"shared": True}})
    port = bob.port(shared["id"])
    assert_fault(alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "x"}}), 403,
                 "PolicyNotAuthorized")
    assert alice.delete(f"/v2.0/ports/{port['id']}").status_code == 204


def test_sharing_cannot_be_revoked_while_others_use_the_network(api: Api, bob: Api) -> None:
    shared = api.network(shared=True)
    bob.port(shared["id"])
    assert_fault(api.put(f"/v2.0/networks/{shared['id']}", json={"network": {"shared": False}}), 409,
                 "InvalidSharedSetting")


def test_non_owner_cannot_choose_addresses_on_a_shared_network(api: Api, bob: Api) -> None:
    shared = api.network(shared=True)
    api.subnet(shared["id"])
    for attrs in ({"fixed_ips": [{"ip_address": "10.0.0.50"}]}, {"mac_address": "fa:16:3e:00:00:77"},
                  {"port_security_enabled": False}, {"allowed_address_pairs": [{"ip_address": "10.0.0.9"}]},
                  {"device_owner": "network:dhcp"}):
        r = bob.post("/v2.0/ports", json={"port": {"network_id": shared["id"], **attrs}})
        assert_fault(r, 403, "PolicyNotAuthorized")
    assert api.get("/v2.0/ports").json()["ports"] == []


def test_non_owner_cannot_change_a_shared_network(api: Api, bob: Api) -> None:
    shared = api.network(shared=True)
    assert_fault(bob.put(f"/v2.0/networks/{shared['id']}", json={"network": {"name": "mine"}}), 403,
                 "PolicyNotAuthorized")
    assert_fault(bob.delete(f"/v2.0/networks/{shared['id']}"), 403, "PolicyNotAuthorized")
    r = bob.post("/v2.0/subnets", json={"subnet": {"network_id": shared["id"], "cidr": "10.7.0.0/24",
                                                   "ip_version": 4}})
    assert_fault(r, 403, "PolicyNotAuthorized")
    assert api.get(f"/v2.0/networks/{shared['id']}").json()["network"]["name"] == ""


def test_reader_can_read_but_not_write(api: Api) -> None:
    member = api.as_("proj", "member")
    reader = api.as_("proj", "reader")
    net = member.network(name="n")
    sub = member.subnet(net["id"])
    port = member.port(net["id"])
    assert ids(reader.get("/v2.0/networks"), "networks") == [net["id"]]
    assert reader.get(f"/v2.0/ports/{port['id']}").status_code == 200
    assert reader.get(f"/v2.0/networks/{net['id']}/tags").status_code == 200
    forbidden = [
        reader.post("/v2.0/networks", json={"network": {"name": "x"}}),
        reader.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24",
                                                      "ip_version": 4}}),
        reader.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}),
        reader.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "x"}}),
        reader.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"name": "x"}}),
        reader.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "x"}}),
        reader.put(f"/v2.0/networks/{net['id']}/tags/t"),
        reader.delete(f"/v2.0/ports/{port['id']}"),
        reader.delete(f"/v2.0/subnets/{sub['id']}"),
        reader.delete(f"/v2.0/networks/{net['id']}"),
    ]
    for r in forbidden:
        assert_fault(r, 403, "PolicyNotAuthorized")
    assert ids(api.get("/v2.0/networks"), "networks") == [net["id"]]
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["name"] == "n"
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["tags"] == []
    assert len(api.get("/v2.0/ports").json()["ports"]) == 1


def test_identity_without_roles_cannot_write(api: Api) -> None:
    nobody = api.as_("proj", "")
    assert_fault(nobody.post("/v2.0/networks", json={"network": {}}), 403, "PolicyNotAuthorized")


def test_admin_sees_everything_and_creates_for_other_projects(api: Api, alice: Api, bob: Api) -> None:
    a, b = alice.network(), bob.network()
    assert {a["id"], b["id"]} <= _net_ids(api)
    r = api.post("/v2.0/networks", json={"network": {"name": "for-alice", "project_id": "alice"}})
    assert r.status_code == 201
    made = r.json()["network"]
    assert made["project_id"] == made["tenant_id"] == "alice"
    assert made["id"] in _net_ids(alice)
    by_tenant = api.network(tenant_id="bob")
    assert by_tenant["project_id"] == "bob"
    sub = api.subnet(b["id"], project_id="bob")
    port = api.port(b["id"], project_id="bob")
    assert sub["id"] in ids(bob.get("/v2.0/subnets"), "subnets")
    assert port["id"] in ids(bob.get("/v2.0/ports"), "ports")
    # admin can act on anybody's resources
    assert api.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "by-admin"}}).status_code == 200
    assert api.delete(f"/v2.0/ports/{port['id']}").status_code == 204


def test_project_and_tenant_id_must_agree(api: Api) -> None:
    r = api.post("/v2.0/networks", json={"network": {"project_id": "a", "tenant_id": "b"}})
    assert_fault(r, 400)
    assert api.get("/v2.0/networks").json()["networks"] == []


def test_member_cannot_create_for_another_project(alice: Api, api: Api) -> None:
    # as Neutron: naming another project needs admin, checked before any policy or lookup (400)
    assert_fault(alice.post("/v2.0/networks", json={"network": {"project_id": "bob"}}), 400, "HTTPBadRequest")
    net = alice.network()
    assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": net["id"], "project_id": "bob"}}), 400,
                 "HTTPBadRequest")
    assert ids(api.get("/v2.0/networks"), "networks") == [net["id"]]
    assert api.get("/v2.0/ports").json()["ports"] == []


def test_member_may_create_for_own_project_explicitly(alice: Api) -> None:
    assert alice.network(project_id="alice")["project_id"] == "alice"


@pytest.mark.parametrize("attrs", [{"shared": True}, {"router:external": True}])
def test_member_cannot_set_shared_or_external(alice: Api, api: Api, attrs: dict[str, bool]) -> None:
    assert_fault(alice.post("/v2.0/networks", json={"network": attrs}), 403, "PolicyNotAuthorized")
    net = alice.network()
    assert_fault(alice.put(f"/v2.0/networks/{net['id']}", json={"network": attrs}), 403, "PolicyNotAuthorized")
    assert ids(api.get("/v2.0/networks"), "networks") == [net["id"]]
    shown = api.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert shown["shared"] is False and shown["router:external"] is False


def test_member_may_state_the_default_on_create_but_not_update(alice: Api) -> None:
    # as Neutron: an attribute rule is enforced on create only when the value differs from the default
    # (what `openstack network create --no-share` sends); on update it is enforced whenever present
    net = alice.network(shared=False, **{"router:external": False})
    assert net["shared"] is False and net["router:external"] is False
    port = alice.port(net["id"], **{"binding:host_id": "", "binding:profile": {}})
    assert "binding:host_id" not in port
    for attrs in ({"shared": False}, {"router:external": False}):
        assert_fault(alice.put(f"/v2.0/networks/{net['id']}", json={"network": attrs}), 403,
                     "PolicyNotAuthorized")
    assert_fault(alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"binding:host_id": ""}}), 403,
                 "PolicyNotAuthorized")


def test_member_may_manage_own_resources(alice: Api) -> None:
    net = alice.network(name="n", mtu=1400, port_security_enabled=False)
    sub = alice.subnet(net["id"])
    port = alice.port(net["id"], fixed_ips=[{"ip_address": "10.0.0.9"}], mac_address="fa:16:3e:01:02:03")
    assert port["fixed_ips"][0]["ip_address"] == "10.0.0.9"
    assert alice.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "m"}}).status_code == 200
    assert alice.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"name": "s"}}).status_code == 200
    assert alice.put(f"/v2.0/networks/{net['id']}/tags/t").status_code == 201
    assert alice.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert alice.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert alice.delete(f"/v2.0/networks/{net['id']}").status_code == 204


def test_member_cannot_change_own_port_mac(alice: Api) -> None:
    net = alice.network()
    port = alice.port(net["id"])
    r = alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"mac_address": "fa:16:3e:01:02:03"}})
    assert_fault(r, 403, "PolicyNotAuthorized")


def test_default_identity_without_headers(client: Any) -> None:
    r = client.request("POST", "/v2.0/networks", json={"network": {"name": "anon"}})
    assert r.status_code == 201, r.text
    assert r.json()["network"]["project_id"] == "fermion-default"


# -------------------------------------------------------------------------------------- policy override


@pytest.fixture
def overridden(tmp_path: Path) -> Iterator[Api]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        '"create_network": "rule:admin_only"\n'
        '"create_subnet": "rule:admin_only"\n'
        '"create_network:shared": "role:member"\n'
        '"update_network:shared": "role:member"\n'
        '"get_port:binding:host_id": "role:reader"\n'
        '"get_network": "rule:admin_or_owner"\n',
        encoding="utf-8")
    with servers.temporary_database("sqlite", tmp_path) as url, \
            make_client(url, tmp_path, policy_file=str(policy)) as c:
        yield Api(c, "admin-project", "admin")


def test_policy_file_overrides_defaults(overridden: Api) -> None:
    admin = overridden
    alice = admin.as_("alice", "member")
    # create_network is now admin-only
    assert_fault(alice.post("/v2.0/networks", json={"network": {}}), 403, "PolicyNotAuthorized")
    assert admin.get("/v2.0/networks").json()["networks"] == []
    net = admin.network(project_id="alice")
    # members may now change sharing
    r = alice.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": True}})
    assert r.status_code == 200, r.text
    assert r.json()["network"]["shared"] is True
    # shared networks are no longer visible to other projects (get_network is admin_or_owner)
    bob = admin.as_("bob", "member")
    assert bob.get("/v2.0/networks").json()["networks"] == []
    assert_fault(bob.get(f"/v2.0/networks/{net['id']}"), 404, "NetworkNotFound")
    # binding:host_id is now readable by the port's project
    port = admin.port(net["id"], project_id="alice", **{"binding:host_id": "compute1"})
    assert alice.get(f"/v2.0/ports/{port['id']}").json()["port"]["binding:host_id"] == "compute1"
    assert "binding:profile" not in alice.get(f"/v2.0/ports/{port['id']}").json()["port"]


def test_default_policy_without_override(api: Api) -> None:
    # the same requests under the default policy, for contrast
    alice = api.as_("alice", "member")
    net = alice.network()
    assert_fault(alice.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": True}}), 403)
    port = api.port(net["id"], project_id="alice", **{"binding:host_id": "compute1"})
    assert "binding:host_id" not in alice.get(f"/v2.0/ports/{port['id']}").json()["port"]


def test_invalid_policy_file_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"create_network": "role:admin and (" \n', encoding="utf-8")
    with servers.temporary_database("sqlite", tmp_path) as url, pytest.raises(Exception):  # noqa: B017
        make_client(url, tmp_path, policy_file=str(policy))
