"""RBAC access_as_shared on address scopes, subnet pools and address groups (rbac-address-scope,
rbac-subnetpool, rbac-address-group): a grant lets its target see and use the object, nobody else; a grant
the target depends on stays; the object takes its grants with it."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

RBAC = "/v2.0/rbac-policies"


def share(who: Api, object_type: str, object_id: str, target: str, **extra: Any) -> dict[str, Any]:
    r = who.post(RBAC, json={"rbac_policy": {"object_type": object_type, "object_id": object_id,
                                             "action": "access_as_shared", "target_tenant": target, **extra}})
    assert r.status_code == 201, r.text
    return dict(r.json()["rbac_policy"])


def policy_ids(who: Api, **query: str) -> list[str]:
    return ids(who.get(RBAC, params=query), "rbac_policies")


def created(r: Any, member: str) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return dict(r.json()[member])


def scope(who: Api, **attrs: Any) -> dict[str, Any]:
    return created(who.post("/v2.0/address-scopes", json={"address_scope": {"name": "as", "ip_version": 4,
                                                                            **attrs}}), "address_scope")


def pool(who: Api, prefixes: list[str], **attrs: Any) -> dict[str, Any]:
    return created(who.post("/v2.0/subnetpools", json={"subnetpool": {"name": "sp", "prefixes": prefixes,
                                                                      "default_prefixlen": 24, **attrs}}),
                   "subnetpool")


def subnet_from(who: Api, pool_id: str) -> Any:
    net = who.network()
    return who.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                      "subnetpool_id": pool_id}})


def address_group(who: Api) -> dict[str, Any]:
    return created(who.post("/v2.0/address-groups", json={"address_group": {"name": "ag",
                                                                            "addresses": ["10.5.0.0/16"]}}),
                   "address_group")


def rule_naming(who: Api, group_id: str) -> Any:
    sg = created(who.post("/v2.0/security-groups", json={"security_group": {"name": "sg"}}), "security_group")
    return who.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "remote_address_group_id": group_id}})


def seen_shared(who: Api, path: str, member: str, object_id: str) -> bool:
    """The object as the project sees it: shown, listed and listed by shared=True alike."""
    r = who.get(f"{path}/{object_id}")
    assert r.status_code == 200, r.text
    collection = path.rsplit("/", 1)[-1].replace("-", "_")
    assert object_id in ids(who.get(path), collection)
    flag: bool = r.json()[member]["shared"]
    return flag


# (path, member, object type, not-found type)
SCOPES = ("/v2.0/address-scopes", "address_scope", "address_scope", "AddressScopeNotFound")
POOLS = ("/v2.0/subnetpools", "subnetpool", "subnetpool", "SubnetPoolNotFound")
GROUPS = ("/v2.0/address-groups", "address_group", "address_group", "AddressGroupNotFound")


def check_visibility(kind: tuple[str, str, str, str], object_id: str, owner: Api, target: Api,
                     other: Api) -> None:
    path, member, _, missing = kind
    assert seen_shared(target, path, member, object_id) is True
    collection = member + "s"
    if member != "address_group":  # Neutron's address groups do not filter on shared
        assert object_id in ids(target.get(path, params={"shared": "true"}), collection)
    assert seen_shared(owner, path, member, object_id) is False  # shared with bob, not with its owner
    assert_fault(other.get(f"{path}/{object_id}"), 404, missing)
    assert object_id not in ids(other.get(path), collection)


# ------------------------------------------------------------------------------ address scopes

def test_address_scope_shared_with_a_project(alice: Api, bob: Api, carol: Api) -> None:
    sc = scope(alice)
    assert_fault(bob.get(f"/v2.0/address-scopes/{sc['id']}"), 404, "AddressScopeNotFound")
    pol = share(alice, "address_scope", sc["id"], "bob")
    check_visibility(SCOPES, sc["id"], alice, bob, carol)
    assert sc["id"] not in ids(bob.get("/v2.0/address-scopes", params={"shared": "false"}), "address_scopes")
    # bob's pool joins the scope; carol's cannot
    joined = pool(bob, ["10.60.0.0/16"], address_scope_id=sc["id"])
    assert joined["address_scope_id"] == sc["id"]
    r = carol.post("/v2.0/subnetpools", json={"subnetpool": {"name": "x", "prefixes": ["10.61.0.0/16"],
                                                             "address_scope_id": sc["id"]}})
    assert_fault(r, 404, "AddressScopeNotFound")
    # bob's pool depends on the policy
    err = assert_fault(alice.delete(f"{RBAC}/{pol['id']}"), 409, "RbacPolicyInUse")
    assert "project_id=bob" in err["message"]
    assert_fault(alice.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {"target_tenant": "carol"}}), 409,
                 "RbacPolicyInUse")
    assert bob.delete(f"/v2.0/subnetpools/{joined['id']}").status_code == 204
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204
    assert_fault(bob.get(f"/v2.0/address-scopes/{sc['id']}"), 404, "AddressScopeNotFound")
    # deleting the scope deletes its policies
    share(alice, "address_scope", sc["id"], "carol")
    assert alice.delete(f"/v2.0/address-scopes/{sc['id']}").status_code == 204
    assert policy_ids(alice, object_id=sc["id"]) == []


def test_address_scope_shared_flag_is_a_wildcard_policy(api: Api, alice: Api, bob: Api) -> None:
    sc = scope(api, shared=True)
    found = api.get(RBAC, params={"object_id": sc["id"]}).json()["rbac_policies"]
    assert [(p["object_type"], p["action"], p["target_tenant"], p["project_id"]) for p in found] == [
        ("address_scope", "access_as_shared", "*", "admin-project")]
    assert seen_shared(alice, *SCOPES[:2], sc["id"]) is True
    err = assert_fault(api.put(f"/v2.0/address-scopes/{sc['id']}", json={"address_scope": {"shared": False}}),
                       400, "AddressScopeUpdateError")
    assert "Shared address scope can't be unshared" in err["message"]
    # any project may join it; the wildcard then stays
    joined = pool(alice, ["10.62.0.0/16"], address_scope_id=sc["id"])
    assert_fault(api.delete(f"{RBAC}/{found[0]['id']}"), 409, "RbacPolicyInUse")
    assert alice.delete(f"/v2.0/subnetpools/{joined['id']}").status_code == 204
    # removing the wildcard unshares the scope, adding one shares it
    assert api.delete(f"{RBAC}/{found[0]['id']}").status_code == 204
    assert api.get(f"/v2.0/address-scopes/{sc['id']}").json()["address_scope"]["shared"] is False
    assert_fault(bob.get(f"/v2.0/address-scopes/{sc['id']}"), 404, "AddressScopeNotFound")
    share(api, "address_scope", sc["id"], "*")
    assert api.get(f"/v2.0/address-scopes/{sc['id']}").json()["address_scope"]["shared"] is True
    # a scope shared later by its flag
    later = scope(api)
    r = api.put(f"/v2.0/address-scopes/{later['id']}", json={"address_scope": {"shared": True}})
    assert r.status_code == 200, r.text
    assert len(policy_ids(api, object_id=later["id"], target_tenant="*")) == 1
    assert seen_shared(bob, *SCOPES[:2], later["id"]) is True
    assert api.delete(f"/v2.0/address-scopes/{later['id']}").status_code == 204
    assert policy_ids(api, object_id=later["id"]) == []


# ------------------------------------------------------------------------------ subnet pools

def test_subnetpool_shared_with_a_project(alice: Api, bob: Api, carol: Api) -> None:
    sp = pool(alice, ["10.70.0.0/16"])
    assert_fault(bob.get(f"/v2.0/subnetpools/{sp['id']}"), 404, "SubnetPoolNotFound")
    pol = share(alice, "subnetpool", sp["id"], "bob")
    check_visibility(POOLS, sp["id"], alice, bob, carol)
    # bob takes a subnet from it; carol cannot
    sub = created(subnet_from(bob, sp["id"]), "subnet")
    assert (sub["subnetpool_id"], sub["project_id"], sub["cidr"]) == (sp["id"], "bob", "10.70.0.0/24")
    assert_fault(subnet_from(carol, sp["id"]), 404, "SubnetPoolNotFound")
    err = assert_fault(alice.delete(f"{RBAC}/{pol['id']}"), 409, "RbacPolicyInUse")
    assert "project_id=bob" in err["message"]
    # nor may it move to another project
    assert_fault(alice.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {"target_tenant": "carol"}}), 409,
                 "RbacPolicyInUse")
    assert bob.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204
    assert_fault(bob.get(f"/v2.0/subnetpools/{sp['id']}"), 404, "SubnetPoolNotFound")
    assert_fault(subnet_from(bob, sp["id"]), 404, "SubnetPoolNotFound")
    # the owner's own subnets need no policy
    mine = share(alice, "subnetpool", sp["id"], "carol")
    created(subnet_from(alice, sp["id"]), "subnet")
    assert alice.delete(f"{RBAC}/{mine['id']}").status_code == 204


def test_subnetpool_policies_go_with_it(alice: Api, api: Api) -> None:
    sp = pool(alice, ["10.71.0.0/16"])
    share(alice, "subnetpool", sp["id"], "bob")
    share(api, "subnetpool", sp["id"], "*", project_id="alice")
    assert len(policy_ids(alice, object_id=sp["id"])) == 2
    assert alice.get(f"/v2.0/subnetpools/{sp['id']}").json()["subnetpool"]["shared"] is True
    assert alice.get("/v2.0/quotas/alice/details").json()["quota"]["rbac_policy"]["used"] == 2
    assert alice.delete(f"/v2.0/subnetpools/{sp['id']}").status_code == 204
    assert policy_ids(api, object_id=sp["id"]) == []
    assert alice.get("/v2.0/quotas/alice/details").json()["quota"]["rbac_policy"]["used"] == 0


def test_subnetpool_shared_flag_is_a_wildcard_policy(api: Api, bob: Api) -> None:
    sp = pool(api, ["10.72.0.0/16"], shared=True)
    found = api.get(RBAC, params={"object_id": sp["id"]}).json()["rbac_policies"]
    assert [(p["object_type"], p["action"], p["target_tenant"]) for p in found] == [
        ("subnetpool", "access_as_shared", "*")]
    assert seen_shared(bob, *POOLS[:2], sp["id"]) is True
    sub = created(subnet_from(bob, sp["id"]), "subnet")
    assert_fault(api.delete(f"{RBAC}/{found[0]['id']}"), 409, "RbacPolicyInUse")
    # a policy of bob's own lets the wildcard go
    share(api, "subnetpool", sp["id"], "bob")
    assert api.delete(f"{RBAC}/{found[0]['id']}").status_code == 204
    assert api.get(f"/v2.0/subnetpools/{sp['id']}").json()["subnetpool"]["shared"] is False
    assert bob.get(f"/v2.0/subnetpools/{sp['id']}").json()["subnetpool"]["shared"] is True
    assert bob.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    assert api.delete(f"/v2.0/subnetpools/{sp['id']}").status_code == 204
    assert policy_ids(api, object_id=sp["id"]) == []


def test_pool_shared_only_with_projects_that_may_use_its_scope(api: Api, alice: Api, bob: Api, carol: Api) -> None:
    """Neutron refuses a grant on a pool in an address scope unless the scope is shared with the target (or with
    all) by a grant the caller can see: any for an admin, its own project's for anyone else."""
    admins = scope(api)
    share(api, "address_scope", admins["id"], "alice")
    sp = pool(alice, ["10.74.0.0/16"], address_scope_id=admins["id"])
    body = {"object_type": "subnetpool", "object_id": sp["id"], "action": "access_as_shared", "target_tenant": "bob"}
    err = assert_fault(alice.post(RBAC, json={"rbac_policy": body}), 400, "InvalidInput")
    assert err["message"] == (f"Invalid input for operation: Failed to create RBAC policy on object {sp['id']} "
                              "because target project doesn't have access to associated address scope.")
    # nothing was written: bob neither sees the pool nor lists a policy, alice owns none
    assert_fault(bob.get(f"/v2.0/subnetpools/{sp['id']}"), 404, "SubnetPoolNotFound")
    assert policy_ids(bob) == [] and policy_ids(alice) == []
    # the admin's grant of the scope to bob is not alice's: still refused to her, granted to an admin
    share(api, "address_scope", admins["id"], "bob")
    assert_fault(alice.post(RBAC, json={"rbac_policy": body}), 400, "InvalidInput")
    share(api, "subnetpool", sp["id"], "bob", project_id="alice")
    assert seen_shared(bob, *POOLS[:2], sp["id"]) is True
    # alice's own scope, shared by her with bob only
    mine = scope(alice)
    share(alice, "address_scope", mine["id"], "bob")
    in_mine = pool(alice, ["10.75.0.0/16"], address_scope_id=mine["id"])
    share(alice, "subnetpool", in_mine["id"], "bob")
    r = alice.post(RBAC, json={"rbac_policy": {**body, "object_id": in_mine["id"], "target_tenant": "carol"}})
    assert_fault(r, 400, "InvalidInput")
    # a pool without a scope is shared with anyone
    share(alice, "subnetpool", pool(alice, ["10.76.0.0/16"])["id"], "carol")


