"""RBAC policies (/v2.0/rbac-policies): the resource itself and what a grant lets a project see and use.

The isolation tests prove the other side: a project no policy targets sees and reaches nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

RBAC = "/v2.0/rbac-policies"


def share(who: Api, object_id: str, target: str, action: str = "access_as_shared",
          object_type: str = "network", **extra: Any) -> dict[str, Any]:
    r = who.post(RBAC, json={"rbac_policy": {"object_type": object_type, "object_id": object_id,
                                             "action": action, "target_tenant": target, **extra}})
    assert r.status_code == 201, r.text
    return r.json()["rbac_policy"]


def make_sg(who: Api, **attrs: Any) -> dict[str, Any]:
    r = who.post("/v2.0/security-groups", json={"security_group": attrs})
    assert r.status_code == 201, r.text
    return r.json()["security_group"]


def policy_ids(who: Api, **query: str) -> list[str]:
    return ids(who.get(RBAC, params=query), "rbac_policies")


def net_ids(who: Api, **query: str) -> set[str]:
    return set(ids(who.get("/v2.0/networks", params=query), "networks"))


# ------------------------------------------------------------------------------ the resource

def test_create_show_list_update_delete(alice: Api, bob: Api) -> None:
    net = alice.network()
    pol = share(alice, net["id"], "bob")
    assert set(pol) == {"id", "project_id", "tenant_id", "object_type", "object_id", "action", "target_tenant"}
    assert pol["project_id"] == pol["tenant_id"] == "alice"
    assert (pol["object_type"], pol["object_id"], pol["action"], pol["target_tenant"]) == (
        "network", net["id"], "access_as_shared", "bob")
    assert alice.get(f"{RBAC}/{pol['id']}").json()["rbac_policy"] == pol
    assert policy_ids(alice) == [pol["id"]]
    # the target does not see the policy that shares with it: it belongs to alice
    assert policy_ids(bob) == []
    assert_fault(bob.get(f"{RBAC}/{pol['id']}"), 404, "RbacPolicyNotFound")
    r = alice.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {"target_tenant": "carol"}})
    assert r.status_code == 200, r.text
    updated = r.json()["rbac_policy"]
    assert updated == {**pol, "target_tenant": "carol"}
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204
    err = assert_fault(alice.get(f"{RBAC}/{pol['id']}"), 404, "RbacPolicyNotFound")
    assert err["message"] == f"RBAC policy of type None with ID {pol['id']} not found"


def test_only_target_tenant_is_updatable(alice: Api) -> None:
    pol = share(alice, alice.network()["id"], "bob")
    for attr, value in (("action", "access_as_external"), ("object_id", pol["object_id"]),
                        ("object_type", "network"), ("project_id", "x")):
        assert_fault(alice.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {attr: value}}), 400)


def test_filters_sorting_pagination_and_fields(alice: Api) -> None:
    a, b = alice.network(), alice.network()
    pols = [share(alice, a["id"], t) for t in ("p1", "p2", "p3")] + [share(alice, b["id"], "p1")]
    assert sorted(policy_ids(alice, object_id=a["id"])) == sorted(p["id"] for p in pols[:3])
    assert sorted(policy_ids(alice, target_tenant="p1")) == sorted([pols[0]["id"], pols[3]["id"]])
    assert policy_ids(alice, id=pols[1]["id"]) == [pols[1]["id"]]
    assert policy_ids(alice, action="access_as_external") == []
    assert len(policy_ids(alice, object_type="network")) == 4
    r = alice.get(RBAC, params={"sort_key": "target_tenant", "sort_dir": "desc", "limit": 2})
    body = r.json()
    assert [p["target_tenant"] for p in body["rbac_policies"]] == ["p3", "p2"]
    assert any(link["rel"] == "next" for link in body["rbac_policies_links"])
    for fields in (["id"], ["id", "action"], ["object_type", "object_id"], ["tenant_id", "target_tenant"]):
        got = alice.get(RBAC, params={"fields": fields}).json()["rbac_policies"]
        assert {frozenset(p) for p in got} == {frozenset(fields)}


def test_bad_input(alice: Api, bob: Api) -> None:
    net = alice.network()

    def create(**attrs: Any) -> Any:
        body = {"object_type": "network", "object_id": net["id"], "action": "access_as_shared",
                "target_tenant": "bob", **attrs}
        return alice.post(RBAC, json={"rbac_policy": {k: v for k, v in body.items() if v is not ...}})

    err = assert_fault(create(object_type="router"), 400, "InvalidInput")
    assert err["message"] == "Invalid input for operation: 'router' is not a valid RBAC object type."
    err = assert_fault(create(action="access_as_owner"), 400, "InvalidActionForType")
    assert err["message"] == ("Invalid action 'access_as_owner' for object type 'network'. Valid actions: "
                              "('access_as_external', 'access_as_shared')")
    sg = make_sg(alice, name="web")
    err = assert_fault(create(object_type="security_group", object_id=sg["id"], action="access_as_external"),
                       400, "InvalidActionForType")
    assert "Valid actions: ('access_as_shared',)" in err["message"]
    assert_fault(create(target_tenant=None), 400)
    assert_fault(create(target_tenant="1234" * 100), 400)
    assert_fault(create(target_tenant=...), 400)
    assert_fault(create(object_id="not-a-uuid"), 400)
    assert_fault(create(object_id="6e1a4b4c-3c0a-4f4e-9a53-000000000000"), 400, "InvalidInput")
    assert_fault(create(unknown=1), 400)
    assert policy_ids(alice) == []


def test_duplicate_is_409(alice: Api, api: Api) -> None:
    net = alice.network()
    share(alice, net["id"], "bob")
    r = alice.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                               "action": "access_as_shared", "target_tenant": "bob"}})
    err = assert_fault(r, 409, "DuplicateRbacPolicy")
    assert err["message"] == "An RBAC policy already exists with those values."
    other = share(alice, net["id"], "carol")
    assert_fault(alice.put(f"{RBAC}/{other['id']}", json={"rbac_policy": {"target_tenant": "bob"}}),
                 409, "DuplicateRbacPolicy")


def test_wildcard_is_for_admins_only(alice: Api, api: Api) -> None:
    net = alice.network()
    r = alice.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                               "action": "access_as_shared", "target_tenant": "*"}})
    assert_fault(r, 403, "PolicyNotAuthorized")
    pol = share(alice, net["id"], "bob")
    assert_fault(alice.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {"target_tenant": "*"}}), 403)
    assert api.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {"target_tenant": "*"}}).status_code == 200


def test_only_the_owner_shares_its_objects(alice: Api, bob: Api, api: Api) -> None:
    net = alice.network()
    # invisible to bob: as if it did not exist
    r = bob.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                             "action": "access_as_shared", "target_tenant": "bob"}})
    assert_fault(r, 400, "InvalidInput")
    share(alice, net["id"], "bob")
    # visible to bob now, still not his to share
    r = bob.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                             "action": "access_as_shared", "target_tenant": "carol"}})
    err = assert_fault(r, 400, "InvalidInput")
    assert "Only admins can manipulate policies on networks they do not own" in err["message"]
    # an admin may share anything, for any project
    pol = share(api, net["id"], "dave", project_id="alice")
    assert pol["project_id"] == "alice"


def test_quota(api: Api, alice: Api) -> None:
    assert alice.get("/v2.0/quotas/alice").json()["quota"]["rbac_policy"] == 10
    assert api.put("/v2.0/quotas/alice", json={"quota": {"rbac_policy": 2}}).status_code == 200
    net = alice.network()
    share(alice, net["id"], "p1")
    pol = share(alice, net["id"], "p2")
    r = alice.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                               "action": "access_as_shared", "target_tenant": "p3"}})
    assert_fault(r, 409, "OverQuota")
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204
    share(alice, net["id"], "p3")
    details = alice.get("/v2.0/quotas/alice/details").json()["quota"]["rbac_policy"]
    assert details["used"] == 2


# ------------------------------------------------------------------------------ networks

def test_shared_flag_is_a_wildcard_policy(api: Api, alice: Api) -> None:
    net = api.network(shared=True)
    found = api.get(RBAC, params={"object_id": net["id"]}).json()["rbac_policies"]
    assert [(p["action"], p["target_tenant"], p["project_id"]) for p in found] == [
        ("access_as_shared", "*", "admin-project")]
    assert net["id"] in net_ids(alice)
    assert api.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": False}}).status_code == 200
    assert policy_ids(api, object_id=net["id"]) == []
    assert net["id"] not in net_ids(alice)
    assert api.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": True}}).status_code == 200
    assert len(policy_ids(api, object_id=net["id"], target_tenant="*")) == 1
    # deleting the wildcard policy unshares the network
    pol = policy_ids(api, object_id=net["id"])[0]
    assert api.delete(f"{RBAC}/{pol}").status_code == 204
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["shared"] is False
    # and creating one shares it
    share(api, net["id"], "*")
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["shared"] is True


def test_shared_reads_true_for_the_target_only(alice: Api, bob: Api, carol: Api, api: Api) -> None:
    net = alice.network()
    share(alice, net["id"], "bob")
    assert bob.get(f"/v2.0/networks/{net['id']}").json()["network"]["shared"] is True
    assert [n["shared"] for n in bob.get("/v2.0/networks").json()["networks"]] == [True]
    assert alice.get(f"/v2.0/networks/{net['id']}").json()["network"]["shared"] is False
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["shared"] is False
    assert net_ids(bob, shared="true") == {net["id"]}
    assert net_ids(bob, shared="false") == set()
    assert net_ids(alice, shared="true") == set()
    assert net_ids(alice, shared="false") == {net["id"]}
    assert net_ids(carol) == set()


def test_network_shared_with_a_project(alice: Api, bob: Api, carol: Api) -> None:
    net = alice.network()
    sub = alice.subnet(net["id"], "10.20.0.0/24")
    share(alice, net["id"], "bob")
    assert net_ids(bob) == {net["id"]}
    assert bob.get(f"/v2.0/subnets/{sub['id']}").status_code == 200
    assert ids(bob.get("/v2.0/subnets"), "subnets") == [sub["id"]]
    port = bob.port(net["id"])
    assert port["project_id"] == "bob"
    # bob uses it: the policy cannot go
    pol = policy_ids(alice)[0]
    err = assert_fault(alice.delete(f"{RBAC}/{pol}"), 409, "RbacPolicyInUse")
    assert err["message"].startswith(f"RBAC policy on object {net['id']} cannot be removed because other "
                                     "objects depend on it.")
    assert_fault(alice.put(f"{RBAC}/{pol}", json={"rbac_policy": {"target_tenant": "carol"}}), 409,
                 "RbacPolicyInUse")
    # the network's owner may delete bob's port on its network
    assert alice.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert alice.delete(f"{RBAC}/{pol}").status_code == 204
    assert net_ids(bob) == set()
    assert_fault(bob.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 404, "NetworkNotFound")


def test_wildcard_covers_a_project_policy_and_the_reverse(alice: Api, bob: Api, api: Api) -> None:
    net = alice.network()
    alice.subnet(net["id"], "10.21.0.0/24")
    own = share(alice, net["id"], "bob")
    bob.port(net["id"])
    wild = share(api, net["id"], "*", project_id="alice")
    assert alice.delete(f"{RBAC}/{own['id']}").status_code == 204  # the wildcard still grants bob access
    assert_fault(api.delete(f"{RBAC}/{wild['id']}"), 409, "RbacPolicyInUse")
    assert_fault(api.put(f"{RBAC}/{wild['id']}", json={"rbac_policy": {"target_tenant": "carol"}}), 409,
                 "RbacPolicyInUse")
    assert_fault(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": False}}), 409,
                 "InvalidSharedSetting")
    share(alice, net["id"], "bob")
    assert api.delete(f"{RBAC}/{wild['id']}").status_code == 204


def test_self_share_can_go_while_owner_has_ports(alice: Api) -> None:
    net = alice.network()
    alice.subnet(net["id"], "10.22.0.0/24")
    pol = share(alice, net["id"], "alice")
    alice.port(net["id"])
    assert alice.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {"target_tenant": "bob"}}).status_code == 200
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204


def test_policies_go_with_their_network(alice: Api) -> None:
    net = alice.network()
    share(alice, net["id"], "bob")
    share(alice, net["id"], "carol")
    assert alice.get("/v2.0/quotas/alice/details").json()["quota"]["rbac_policy"]["used"] == 2
    assert alice.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    assert policy_ids(alice) == []
    assert alice.get("/v2.0/quotas/alice/details").json()["quota"]["rbac_policy"]["used"] == 0


def test_policy_change_bumps_network_revision(alice: Api, bob: Api) -> None:
    net = alice.network()
    before = alice.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"]
    pol = share(alice, net["id"], "bob")
    after = alice.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"]
    assert after > before
    alice.delete(f"{RBAC}/{pol['id']}")
    assert alice.get(f"/v2.0/networks/{net['id']}").json()["network"]["revision_number"] > after


# ------------------------------------------------------------------------------ external networks

def _external_ready(api: Api, **attrs: Any) -> dict[str, Any]:
    net = api.network(**attrs)
    api.subnet(net["id"], "198.18.10.0/24", enable_dhcp=False)
    return net


def test_router_external_flag_is_a_wildcard_policy(api: Api) -> None:
    net = api.network(**{"router:external": True})
    assert len(policy_ids(api, object_id=net["id"], action="access_as_external", target_tenant="*")) == 1
    api.put(f"/v2.0/networks/{net['id']}", json={"network": {"router:external": False}})
    assert policy_ids(api, object_id=net["id"]) == []
    api.put(f"/v2.0/networks/{net['id']}", json={"network": {"router:external": True}})
    assert len(policy_ids(api, object_id=net["id"], action="access_as_external", target_tenant="*")) == 1


def test_external_policy_makes_the_network_external(api: Api) -> None:
    net = api.network()
    pol = share(api, net["id"], "bob", "access_as_external")
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["router:external"] is True
    other = share(api, net["id"], "carol", "access_as_external")
    api.delete(f"{RBAC}/{other['id']}")
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["router:external"] is True
    api.delete(f"{RBAC}/{pol['id']}")
    assert api.get(f"/v2.0/networks/{net['id']}").json()["network"]["router:external"] is False
    # a shared policy on an external network comes and goes without touching router:external
    ext = api.network(**{"router:external": True})
    wild = share(api, ext["id"], "*")
    api.delete(f"{RBAC}/{wild['id']}")
    assert api.get(f"/v2.0/networks/{ext['id']}").json()["network"]["router:external"] is True


def test_external_to_a_project_gives_it_gateway_and_floating_ips(api: Api, bob: Api, carol: Api) -> None:
    net = _external_ready(api)
    share(api, net["id"], "admin-project", "access_as_external")
    r = carol.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": net["id"]}}})
    assert_fault(r, 404, "NetworkNotFound")
    assert_fault(carol.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": net["id"]}}), 404)
    share(api, net["id"], "bob", "access_as_external")
    assert net["id"] in net_ids(bob)
    seen = bob.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert seen["router:external"] is True and seen["shared"] is False
    router = bob.create("routers", external_gateway_info={"network_id": net["id"]})
    assert router["external_gateway_info"]["network_id"] == net["id"]
    fip = bob.create("floatingips", floating_network_id=net["id"])
    assert fip["floating_network_id"] == net["id"]
    # carol still reaches nothing
    assert net["id"] not in net_ids(carol)
    r = carol.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": net["id"]}}})
    assert_fault(r, 404, "NetworkNotFound")


def test_owner_shares_its_network_as_external(alice: Api, bob: Api, carol: Api) -> None:
    net = alice.network()
    alice.subnet(net["id"], "198.18.11.0/24", enable_dhcp=False)
    share(alice, net["id"], "bob", "access_as_external")
    assert alice.get(f"/v2.0/networks/{net['id']}").json()["network"]["router:external"] is True
    assert net["id"] in net_ids(bob)
    bob.create("routers", external_gateway_info={"network_id": net["id"]})
    r = carol.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": net["id"]}}})
    assert_fault(r, 404, "NetworkNotFound")
    r = alice.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                               "action": "access_as_external", "target_tenant": "*"}})
    assert_fault(r, 403, "PolicyNotAuthorized")


def test_external_policy_in_use_by_a_gateway(api: Api, bob: Api) -> None:
    net = _external_ready(api)
    wild = share(api, net["id"], "*", "access_as_external")
    router = bob.create("routers", external_gateway_info={"network_id": net["id"]})
    err = assert_fault(api.delete(f"{RBAC}/{wild['id']}"), 409, "RbacPolicyInUse")
    assert "There are routers attached to this network that depend on this policy for access." in err["message"]
    own = share(api, net["id"], "bob", "access_as_external")
    assert api.delete(f"{RBAC}/{wild['id']}").status_code == 204
    assert_fault(api.delete(f"{RBAC}/{own['id']}"), 409, "RbacPolicyInUse")
    wild = share(api, net["id"], "*", "access_as_external")
    assert api.delete(f"{RBAC}/{own['id']}").status_code == 204
    assert bob.delete(f"/v2.0/routers/{router['id']}").status_code == 204
    assert api.delete(f"{RBAC}/{wild['id']}").status_code == 204
    r = bob.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": net["id"]}}})
    assert_fault(r, 404, "NetworkNotFound")


def test_wildcard_external_retargeted_to_its_only_user(api: Api, bob: Api) -> None:
    net = _external_ready(api, **{"router:external": True})
    wild = policy_ids(api, object_id=net["id"], action="access_as_external")[0]
    bob.create("routers", external_gateway_info={"network_id": net["id"]})
    assert api.put(f"{RBAC}/{wild}", json={"rbac_policy": {"target_tenant": "bob"}}).status_code == 200


# ------------------------------------------------------------------------------ security groups

def test_security_group_shared_with_a_project(alice: Api, bob: Api, carol: Api, api: Api) -> None:
    sg = make_sg(alice, name="web")
    assert_fault(bob.get(f"/v2.0/security-groups/{sg['id']}"), 404, "SecurityGroupNotFound")
    pol = share(alice, sg["id"], "bob", object_type="security_group")
    seen = bob.get(f"/v2.0/security-groups/{sg['id']}").json()["security_group"]
    assert seen["shared"] is True and seen["name"] == "web"
    assert sg["id"] in ids(bob.get("/v2.0/security-groups"), "security_groups")
    assert alice.get(f"/v2.0/security-groups/{sg['id']}").json()["security_group"]["shared"] is False
    net = bob.network()
    bob.subnet(net["id"], "10.30.0.0/24")
    port = bob.port(net["id"], security_groups=[sg["id"]])
    assert port["security_groups"] == [sg["id"]]
    # carol neither sees nor uses it
    assert sg["id"] not in ids(carol.get("/v2.0/security-groups"), "security_groups")
    cnet = carol.network()
    carol.subnet(cnet["id"], "10.31.0.0/24")
    r = carol.post("/v2.0/ports", json={"port": {"network_id": cnet["id"], "security_groups": [sg["id"]]}})
    assert_fault(r, 404, "SecurityGroupNotFound")
    # bob's port depends on the policy
    err = assert_fault(alice.delete(f"{RBAC}/{pol['id']}"), 409, "RbacPolicyInUse")
    assert "project_id=bob" in err["message"]
    assert bob.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204
    assert_fault(bob.get(f"/v2.0/security-groups/{sg['id']}"), 404, "SecurityGroupNotFound")


def test_security_group_wildcard_and_deletion(alice: Api, bob: Api, api: Api) -> None:
    sg = make_sg(alice, name="db")
    wild = share(api, sg["id"], "*", object_type="security_group", project_id="alice")
    net = bob.network()
    bob.subnet(net["id"], "10.32.0.0/24")
    bob.port(net["id"], security_groups=[sg["id"]])
    assert_fault(api.delete(f"{RBAC}/{wild['id']}"), 409, "RbacPolicyInUse")
    share(alice, sg["id"], "bob", object_type="security_group")
    assert api.delete(f"{RBAC}/{wild['id']}").status_code == 204
    # the group's owner cannot delete it while bob's port uses it; with it go its policies
    assert_fault(alice.delete(f"/v2.0/security-groups/{sg['id']}"), 409, "SecurityGroupInUse")
    other = make_sg(alice, name="spare")
    share(alice, other["id"], "bob", object_type="security_group")
    assert alice.delete(f"/v2.0/security-groups/{other['id']}").status_code == 204
    assert policy_ids(alice, object_id=other["id"]) == []


def test_security_group_owner_check(alice: Api, bob: Api) -> None:
    sg = make_sg(alice, name="x")
    share(alice, sg["id"], "bob", object_type="security_group")
    r = bob.post(RBAC, json={"rbac_policy": {"object_type": "security_group", "object_id": sg["id"],
                                             "action": "access_as_shared", "target_tenant": "carol"}})
    assert_fault(r, 400, "InvalidInput")
    assert policy_ids(bob) == []


# ------------------------------------------------------------------------------ isolation

def test_non_target_project_sees_and_reaches_nothing(api: Api, alice: Api, bob: Api, carol: Api) -> None:
    """alice shares a network, a group and an external network with bob only: carol gets nothing of it."""
    net = alice.network()
    sub = alice.subnet(net["id"], "10.40.0.0/24")
    share(alice, net["id"], "bob")
    bob_port = bob.port(net["id"])
    sg = make_sg(alice, name="shared-sg")
    share(alice, sg["id"], "bob", object_type="security_group")
    ext = _external_ready(api)
    share(api, ext["id"], "bob", "access_as_external")
    # lists
    assert net_ids(carol) == set()
    assert ids(carol.get("/v2.0/subnets"), "subnets") == []
    assert ids(carol.get("/v2.0/ports"), "ports") == []
    assert sg["id"] not in ids(carol.get("/v2.0/security-groups"), "security_groups")
    assert policy_ids(carol) == []
    assert net_ids(carol, shared="true") == set()
    # shows
    assert_fault(carol.get(f"/v2.0/networks/{net['id']}"), 404, "NetworkNotFound")
    assert_fault(carol.get(f"/v2.0/networks/{ext['id']}"), 404, "NetworkNotFound")
    assert_fault(carol.get(f"/v2.0/subnets/{sub['id']}"), 404, "SubnetNotFound")
    assert_fault(carol.get(f"/v2.0/ports/{bob_port['id']}"), 404, "PortNotFound")
    assert_fault(carol.get(f"/v2.0/security-groups/{sg['id']}"), 404, "SecurityGroupNotFound")
    # use
    assert_fault(carol.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 404, "NetworkNotFound")
    r = carol.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": ext["id"]}}})
    assert_fault(r, 404, "NetworkNotFound")
    assert_fault(carol.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext["id"]}}), 404)
    router = carol.create("routers")
    r = carol.put(f"/v2.0/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
    assert_fault(r, 404, "SubnetNotFound")
    # nor can carol share what she cannot see
    r = carol.post(RBAC, json={"rbac_policy": {"object_type": "network", "object_id": net["id"],
                                               "action": "access_as_shared", "target_tenant": "carol"}})
    assert_fault(r, 400, "InvalidInput")
    # bob, the target, reaches what was granted
    assert net["id"] in net_ids(bob) and ext["id"] in net_ids(bob)
    assert bob.get(f"/v2.0/security-groups/{sg['id']}").status_code == 200


# ------------------------------------------------------------------------------ the registry

def test_an_object_type_is_one_declaration(api: Api, alice: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new type (address scope, subnet pool, ...) gets from its declaration alone: validation,
    ownership, duplicates, and the generic in-use check driven by its bound projects."""
    from fermion.db import models as m
    from fermion.services import rbac

    users = {"bob"}
    monkeypatch.setitem(rbac.OBJECT_TYPES, "router", rbac.ObjectType(
        "router", m.routers, ("access_as_shared",), "router", bound_projects=lambda conn, oid: set(users)))
    router = alice.create("routers", name="r")
    err = assert_fault(alice.post(RBAC, json={"rbac_policy": {
        "object_type": "router", "object_id": router["id"], "action": "access_as_external",
        "target_tenant": "bob"}}), 400, "InvalidActionForType")
    assert err["message"].endswith("Valid actions: ('access_as_shared',)")
    for_bob = share(alice, router["id"], "bob", object_type="router")
    for_carol = share(alice, router["id"], "carol", object_type="router")
    assert_fault(api.as_("dave").post(RBAC, json={"rbac_policy": {
        "object_type": "router", "object_id": router["id"], "action": "access_as_shared",
        "target_tenant": "dave"}}), 400, "InvalidInput")
    assert_fault(alice.delete(f"{RBAC}/{for_bob['id']}"), 409, "RbacPolicyInUse")
    assert alice.delete(f"{RBAC}/{for_carol['id']}").status_code == 204
    wild = share(api, router["id"], "*", object_type="router", project_id="alice")
    assert alice.delete(f"{RBAC}/{for_bob['id']}").status_code == 204  # the wildcard covers bob
    assert_fault(api.delete(f"{RBAC}/{wild['id']}"), 409, "RbacPolicyInUse")
    users.clear()
    assert api.delete(f"{RBAC}/{wild['id']}").status_code == 204


