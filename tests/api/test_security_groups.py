"""Security groups and rules as a Neutron user sees them: the default group, CRUD, rule validation,
duplicates, ports joining groups, policy, quotas, filters, If-Match and the hints agents receive."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

SG_ATTRS = {"id", "name", "description", "project_id", "tenant_id", "stateful", "shared", "security_group_rules",
            "tags", "created_at", "updated_at", "revision_number"}
RULE_ATTRS = {"id", "project_id", "tenant_id", "security_group_id", "direction", "ethertype", "protocol",
              "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "remote_address_group_id",
              "normalized_cidr", "belongs_to_default_sg", "description", "created_at", "updated_at",
              "revision_number"}
MISSING = "00000000-0000-4000-8000-000000000000"


def _groups(who: Api, **filters: str) -> list[dict[str, Any]]:
    r = who.get("/v2.0/security-groups", params=filters)
    assert r.status_code == 200, r.text
    return list(r.json()["security_groups"])


def _default(who: Api) -> dict[str, Any]:
    [group] = _groups(who, name="default")
    return group


def _group(who: Api, **attrs: Any) -> dict[str, Any]:
    r = who.post("/v2.0/security-groups", json={"security_group": attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group"])


def _post_rule(who: Api, group_id: str, **attrs: Any) -> Any:
    body = {"security_group_id": group_id, "direction": "ingress", **attrs}
    return who.post("/v2.0/security-group-rules", json={"security_group_rule": body})


def _rule(who: Api, group_id: str, **attrs: Any) -> dict[str, Any]:
    r = _post_rule(who, group_id, **attrs)
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group_rule"])


def _shape(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["direction"], rule["ethertype"], rule["protocol"], rule["remote_group_id"],
            rule["remote_ip_prefix"])


def _show(who: Api, group_id: str) -> dict[str, Any]:
    r = who.get(f"/v2.0/security-groups/{group_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["security_group"])


@pytest.fixture
def net(alice: Api) -> dict[str, Any]:
    network = alice.network(name="n")
    alice.subnet(network["id"], "10.0.0.0/24")
    return network


# ----------------------------------------------------------------------------------------- the default group


def test_listing_creates_the_default_group_once(alice: Api) -> None:
    default = _default(alice)
    assert SG_ATTRS <= set(default)
    assert (default["name"], default["description"]) == ("default", "Default security group")
    assert default["project_id"] == default["tenant_id"] == "alice"
    assert default["stateful"] is True and default["shared"] is False
    assert sorted(_shape(r) for r in default["security_group_rules"]) == sorted([
        ("ingress", "IPv4", None, default["id"], None), ("ingress", "IPv6", None, default["id"], None),
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None)])
    assert all(r["belongs_to_default_sg"] for r in default["security_group_rules"])
    # listing again does not make another one
    assert ids(alice.get("/v2.0/security-groups"), "security_groups") == [default["id"]]


def test_admin_listing_creates_the_default_group_of_the_project_listed(api: Api, alice: Api) -> None:
    alice.network()  # alice exists but never touched security groups
    listed = _groups(api)
    assert [g["project_id"] for g in listed] == ["admin-project"]
    # as Neutron: listing filtered by a project creates that project's default group
    assert [g["name"] for g in _groups(api, project_id="alice")] == ["default"]
    assert sorted(g["project_id"] for g in _groups(api)) == ["admin-project", "alice"]


def test_a_port_joins_the_default_group(alice: Api, net: dict[str, Any]) -> None:
    port = alice.port(net["id"])
    assert port["security_groups"] == [_default(alice)["id"]]
    assert alice.get(f"/v2.0/ports/{port['id']}").json()["port"]["security_groups"] == port["security_groups"]


def test_network_owned_ports_and_ports_without_security_join_no_group(alice: Api, api: Api,
                                                                     net: dict[str, Any]) -> None:
    assert alice.port(net["id"], port_security_enabled=False)["security_groups"] == []
    assert api.port(net["id"], device_owner="network:dhcp")["security_groups"] == []
    insecure = alice.network(port_security_enabled=False)
    assert alice.port(insecure["id"])["security_groups"] == []


def test_the_default_group_cannot_be_renamed(alice: Api) -> None:
    default = _default(alice)
    url = f"/v2.0/security-groups/{default['id']}"
    assert_fault(alice.put(url, json={"security_group": {"name": "mine"}}), 409, "SecurityGroupCannotUpdateDefault")
    r = alice.put(url, json={"security_group": {"description": "ours"}})
    assert r.status_code == 200, r.text
    assert r.json()["security_group"]["description"] == "ours"


def test_no_second_group_named_default(alice: Api) -> None:
    for name in ("default", "Default"):
        assert_fault(alice.post("/v2.0/security-groups", json={"security_group": {"name": name}}), 409,
                     "SecurityGroupDefaultAlreadyExists")
    group = _group(alice, name="web")
    assert_fault(alice.put(f"/v2.0/security-groups/{group['id']}", json={"security_group": {"name": "default"}}),
                 409, "SecurityGroupDefaultAlreadyExists")


def test_only_an_admin_deletes_a_default_group(api: Api, alice: Api) -> None:
    default = _default(alice)
    assert_fault(alice.delete(f"/v2.0/security-groups/{default['id']}"), 409, "SecurityGroupCannotRemoveDefault")
    assert api.delete(f"/v2.0/security-groups/{default['id']}").status_code == 204
    # the project gets a fresh one the next time it needs it
    again = _default(alice)
    assert again["id"] != default["id"] and len(again["security_group_rules"]) == 4


# ----------------------------------------------------------------------------------------- groups


def test_group_lifecycle(alice: Api) -> None:
    group = _group(alice, name="web", description="front", tags=["blue"])
    assert SG_ATTRS <= set(group)
    assert (group["name"], group["description"], group["tags"], group["stateful"]) == ("web", "front", ["blue"],
                                                                                       True)
    assert sorted(_shape(r) for r in group["security_group_rules"]) == [("egress", "IPv4", None, None, None),
                                                                        ("egress", "IPv6", None, None, None)]
    assert not any(r["belongs_to_default_sg"] for r in group["security_group_rules"])
    assert _show(alice, group["id"]) == group
    # creating a group also created the project's default group
    assert sorted(g["name"] for g in _groups(alice)) == ["default", "web"]

    r = alice.put(f"/v2.0/security-groups/{group['id']}",
                  json={"security_group": {"name": "www", "description": "d", "stateful": False}})
    assert r.status_code == 200, r.text
    updated = r.json()["security_group"]
    assert (updated["name"], updated["description"], updated["stateful"]) == ("www", "d", False)
    assert updated["revision_number"] == group["revision_number"] + 1

    assert alice.delete(f"/v2.0/security-groups/{group['id']}").status_code == 204
    assert_fault(alice.get(f"/v2.0/security-groups/{group['id']}"), 404, "SecurityGroupNotFound")
    assert_fault(alice.delete(f"/v2.0/security-groups/{group['id']}"), 404, "SecurityGroupNotFound")
    # its rules went with it
    assert _groups(alice, name="www") == []
    assert alice.get("/v2.0/security-group-rules", params={"security_group_id": group["id"]}).json() == {
        "security_group_rules": []}


def test_shared_and_rules_are_read_only(alice: Api) -> None:
    group = _group(alice)
    for body in ({"shared": True}, {"security_group_rules": []}):
        assert_fault(alice.put(f"/v2.0/security-groups/{group['id']}", json={"security_group": body}), 400)
        assert_fault(alice.post("/v2.0/security-groups", json={"security_group": body}), 400)


def test_a_group_in_use_cannot_be_deleted_or_change_statefulness(alice: Api, net: dict[str, Any]) -> None:
    group = _group(alice, name="app")
    port = alice.port(net["id"], security_groups=[group["id"]])
    url = f"/v2.0/security-groups/{group['id']}"
    assert_fault(alice.delete(url), 409, "SecurityGroupInUse")
    assert_fault(alice.put(url, json={"security_group": {"stateful": False}}), 409, "SecurityGroupInUse")
    # other attributes may change, and stating the current value is no change
    assert alice.put(url, json={"security_group": {"name": "app2", "stateful": True}}).status_code == 200
    assert alice.delete(f"/v2.0/ports/{port['id']}").status_code == 204
    assert alice.delete(url).status_code == 204


def test_deleting_a_group_removes_rules_that_name_it_as_remote(alice: Api) -> None:
    db, web = _group(alice, name="db"), _group(alice, name="web")
    rule = _rule(alice, db["id"], protocol="tcp", port_range_min=5432, port_range_max=5432, remote_group_id=web["id"])
    before = _show(alice, db["id"])["revision_number"]
    assert alice.delete(f"/v2.0/security-groups/{web['id']}").status_code == 204
    assert_fault(alice.get(f"/v2.0/security-group-rules/{rule['id']}"), 404, "SecurityGroupRuleNotFound")
    after = _show(alice, db["id"])
    assert rule["id"] not in {r["id"] for r in after["security_group_rules"]}
    assert after["revision_number"] > before


def test_if_match_on_groups(alice: Api) -> None:
    group = _group(alice)
    url = f"/v2.0/security-groups/{group['id']}"
    rev = group["revision_number"]
    stale = {"If-Match": f"revision_number={rev + 3}"}
    assert_fault(alice.put(url, json={"security_group": {"name": "x"}}, headers=stale), 412,
                 "RevisionNumberConstraintFailed")
    assert_fault(alice.delete(url, headers=stale), 412, "RevisionNumberConstraintFailed")
    r = alice.put(url, json={"security_group": {"name": "x"}}, headers={"If-Match": f"revision_number={rev}"})
    assert r.status_code == 200, r.text
    assert alice.delete(url, headers={"If-Match": f"revision_number={rev + 1}"}).status_code == 204


def test_group_filters_sorting_and_links(alice: Api) -> None:
    a, b = _group(alice, name="a", tags=["t"]), _group(alice, name="b", stateful=False)
    assert ids(alice.get("/v2.0/security-groups", params={"name": "a"}), "security_groups") == [a["id"]]
    assert ids(alice.get("/v2.0/security-groups", params={"stateful": "false"}), "security_groups") == [b["id"]]
    assert ids(alice.get("/v2.0/security-groups", params={"tags": "t"}), "security_groups") == [a["id"]]
    r = alice.get("/v2.0/security-groups", params={"sort_key": "name", "sort_dir": "desc", "limit": 2})
    assert [g["name"] for g in r.json()["security_groups"]] == ["default", "b"]
    links = r.json()["security_groups_links"]
    assert {link["rel"] for link in links} == {"next", "previous"}  # a full page, linked as Neutron does
    assert all("/v2.0/security-groups?" in link["href"] for link in links)
    assert_fault(alice.get("/v2.0/security-groups", params={"normalized_cidr": "10.0.0.0/24"}), 400)


def test_group_tags_api(alice: Api) -> None:
    group = _group(alice)
    url = f"/v2.0/security-groups/{group['id']}/tags"
    assert alice.put(f"{url}/red").status_code == 201
    assert alice.get(url).json() == {"tags": ["red"]}
    assert _show(alice, group["id"])["tags"] == ["red"]


# ----------------------------------------------------------------------------------------- rules


def test_rule_lifecycle(alice: Api) -> None:
    group = _group(alice)
    rule = _rule(alice, group["id"], protocol="tcp", port_range_min=22, port_range_max=22,
                 remote_ip_prefix="192.0.2.0/24", description="ssh")
    assert set(rule) == RULE_ATTRS  # no name, no tags
    assert (rule["direction"], rule["ethertype"], rule["protocol"]) == ("ingress", "IPv4", "tcp")
    assert (rule["port_range_min"], rule["port_range_max"]) == (22, 22)
    assert (rule["remote_ip_prefix"], rule["normalized_cidr"]) == ("192.0.2.0/24", "192.0.2.0/24")
    assert rule["remote_group_id"] is None and rule["remote_address_group_id"] is None
    assert rule["belongs_to_default_sg"] is False and rule["description"] == "ssh"
    assert rule["project_id"] == rule["tenant_id"] == "alice"
    url = f"/v2.0/security-group-rules/{rule['id']}"
    assert alice.get(url).json() == {"security_group_rule": rule}
    assert rule in _show(alice, group["id"])["security_group_rules"]
    assert_fault(alice.put(url, json={"security_group_rule": {"description": "x"}}), 405)
    assert_fault(alice.put(url, json={"security_group_rule": {"protocol": "udp"}}), 400)
    assert alice.delete(url).status_code == 204
    assert_fault(alice.get(url), 404, "SecurityGroupRuleNotFound")
    assert rule["id"] not in {r["id"] for r in _show(alice, group["id"])["security_group_rules"]}


def test_rules_change_the_groups_revision(alice: Api) -> None:
    group = _group(alice)
    rev = group["revision_number"]
    rule = _rule(alice, group["id"], protocol="udp", port_range_min=53, port_range_max=53)
    assert _show(alice, group["id"])["revision_number"] == rev + 1
    alice.delete(f"/v2.0/security-group-rules/{rule['id']}")
    assert _show(alice, group["id"])["revision_number"] == rev + 2


@pytest.mark.parametrize("given,shown", [
    ({"protocol": "TCP"}, "tcp"), ({"protocol": 6}, "6"), ({"protocol": "17"}, "17"), ({"protocol": "any"}, "any"),
    ({"protocol": "vrrp"}, "vrrp"), ({"protocol": "ipv6-icmp", "ethertype": "IPv6"}, "ipv6-icmp"),
    ({"protocol": "icmp", "ethertype": "IPv6"}, "ipv6-icmp"),
    ({"protocol": "icmpv6", "ethertype": "IPv6"}, "ipv6-icmp"),
    ({"protocol": 1, "ethertype": "IPv6"}, "58"), ({}, None),
])
def test_protocols_as_neutron_stores_them(alice: Api, given: dict[str, Any], shown: str | None) -> None:
    rule = _rule(alice, _group(alice)["id"], **given)
    assert rule["protocol"] == shown


def test_addresses_without_a_prefix_mean_the_host(alice: Api) -> None:
    group = _group(alice)
    v4 = _rule(alice, group["id"], remote_ip_prefix="192.0.2.7")
    v6 = _rule(alice, group["id"], ethertype="ipv6", remote_ip_prefix="2001:DB8::7")
    assert (v4["remote_ip_prefix"], v4["ethertype"]) == ("192.0.2.7/32", "IPv4")
    assert (v6["remote_ip_prefix"], v6["ethertype"]) == ("2001:db8::7/128", "IPv6")
    host_bits = _rule(alice, group["id"], protocol="tcp", port_range_min=80, port_range_max=80,
                      remote_ip_prefix="10.0.0.5/24")
    assert (host_bits["remote_ip_prefix"], host_bits["normalized_cidr"]) == ("10.0.0.5/24", "10.0.0.0/24")


@pytest.mark.parametrize("attrs,status,error", [
    ({"protocol": "bogus"}, 400, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": "256"}, 400, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": 256}, 400, None),
    ({"port_range_min": 22, "port_range_max": 22}, 400, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20}, 400, "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "port_range_min": 22}, 400, "SecurityGroupInvalidPortRange"),
    ({"protocol": "udp", "port_range_min": 0, "port_range_max": 10}, 400, "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}, 400, None),
    ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2}, 400, "SecurityGroupInvalidProtocolForPort"),
    ({"protocol": "any", "port_range_min": 1, "port_range_max": 2}, 400, "SecurityGroupInvalidProtocolForPort"),
    ({"protocol": "icmp", "port_range_min": 256}, 400, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_min": 8, "port_range_max": 256}, 400, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_max": 0}, 400, "SecurityGroupMissingIcmpType"),
    ({"remote_ip_prefix": "2001:db8::/64"}, 400, "SecurityGroupRuleParameterConflict"),
    ({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}, 400, "SecurityGroupRuleParameterConflict"),
    ({"protocol": "ipv6-icmp"}, 400, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"protocol": "58"}, 400, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "SELF"}, 400, "SecurityGroupRemoteGroupAndRemoteIpPrefix"),
    ({"remote_group_id": MISSING}, 404, "SecurityGroupNotFound"),
    ({"direction": "sideways"}, 400, None),
    ({"ethertype": "IPv5"}, 400, None),
    ({"remote_ip_prefix": "10.0.0.300/8"}, 400, None),
    ({"name": "rules have no name"}, 400, None),
    ({"tags": ["rules have no tags"]}, 400, None),
])
def test_invalid_rules(alice: Api, attrs: dict[str, Any], status: int, error: str | None) -> None:
    group = _group(alice)
    attrs = {k: group["id"] if v == "SELF" else v for k, v in attrs.items()}
    assert_fault(_post_rule(alice, group["id"], **attrs), status, error)
    assert len(_show(alice, group["id"])["security_group_rules"]) == 2


def test_direction_and_group_are_required(alice: Api) -> None:
    group = _group(alice)
    r = alice.post("/v2.0/security-group-rules", json={"security_group_rule": {"security_group_id": group["id"]}})
    assert_fault(r, 400)
    r = alice.post("/v2.0/security-group-rules", json={"security_group_rule": {"direction": "egress"}})
    assert_fault(r, 400)
    assert_fault(_post_rule(alice, MISSING), 404, "SecurityGroupNotFound")


@pytest.mark.parametrize("first,second", [
    ({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
     {"protocol": "6", "port_range_min": 22, "port_range_max": 22}),
    ({"protocol": "udp", "remote_ip_prefix": "10.0.0.0/24", "port_range_min": 1, "port_range_max": 9},
     {"protocol": "UDP", "remote_ip_prefix": "10.0.0.5/24", "port_range_min": 1, "port_range_max": 9}),
    ({"protocol": "icmp"}, {"protocol": 1}),
    ({"ethertype": "IPv6", "protocol": "icmp"}, {"ethertype": "IPv6", "protocol": "ipv6-icmp"}),
    ({"remote_ip_prefix": "0.0.0.0/0", "protocol": "esp"}, {"protocol": "esp"}),
    ({"protocol": "any", "remote_ip_prefix": "10.0.0.0/8"}, {"protocol": 0, "remote_ip_prefix": "10.0.0.0/8"}),
    ({"protocol": "any", "remote_ip_prefix": "10.0.0.0/8"}, {"remote_ip_prefix": "10.0.0.0/8"}),
])
def test_equal_rules_are_refused(alice: Api, first: dict[str, Any], second: dict[str, Any]) -> None:
    group = _group(alice)
    rule = _rule(alice, group["id"], **first)
    err = assert_fault(_post_rule(alice, group["id"], **second), 409, "SecurityGroupRuleExists")
    assert err["message"] == f"Security group rule already exists. Rule id is {rule['id']}."
    # the same rule in another group, or the other direction, is a different rule
    _rule(alice, _group(alice)["id"], **second)
    _rule(alice, group["id"], **{**second, "direction": "egress"})


def test_the_new_groups_egress_rules_count_as_existing(alice: Api) -> None:
    group = _group(alice)
    egress_v4 = next(r for r in group["security_group_rules"] if r["ethertype"] == "IPv4")
    err = assert_fault(_post_rule(alice, group["id"], direction="egress"), 409, "SecurityGroupRuleExists")
    assert egress_v4["id"] in err["message"]


def test_bulk_rules(alice: Api) -> None:
    group = _group(alice)
    ssh = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 22,
           "port_range_max": 22}
    http = {**ssh, "port_range_min": 80, "port_range_max": 80}
    r = alice.post("/v2.0/security-group-rules", json={"security_group_rules": [ssh, http]})
    assert r.status_code == 201, r.text
    assert [x["port_range_min"] for x in r.json()["security_group_rules"]] == [22, 80]
    https = {**ssh, "port_range_min": 443, "port_range_max": 443}
    r = alice.post("/v2.0/security-group-rules", json={"security_group_rules": [https, https]})
    assert_fault(r, 409, "DuplicateSecurityGroupRuleInPost")
    assert len(_show(alice, group["id"])["security_group_rules"]) == 4  # two egress, ssh, http


def test_remote_group_rules(alice: Api, bob: Api) -> None:
    web, db = _group(alice, name="web"), _group(alice, name="db")
    rule = _rule(alice, db["id"], protocol="tcp", port_range_min=3306, port_range_max=3306, remote_group_id=web["id"])
    assert rule["remote_group_id"] == web["id"] and rule["normalized_cidr"] is None
    # a remote group must be one the project may use
    assert_fault(_post_rule(bob, _group(bob)["id"], remote_group_id=web["id"]), 404, "SecurityGroupNotFound")


def test_rule_filters(alice: Api) -> None:
    group = _group(alice)
    tcp = _rule(alice, group["id"], protocol="tcp", port_range_min=22, port_range_max=22)
    udp = _rule(alice, group["id"], protocol="udp", port_range_min=53, port_range_max=53, ethertype="IPv6")

    def found(**params: Any) -> set[str]:
        return set(ids(alice.get("/v2.0/security-group-rules", params=params), "security_group_rules"))

    in_group = found(security_group_id=group["id"])
    assert {tcp["id"], udp["id"]} <= in_group and len(in_group) == 4
    assert found(security_group_id=group["id"], direction="ingress") == {tcp["id"], udp["id"]}
    assert found(protocol="udp") == {udp["id"]}
    assert found(security_group_id=group["id"], ethertype="IPv6", direction="ingress") == {udp["id"]}
    assert found(port_range_min="22") == {tcp["id"]}
    assert_fault(alice.get("/v2.0/security-group-rules", params={"tags": "x"}), 400)
    assert_fault(alice.get("/v2.0/security-group-rules", params={"normalized_cidr": "x"}), 400)
    r = alice.get("/v2.0/security-group-rules", params={"security_group_id": group["id"], "sort_key": "protocol",
                                                        "fields": ["id", "protocol"]})
    assert r.json()["security_group_rules"][-2:] == [{"id": tcp["id"], "protocol": "tcp"},
                                                     {"id": udp["id"], "protocol": "udp"}]


def test_rule_quota_and_if_match(api: Api, alice: Api) -> None:
    group = _group(alice)
    rule = _rule(alice, group["id"], protocol="tcp", port_range_min=1, port_range_max=1)
    url = f"/v2.0/security-group-rules/{rule['id']}"
    assert_fault(alice.delete(url, headers={"If-Match": "revision_number=9"}), 412, "RevisionNumberConstraintFailed")
    assert alice.delete(url, headers={"If-Match": "revision_number=1"}).status_code == 204  # new: revision 1
    # default group (4) + the new group's egress rules (2) are in use
    used = api.get("/v2.0/quotas/alice/details").json()["quota"]["security_group_rule"]["used"]
    assert used == 6
    api.put("/v2.0/quotas/alice", json={"quota": {"security_group_rule": 7}})
    _rule(alice, group["id"], protocol="tcp", port_range_min=2, port_range_max=2)
    assert_fault(_post_rule(alice, group["id"], protocol="tcp", port_range_min=3, port_range_max=3), 409, "OverQuota")
    # deleting a group gives its rules back
    assert alice.delete(f"/v2.0/security-groups/{group['id']}").status_code == 204
    other = _group(alice)
    _rule(alice, other["id"], protocol="tcp", port_range_min=3, port_range_max=3)


def test_group_quota(api: Api, alice: Api) -> None:
    api.put("/v2.0/quotas/alice", json={"quota": {"security_group": 2}})
    first = _group(alice)  # the default group counts too
    assert_fault(alice.post("/v2.0/security-groups", json={"security_group": {}}), 409, "OverQuota")
    quota = api.get("/v2.0/quotas/alice/details").json()["quota"]
    assert quota["security_group"]["used"] == 2
    alice.delete(f"/v2.0/security-groups/{first['id']}")
    _group(alice)


def test_the_default_group_is_made_even_over_quota(api: Api, alice: Api, net: dict[str, Any]) -> None:
    api.put("/v2.0/quotas/alice", json={"quota": {"security_group": 0, "security_group_rule": 0}})
    port = alice.port(net["id"])
    assert port["security_groups"] == [_default(alice)["id"]]


# ----------------------------------------------------------------------------------------- ports


def test_port_with_chosen_groups(alice: Api, net: dict[str, Any]) -> None:
    a, b = _group(alice, name="a"), _group(alice, name="b")
    port = alice.port(net["id"], security_groups=[b["id"], a["id"]])
    assert port["security_groups"] == sorted([a["id"], b["id"]])
    assert alice.port(net["id"], security_groups=[])["security_groups"] == []
    listed = alice.get("/v2.0/ports", params={"id": port["id"]}).json()["ports"][0]
    assert listed["security_groups"] == port["security_groups"]


def test_port_groups_must_exist_and_belong_to_the_project(api: Api, alice: Api, bob: Api,
                                                          net: dict[str, Any]) -> None:
    bobs = _group(bob)
    for groups in ([MISSING], [bobs["id"]]):
        assert_fault(alice.post("/v2.0/ports", json={"port": {"network_id": net["id"], "security_groups": groups}}),
                     404, "SecurityGroupNotFound")
    # the port's project decides, also when an admin creates the port
    r = api.post("/v2.0/ports", json={"port": {"network_id": net["id"], "project_id": "alice",
                                               "security_groups": [bobs["id"]]}})
    assert_fault(r, 404, "SecurityGroupNotFound")
    assert alice.get("/v2.0/ports").json()["ports"] == []


def test_port_update_replaces_groups(alice: Api, net: dict[str, Any]) -> None:
    a, b = _group(alice, name="a"), _group(alice, name="b")
    port = alice.port(net["id"])
    url = f"/v2.0/ports/{port['id']}"
    r = alice.put(url, json={"port": {"security_groups": [a["id"], b["id"]]}})
    assert r.status_code == 200, r.text
    assert r.json()["port"]["security_groups"] == sorted([a["id"], b["id"]])
    r = alice.put(url, json={"port": {"security_groups": [b["id"]], "name": "p"}})
    assert r.json()["port"]["security_groups"] == [b["id"]] and r.json()["port"]["name"] == "p"
    assert alice.delete(f"/v2.0/security-groups/{a['id']}").status_code == 204  # no longer used
    assert_fault(alice.put(url, json={"port": {"security_groups": [MISSING]}}), 404, "SecurityGroupNotFound")
    assert alice.get(url).json()["port"]["security_groups"] == [b["id"]]


def test_port_security_and_groups(alice: Api, net: dict[str, Any]) -> None:
    group = _group(alice)
    r = alice.post("/v2.0/ports", json={"port": {"network_id": net["id"], "port_security_enabled": False,
                                                 "security_groups": [group["id"]]}})
    assert_fault(r, 400, "PortSecurityAndIPRequiredForSecurityGroups")
    port = alice.port(net["id"], security_groups=[group["id"]])
    url = f"/v2.0/ports/{port['id']}"
    assert_fault(alice.put(url, json={"port": {"port_security_enabled": False}}), 409,
                 "PortSecurityPortHasSecurityGroup")
    r = alice.put(url, json={"port": {"port_security_enabled": False, "security_groups": [group["id"]]}})
    assert_fault(r, 400, "PortSecurityAndIPRequiredForSecurityGroups")
    r = alice.put(url, json={"port": {"port_security_enabled": False, "security_groups": []}})
    assert r.status_code == 200, r.text
    assert (r.json()["port"]["port_security_enabled"], r.json()["port"]["security_groups"]) == (False, [])
    assert_fault(alice.put(url, json={"port": {"security_groups": [group["id"]]}}), 400,
                 "PortSecurityAndIPRequiredForSecurityGroups")


def test_deleting_a_port_frees_its_groups(alice: Api, net: dict[str, Any]) -> None:
    group = _group(alice)
    port = alice.port(net["id"], security_groups=[group["id"]])
    assert_fault(alice.delete(f"/v2.0/security-groups/{group['id']}"), 409, "SecurityGroupInUse")
    alice.delete(f"/v2.0/ports/{port['id']}")
    assert alice.delete(f"/v2.0/security-groups/{group['id']}").status_code == 204


# ----------------------------------------------------------------------------------------- policy


def test_other_projects_cannot_see_or_use_my_group(alice: Api, bob: Api) -> None:
    group = _group(alice)
    rule = _rule(alice, group["id"], protocol="tcp", port_range_min=22, port_range_max=22)
    assert group["id"] not in ids(bob.get("/v2.0/security-groups"), "security_groups")
    assert_fault(bob.get(f"/v2.0/security-groups/{group['id']}"), 404, "SecurityGroupNotFound")
    assert_fault(bob.put(f"/v2.0/security-groups/{group['id']}", json={"security_group": {"name": "x"}}), 404)
    assert_fault(bob.delete(f"/v2.0/security-groups/{group['id']}"), 404, "SecurityGroupNotFound")
    assert_fault(bob.get(f"/v2.0/security-group-rules/{rule['id']}"), 404, "SecurityGroupRuleNotFound")
    assert_fault(bob.delete(f"/v2.0/security-group-rules/{rule['id']}"), 404, "SecurityGroupRuleNotFound")
    assert rule["id"] not in ids(bob.get("/v2.0/security-group-rules"), "security_group_rules")
    assert_fault(_post_rule(bob, group["id"], protocol="udp"), 404, "SecurityGroupNotFound")
    assert len(_show(alice, group["id"])["security_group_rules"]) == 3


def test_reader_reads_but_cannot_write(api: Api, alice: Api) -> None:
    group = _group(alice)
    reader = api.as_("alice", "reader")
    assert group["id"] in ids(reader.get("/v2.0/security-groups"), "security_groups")
    assert reader.get(f"/v2.0/security-groups/{group['id']}").status_code == 200
    assert_fault(reader.post("/v2.0/security-groups", json={"security_group": {"name": "r"}}), 403,
                 "PolicyNotAuthorized")
    assert_fault(reader.put(f"/v2.0/security-groups/{group['id']}", json={"security_group": {"name": "r"}}), 403)
    assert_fault(reader.delete(f"/v2.0/security-groups/{group['id']}"), 403)
    assert_fault(_post_rule(reader, group["id"], protocol="tcp"), 403, "PolicyNotAuthorized")
    rule_id = group["security_group_rules"][0]["id"]
    assert reader.get(f"/v2.0/security-group-rules/{rule_id}").status_code == 200
    assert_fault(reader.delete(f"/v2.0/security-group-rules/{rule_id}"), 403)


def test_admin_manages_any_group_and_the_owner_sees_its_rules(api: Api, alice: Api) -> None:
    group = _group(alice)
    assert group["id"] in ids(api.get("/v2.0/security-groups"), "security_groups")
    rule = _rule(api, group["id"], protocol="tcp", port_range_min=8080, port_range_max=8080)
    assert rule["project_id"] == "admin-project"
    # the group's owner sees and may delete rules others put in its group (rule sg_owner)
    assert rule["id"] in ids(alice.get("/v2.0/security-group-rules"), "security_group_rules")
    assert alice.get(f"/v2.0/security-group-rules/{rule['id']}").status_code == 200
    assert alice.delete(f"/v2.0/security-group-rules/{rule['id']}").status_code == 204
    admin_group = _group(api, project_id="alice", name="by-admin")
    assert admin_group["project_id"] == "alice"
    assert "by-admin" in {g["name"] for g in _groups(alice)}


def test_member_cannot_create_a_group_for_another_project(alice: Api) -> None:
    r = alice.post("/v2.0/security-groups", json={"security_group": {"project_id": "bob"}})
    assert_fault(r, 400, "HTTPBadRequest")  # as Neutron: another project_id needs admin, before any policy


# ----------------------------------------------------------------------------------------- hints


@pytest.fixture
def hints(client: Any) -> Iterator[list[tuple[str, str, int]]]:
    """(kind, id, revision) of every hint published to the agents."""
    seen: list[tuple[str, str, int]] = []
    stop = client.app.transport.listen(lambda msg: seen.append((msg["kind"], msg["id"], msg["revision"])))
    yield seen
    stop()


def _sg_hints(seen: list[tuple[str, str, int]]) -> list[tuple[str, int]]:
    return [(ident, rev) for kind, ident, rev in seen if kind == "security_group"]


def test_agents_hear_of_rule_and_member_changes(alice: Api, net: dict[str, Any],
                                                hints: list[tuple[str, str, int]]) -> None:
    group = _group(alice)
    hints.clear()
    rule = _rule(alice, group["id"], protocol="tcp", port_range_min=22, port_range_max=22)
    assert _sg_hints(hints) == [(group["id"], group["revision_number"] + 1)]

    hints.clear()
    port = alice.port(net["id"], security_groups=[group["id"]])
    assert [g for g, _ in _sg_hints(hints)] == [group["id"]]

    hints.clear()
    alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"fixed_ips": [{"subnet_id": port["fixed_ips"][0]["subnet_id"],
                                                                          "ip_address": "10.0.0.77"}]}})
    assert [g for g, _ in _sg_hints(hints)] == [group["id"]]

    hints.clear()
    alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"name": "renamed"}})
    assert _sg_hints(hints) == []

    hints.clear()
    default = _default(alice)["id"]
    alice.put(f"/v2.0/ports/{port['id']}", json={"port": {"security_groups": [default]}})
    assert sorted(g for g, _ in _sg_hints(hints)) == sorted([group["id"], default])

    hints.clear()
    alice.delete(f"/v2.0/ports/{port['id']}")
    assert [g for g, _ in _sg_hints(hints)] == [default]

    hints.clear()
    alice.delete(f"/v2.0/security-group-rules/{rule['id']}")
    assert _sg_hints(hints) == [(group["id"], group["revision_number"] + 2)]


def test_unknown_paths_keep_hyphens(alice: Api) -> None:
    assert_fault(alice.get("/v2.0/security_groups"), 404)
    assert alice.get("/v2.0/security-groups.json").status_code == 200
    group = _group(alice)
    assert alice.get(f"/v2.0/security-groups/{group['id']}.json").status_code == 200
    assert_fault(alice.get(f"/v2.0/security-groups/{uuid.uuid4()}"), 404, "SecurityGroupNotFound")