def test_shared_pool_flag_needs_a_shared_scope(api: Api) -> None:
    """shared=True is a wildcard grant (Neutron makes it as a policy): refused in a scope not shared with all."""
    private = scope(api)
    r = api.post("/v2.0/subnetpools", json={"subnetpool": {"name": "sp", "prefixes": ["10.77.0.0/16"],
                                                           "address_scope_id": private["id"], "shared": True}})
    err = assert_fault(r, 400, "InvalidInput")
    assert "target project doesn't have access to associated address scope" in err["message"]
    assert ids(api.get("/v2.0/subnetpools", params={"address_scope_id": private["id"]}), "subnetpools") == []
    assert policy_ids(api, object_type="subnetpool") == []
    share(api, "address_scope", private["id"], "*")
    assert pool(api, ["10.77.0.0/16"], address_scope_id=private["id"], shared=True)["shared"] is True


# ------------------------------------------------------------------------------ address groups

def test_address_group_shared_with_a_project(alice: Api, bob: Api, carol: Api) -> None:
    ag = address_group(alice)
    assert ag["shared"] is False
    assert_fault(bob.get(f"/v2.0/address-groups/{ag['id']}"), 404, "AddressGroupNotFound")
    pol = share(alice, "address_group", ag["id"], "bob")
    check_visibility(GROUPS, ag["id"], alice, bob, carol)
    # bob's rule names it as its remote; carol's cannot
    r = rule_naming(bob, ag["id"])
    rule = created(r, "security_group_rule")
    assert rule["remote_address_group_id"] == ag["id"]
    assert_fault(rule_naming(carol, ag["id"]), 404, "AddressGroupNotFound")
    err = assert_fault(alice.delete(f"{RBAC}/{pol['id']}"), 409, "RbacPolicyInUse")
    assert "project_id=bob" in err["message"]
    assert bob.delete(f"/v2.0/security-group-rules/{rule['id']}").status_code == 204
    assert alice.delete(f"{RBAC}/{pol['id']}").status_code == 204
    assert_fault(bob.get(f"/v2.0/address-groups/{ag['id']}"), 404, "AddressGroupNotFound")
    assert_fault(rule_naming(bob, ag["id"]), 404, "AddressGroupNotFound")
    # deleting the group deletes its policies
    share(alice, "address_group", ag["id"], "carol")
    assert alice.delete(f"/v2.0/address-groups/{ag['id']}").status_code == 204
    assert policy_ids(alice, object_id=ag["id"]) == []


