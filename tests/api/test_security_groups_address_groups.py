"""Address groups (address-group) and rules whose remote is one (security-groups-remote-address-group) as a
Neutron user sees them: CIDRs normalized, add/remove_addresses, Neutron's errors, policy, a group in use by a
rule cannot go, and the hints agents receive when its addresses change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fermion.rpc import contracts
from fermion.rpc.contracts import FIREWALL_KEY, Firewall, L2View, StateReport, ViewRequest, decode, encode
from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

AG_ATTRS = {"id", "name", "description", "project_id", "tenant_id", "addresses", "tags", "created_at",
            "updated_at", "revision_number", "shared"}
MISSING = "00000000-0000-4000-8000-000000000000"
GIVEN = ["10.10.10.3/32", "192.168.0.10/24", "2001:db8::f00/64"]
NORMALIZED = ["10.10.10.3/32", "192.168.0.0/24", "2001:db8::/64"]


def _ag(who: Api, **attrs: Any) -> dict[str, Any]:
    r = who.post("/v2.0/address-groups", json={"address_group": attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()["address_group"])


def _show(who: Api, ag_id: str) -> dict[str, Any]:
    r = who.get(f"/v2.0/address-groups/{ag_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["address_group"])


def _edit(who: Api, ag_id: str, action: str, addresses: Any) -> Any:
    return who.put(f"/v2.0/address-groups/{ag_id}/{action}", json={"addresses": addresses})


def _sg(who: Api) -> dict[str, Any]:
    r = who.post("/v2.0/security-groups", json={"security_group": {"name": "sg"}})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group"])


def _post_rule(who: Api, sg_id: str, **attrs: Any) -> Any:
    body = {"security_group_id": sg_id, "direction": "ingress", **attrs}
    return who.post("/v2.0/security-group-rules", json={"security_group_rule": body})


# ----------------------------------------------------------------------------------------- address groups
def test_lifecycle_with_addresses_normalized(alice: Api) -> None:
    ag = _ag(alice, name="office", description="AG", addresses=GIVEN)
    assert set(ag) == AG_ATTRS
    assert (ag["name"], ag["description"], ag["project_id"]) == ("office", "AG", "alice")
    assert sorted(ag["addresses"]) == sorted(NORMALIZED)
    assert _show(alice, ag["id"]) == ag
    r = alice.put(f"/v2.0/address-groups/{ag['id']}", json={"address_group": {"description": "new"}})
    assert r.status_code == 200, r.text
    updated = r.json()["address_group"]
    assert (updated["description"], updated["name"]) == ("new", "office")
    assert sorted(updated["addresses"]) == sorted(NORMALIZED)
    assert updated["revision_number"] == ag["revision_number"] + 1
    assert ids(alice.get("/v2.0/address-groups", params={"name": "office"}), "address_groups") == [ag["id"]]
    assert alice.delete(f"/v2.0/address-groups/{ag['id']}").status_code == 204
    assert_fault(alice.get(f"/v2.0/address-groups/{ag['id']}"), 404, "AddressGroupNotFound")


def test_an_empty_group_and_duplicates_given_once(alice: Api) -> None:
    assert _ag(alice)["addresses"] == []
    assert _ag(alice, addresses=None)["addresses"] == []
    # two spellings of one network are one address
    assert _ag(alice, addresses=["10.0.0.1/24", "10.0.0.2/24"])["addresses"] == ["10.0.0.0/24"]


@pytest.mark.parametrize("addresses", [["10.20.30.40"], ["this is bad IP address"], ["10.0.0.0/33"],
                                       ["10.0.0.0/24", "10.0.0.0/24"], "10.0.0.0/24", [7]])
def test_bad_addresses_are_refused(alice: Api, addresses: Any) -> None:
    assert_fault(alice.post("/v2.0/address-groups", json={"address_group": {"addresses": addresses}}), 400)
    assert ids(alice.get("/v2.0/address-groups"), "address_groups") == []


def test_addresses_are_not_updatable_in_place(alice: Api) -> None:
    ag = _ag(alice, addresses=GIVEN)
    r = alice.put(f"/v2.0/address-groups/{ag['id']}", json={"address_group": {"addresses": []}})
    assert_fault(r, 400)


def test_add_and_remove_addresses(alice: Api) -> None:
    ag = _ag(alice, addresses=GIVEN)
    r = _edit(alice, ag["id"], "add_addresses", ["10.20.30.40/32", "172.16.5.5/16"])
    assert r.status_code == 200, r.text
    added = r.json()["address_group"]
    assert sorted(added["addresses"]) == sorted([*NORMALIZED, "10.20.30.40/32", "172.16.0.0/16"])
    assert added["revision_number"] == ag["revision_number"] + 1
    assert sorted(_show(alice, ag["id"])["addresses"]) == sorted(added["addresses"])
    r = _edit(alice, ag["id"], "remove_addresses", ["10.10.10.3", "172.16.9.9/16"])  # a bare address: a host
    assert r.status_code == 200, r.text
    assert sorted(r.json()["address_group"]["addresses"]) == sorted(
        ["192.168.0.0/24", "2001:db8::/64", "10.20.30.40/32"])


def test_add_and_remove_errors_change_nothing(alice: Api) -> None:
    ag = _ag(alice, addresses=GIVEN)
    err = assert_fault(_edit(alice, ag["id"], "add_addresses", ["192.168.0.77/24", "10.1.1.1/32"]), 400,
                       "AddressesAlreadyExist")
    assert err["message"] == f"Addresses ['192.168.0.0/24'] already exist in the address group {ag['id']}."
    err = assert_fault(_edit(alice, ag["id"], "remove_addresses", ["10.200.200.200", "10.10.10.3/32"]), 404,
                       "AddressesNotFound")
    assert err["message"] == f"Addresses ['10.200.200.200/32'] not found in the address group {ag['id']}."
    for action in ("add_addresses", "remove_addresses"):
        assert_fault(_edit(alice, ag["id"], action, ["this is bad IP address"]), 400)
        assert_fault(_edit(alice, ag["id"], action, "10.0.0.0/8"), 400)
        assert_fault(alice.put(f"/v2.0/address-groups/{ag['id']}/{action}", json={"other": []}), 400)
        assert_fault(_edit(alice, MISSING, action, ["10.0.0.0/8"]), 404, "AddressGroupNotFound")
        assert_fault(alice.post(f"/v2.0/address-groups/{ag['id']}/{action}", json={"addresses": []}), 405)
    assert _show(alice, ag["id"]) == ag


def test_policy_and_isolation(alice: Api, bob: Api, api: Api) -> None:
    ag = _ag(alice, addresses=GIVEN)
    assert ids(bob.get("/v2.0/address-groups"), "address_groups") == []
    assert_fault(bob.get(f"/v2.0/address-groups/{ag['id']}"), 404, "AddressGroupNotFound")
    assert_fault(_edit(bob, ag["id"], "add_addresses", ["10.0.0.0/8"]), 404)
    assert_fault(bob.delete(f"/v2.0/address-groups/{ag['id']}"), 404)
    reader = api.as_("alice", "reader")
    assert _show(reader, ag["id"])["id"] == ag["id"]
    assert_fault(_edit(reader, ag["id"], "add_addresses", ["10.0.0.0/8"]), 403, "PolicyNotAuthorized")
    assert_fault(reader.post("/v2.0/address-groups", json={"address_group": {}}), 403)
    assert ag["id"] in ids(api.get("/v2.0/address-groups"), "address_groups")  # admin sees every project's
    assert ag["shared"] is False  # rbac-address-group: shared with the caller (here: with nobody)


def test_tags_sorting_and_pagination(alice: Api) -> None:
    a, b, c = (_ag(alice, name=n, tags=["t"] if n == "b" else []) for n in ("a", "b", "c"))
    assert ids(alice.get("/v2.0/address-groups", params={"tags": "t"}), "address_groups") == [b["id"]]
    r = alice.get("/v2.0/address-groups", params={"sort_key": "name", "sort_dir": "desc", "limit": 2})
    assert ids(r, "address_groups") == [c["id"], b["id"]]
    assert any(link["rel"] == "next" for link in r.json()["address_groups_links"])
    assert_fault(alice.get("/v2.0/address-groups", params={"addresses": "10.0.0.0/8"}), 400)
    assert a["id"] in ids(alice.get("/v2.0/address-groups"), "address_groups")


# ----------------------------------------------------------------------------------------- rules
def test_a_rule_takes_an_address_group_as_its_remote(alice: Api) -> None:
    ag, sg = _ag(alice, addresses=GIVEN), _sg(alice)
    r = _post_rule(alice, sg["id"], protocol="tcp", remote_address_group_id=ag["id"])
    assert r.status_code == 201, r.text
    rule = r.json()["security_group_rule"]
    assert (rule["remote_address_group_id"], rule["remote_ip_prefix"], rule["remote_group_id"]) == (ag["id"], None,
                                                                                                   None)
    assert ids(alice.get("/v2.0/security-group-rules", params={"remote_address_group_id": ag["id"]}),
               "security_group_rules") == [rule["id"]]
    # the same rule again is a duplicate; with another address group it is another rule
    assert_fault(_post_rule(alice, sg["id"], protocol="tcp", remote_address_group_id=ag["id"]), 409,
                 "SecurityGroupRuleExists")
    other = _ag(alice)
    assert _post_rule(alice, sg["id"], protocol="tcp", remote_address_group_id=other["id"]).status_code == 201
    assert _post_rule(alice, sg["id"], protocol="tcp").status_code == 201

    # in use: the address group cannot be deleted until the rule is gone
    err = assert_fault(alice.delete(f"/v2.0/address-groups/{ag['id']}"), 409, "AddressGroupInUse")
    assert err["message"] == f"Address group {ag['id']} is in use on one or more security group rules."
    assert alice.delete(f"/v2.0/security-group-rules/{rule['id']}").status_code == 204
    assert alice.delete(f"/v2.0/address-groups/{ag['id']}").status_code == 204


@pytest.mark.parametrize("other", [{"remote_ip_prefix": "10.0.0.0/8"}, {"remote_group_id": "SG"}])
def test_one_remote_only(alice: Api, other: dict[str, str]) -> None:
    ag, sg = _ag(alice), _sg(alice)
    other = {k: sg["id"] if v == "SG" else v for k, v in other.items()}
    r = _post_rule(alice, sg["id"], remote_address_group_id=ag["id"], **other)
    assert_fault(r, 400, "SecurityGroupMultipleRemoteEntites")


def test_a_missing_or_foreign_address_group_is_not_found(alice: Api, bob: Api, api: Api) -> None:
    sg = _sg(alice)
    assert_fault(_post_rule(alice, sg["id"], remote_address_group_id=MISSING), 404, "AddressGroupNotFound")
    theirs = _ag(bob)
    assert_fault(_post_rule(alice, sg["id"], remote_address_group_id=theirs["id"]), 404, "AddressGroupNotFound")
    assert_fault(_post_rule(alice, sg["id"], remote_address_group_id="not-a-uuid"), 400)
    # an admin may use any project's group
    r = _post_rule(api, sg["id"], remote_address_group_id=theirs["id"], project_id="alice")
    assert r.status_code == 201, r.text


# ----------------------------------------------------------------------------------------- hints
@pytest.fixture
def hints(client: Any) -> Iterator[list[tuple[str, str, int]]]:
    seen: list[tuple[str, str, int]] = []
    stop = client.app.transport.listen(lambda msg: seen.append((msg["kind"], msg["id"], msg["revision"])))
    yield seen
    stop()


def test_agents_hear_of_address_changes_through_the_groups_using_them(
        alice: Api, hints: list[tuple[str, str, int]]) -> None:
    ag, unused = _ag(alice, addresses=GIVEN), _ag(alice)
    sg, bystander = _sg(alice), _sg(alice)
    assert _post_rule(alice, sg["id"], remote_address_group_id=ag["id"]).status_code == 201
    hints.clear()
    assert _edit(alice, ag["id"], "add_addresses", ["10.9.9.9/32"]).status_code == 200
    assert _edit(alice, ag["id"], "remove_addresses", ["10.9.9.9/32"]).status_code == 200
    assert _edit(alice, unused["id"], "add_addresses", ["10.9.9.9/32"]).status_code == 200
    sg_hints = [ident for kind, ident, _ in hints if kind == "security_group"]
    assert sg_hints == [sg["id"], sg["id"]], "only the group whose rule names it, once per change"
    assert bystander["id"] not in sg_hints


# ----------------------------------------------------------------------------------------- agents' view
LB = "Linux bridge agent"


def _view(client: Any, version: str) -> Firewall:
    from fermion.rpc.transport import dispatch

    request = encode(ViewRequest("compute1", LB, [FIREWALL_KEY]))
    reply = dispatch(client.app.transport._handlers, {"v": version, "method": "get_l2_view", "body": request})
    view = decode(L2View, reply["ok"])
    assert view.firewall is not None
    return view.firewall


def test_agents_get_the_rules_and_cidrs_and_older_agents_fail_closed(api: Api, client: Any) -> None:
    client.app.transport.call("report_state", encode(StateReport(
        host="compute1", agent_type=LB, binary="neutron-linuxbridge-agent", topic="N/A",
        configurations={"tunneling_ip": "198.18.0.11", "tunnel_types": ["vxlan"], "interface_mappings": {}},
        start_flag=True)))
    ag = _ag(api, addresses=["10.1.2.3/24", "2001:db8::/64"])
    sg = _sg(api)
    assert _post_rule(api, sg["id"], protocol="tcp", port_range_min=22, port_range_max=22,
                      remote_address_group_id=ag["id"]).status_code == 201
    net = api.network(name="n")
    api.subnet(net["id"], "10.0.0.0/24")
    api.port(net["id"], security_groups=[sg["id"]], **{"binding:host_id": "compute1"})

    current = _view(client, contracts.VERSION)
    [group] = [g for g in current.groups if g.id == sg["id"]]
    assert [r.remote_address_group for r in group.rules if r.direction == "ingress"] == [ag["id"]]
    assert current.address_groups == {ag["id"]: ["10.1.2.0/24", "2001:db8::/64"]}

    older = _view(client, "1.2")  # would read the rule as open to every address: it gets none of it
    [group] = [g for g in older.groups if g.id == sg["id"]]
    assert [r for r in group.rules if r.direction == "ingress"] == []
    assert len(group.rules) == 2 and older.address_groups == {}