def test_the_default_external_network_stays_external_to_everyone(api: Api, alice: Api) -> None:
    """Its wildcard access_as_external policy cannot go (auto-allocated topologies and every project's
    routers rely on it); an external network without subnets still takes router gateways (no address)."""
    public = api.network(name="public", is_default=True, **{"router:external": True})
    (policy,) = api.get(RBAC, params={"object_id": public["id"], "action": "access_as_external"}).json()[
        "rbac_policies"]
    assert_fault(api.delete(f"{RBAC}/{policy['id']}"), 409, "RbacPolicyInUse")
    assert_fault(api.put(f"{RBAC}/{policy['id']}", json={"rbac_policy": {"target_tenant": "alice"}}), 409,
                 "RbacPolicyInUse")
    r = alice.post("/v2.0/routers", json={"router": {"name": "r", "external_gateway_info": {
        "network_id": public["id"]}}})
    assert r.status_code == 201, r.text
    assert r.json()["router"]["external_gateway_info"]["external_fixed_ips"] == []
    api.put(f"/v2.0/networks/{public['id']}", json={"network": {"is_default": False}})
    assert alice.delete(f"/v2.0/routers/{r.json()['router']['id']}").status_code == 204
    assert api.delete(f"{RBAC}/{policy['id']}").status_code == 204  # no longer the default: it may go