def test_address_group_wildcard(api: Api, alice: Api, bob: Api) -> None:
    ag = address_group(alice)
    wild = share(api, "address_group", ag["id"], "*", project_id="alice")
    assert seen_shared(bob, *GROUPS[:2], ag["id"]) is True
    assert seen_shared(alice, *GROUPS[:2], ag["id"]) is True
    created(rule_naming(bob, ag["id"]), "security_group_rule")
    assert_fault(api.delete(f"{RBAC}/{wild['id']}"), 409, "RbacPolicyInUse")
    share(alice, "address_group", ag["id"], "bob")
    assert api.delete(f"{RBAC}/{wild['id']}").status_code == 204


# ------------------------------------------------------------------------------ updates by a grantee

def test_update_by_a_project_an_object_is_shared_with(api: Api, alice: Api, bob: Api, carol: Api) -> None:
    """Neutron refuses such an update with 403 when the caller may read the object as loaded for the policy
    check, else with 404. That object holds only the attributes required by policy, keys and those without a
    default: a network's, security group's, scope's or pool's shared is there, an address group's is not, so
    the project an address group is shared with (even with all) is answered as if it did not exist. A
    delete loads everything: 403 alike."""
    sg = created(alice.post("/v2.0/security-groups", json={"security_group": {"name": "sg"}}), "security_group")
    cases = [("network", "/v2.0/networks", alice.network(), "NetworkNotFound"),
             ("security_group", "/v2.0/security-groups", sg, "SecurityGroupNotFound"),
             (SCOPES[1], SCOPES[0], scope(alice), SCOPES[3]),
             (POOLS[1], POOLS[0], pool(alice, ["10.78.0.0/16"]), POOLS[3]),
             (GROUPS[1], GROUPS[0], address_group(alice), GROUPS[3])]
    for member, path, obj, missing in cases:
        url = f"{path}/{obj['id']}"
        share(alice, member, obj["id"], "bob")
        assert bob.get(url).status_code == 200
        r = bob.put(url, json={member: {"name": "renamed"}})
        if member == "address_group":
            err = assert_fault(r, 404, "HTTPNotFound")
            assert err["message"] == "The resource could not be found."
        else:
            err = assert_fault(r, 403, "PolicyNotAuthorized")
            assert err["message"] == f"rule:update_{member} is disallowed by policy"
        assert_fault(bob.delete(url), 403, "PolicyNotAuthorized")
        assert_fault(carol.put(url, json={member: {"name": "renamed"}}), 404, missing)
        assert alice.get(url).json()[member]["name"] == obj["name"]
        r = alice.put(url, json={member: {"name": "renamed"}})
        assert r.status_code == 200 and r.json()[member]["name"] == "renamed", r.text
    group = address_group(alice)
    share(api, "address_group", group["id"], "*", project_id="alice")
    assert seen_shared(carol, *GROUPS[:2], group["id"]) is True
    r = carol.put(f"/v2.0/address-groups/{group['id']}", json={"address_group": {"name": "renamed"}})
    assert_fault(r, 404, "HTTPNotFound")


# ------------------------------------------------------------------------------ the API

def test_owner_check_and_actions(alice: Api, bob: Api) -> None:
    for obj_type, obj in (("address_scope", scope(alice)), ("subnetpool", pool(alice, ["10.73.0.0/16"])),
                          ("address_group", address_group(alice))):
        body = {"object_type": obj_type, "object_id": obj["id"], "action": "access_as_external",
                "target_tenant": "bob"}
        err = assert_fault(alice.post(RBAC, json={"rbac_policy": body}), 400, "InvalidActionForType")
        assert err["message"].endswith("Valid actions: ('access_as_shared',)")
        # bob may not share what is not his, nor what he cannot see
        body["action"] = "access_as_shared"
        assert_fault(bob.post(RBAC, json={"rbac_policy": {**body, "target_tenant": "carol"}}), 400, "InvalidInput")
        share(alice, obj_type, obj["id"], "bob")
        err = assert_fault(bob.post(RBAC, json={"rbac_policy": {**body, "target_tenant": "carol"}}), 400,
                           "InvalidInput")
        assert "Only admins can manipulate policies on objects they do not own" in err["message"]
        assert_fault(alice.post(RBAC, json={"rbac_policy": body}), 409, "DuplicateRbacPolicy")
    assert policy_ids(bob) == []


def test_extensions_are_advertised(api: Api) -> None:
    aliases = {e["alias"] for e in api.get("/v2.0/extensions").json()["extensions"]}
    assert {"rbac-address-scope", "rbac-subnetpool", "rbac-address-group"} <= aliases
