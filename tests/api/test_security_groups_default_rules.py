"""Default security-group rule templates (security-groups-default-rules) as Neutron's: Neutron's built-in
templates, admin-only management, validation and duplicates as for rules, and new groups built from them (the
project's default group from those used_in_default_sg, any other from those used_in_non_default_sg)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids

URL = "/v2.0/default-security-group-rules"
TEMPLATE_ATTRS = {"id", "description", "remote_group_id", "remote_address_group_id", "direction", "protocol",
                  "port_range_min", "port_range_max", "ethertype", "remote_ip_prefix", "used_in_default_sg",
                  "used_in_non_default_sg"}
SHAPE = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
         "remote_group_id", "remote_address_group_id")


def _legacy(direction: str, ethertype: str) -> dict[str, Any]:
    ingress = direction == "ingress"
    return {"direction": direction, "ethertype": ethertype, "protocol": None, "port_range_min": None,
            "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": "PARENT" if ingress else None,
            "remote_address_group_id": None, "used_in_default_sg": True, "used_in_non_default_sg": not ingress,
            "description": f"Legacy default SG rule for {direction} traffic"}


LEGACY = [_legacy(d, e) for d in ("egress", "ingress") for e in ("IPv4", "IPv6")]


def _templates(who: Api, **filters: Any) -> list[dict[str, Any]]:
    r = who.get(URL, params=filters)
    assert r.status_code == 200, r.text
    return list(r.json()["default_security_group_rules"])


def _post(who: Api, **attrs: Any) -> Any:
    return who.post(URL, json={"default_security_group_rule": {"direction": "ingress", **attrs}})


def _create(who: Api, **attrs: Any) -> dict[str, Any]:
    r = _post(who, **attrs)
    assert r.status_code == 201, r.text
    return dict(r.json()["default_security_group_rule"])


def _without_id(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


def _shapes(rules: list[dict[str, Any]], group_id: str | None = None) -> list[tuple[Any, ...]]:
    out = []
    for r in rules:
        shape = tuple(r[k] for k in SHAPE)
        if group_id is not None and r["remote_group_id"] == group_id:
            shape = tuple("PARENT" if k == "remote_group_id" else r[k] for k in SHAPE)
        out.append(shape)
    return sorted(out, key=repr)


def _default_group(who: Api) -> dict[str, Any]:
    r = who.get("/v2.0/security-groups", params={"name": "default"})
    assert r.status_code == 200, r.text
    return dict(r.json()["security_groups"][0])


def _new_group(who: Api) -> dict[str, Any]:
    r = who.post("/v2.0/security-groups", json={"security_group": {"name": "g"}})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group"])


def test_neutrons_built_in_templates(api: Api) -> None:
    found = _templates(api.as_("alice", "reader"))
    assert all(set(t) == TEMPLATE_ATTRS for t in found)
    assert sorted(map(_without_id, found), key=repr) == sorted(LEGACY, key=repr)


def test_new_groups_are_built_from_the_templates(api: Api) -> None:
    alice = api.as_("alice", "member")
    default, other = _default_group(alice), _new_group(alice)
    wanted_default = _shapes([t for t in _templates(api) if t["used_in_default_sg"]])
    wanted_other = _shapes([t for t in _templates(api) if t["used_in_non_default_sg"]])
    assert _shapes(default["security_group_rules"], default["id"]) == wanted_default
    assert _shapes(other["security_group_rules"], other["id"]) == wanted_other
    assert all(r["belongs_to_default_sg"] for r in default["security_group_rules"])
    assert not any(r["belongs_to_default_sg"] for r in other["security_group_rules"])

    # an admin changes the templates: groups made afterwards follow them, existing ones stay as they are
    ssh = _create(api, protocol="tcp", port_range_min=22, port_range_max=22, used_in_default_sg=True,
                  used_in_non_default_sg=False, description="ssh")
    web = _create(api, protocol="tcp", port_range_min=80, port_range_max=80, remote_ip_prefix="10.0.0.0/8")
    for t in _templates(api, direction="egress", ethertype="IPv6"):
        assert api.delete(f"{URL}/{t['id']}").status_code == 204
    bob = api.as_("bob", "member")
    bob_default, bob_other = _default_group(bob), _new_group(bob)
    assert _shapes(bob_default["security_group_rules"], bob_default["id"]) == _shapes(
        [t for t in _templates(api) if t["used_in_default_sg"]])
    assert _shapes(bob_other["security_group_rules"], bob_other["id"]) == _shapes(
        [t for t in _templates(api) if t["used_in_non_default_sg"]])
    assert ("ingress", "IPv4", "tcp", 22, 22, None, None, None) in _shapes(bob_default["security_group_rules"])
    assert ("ingress", "IPv4", "tcp", 80, 80, "10.0.0.0/8", None, None) in _shapes(bob_other["security_group_rules"])
    assert not [r for r in bob_other["security_group_rules"] if r["ethertype"] == "IPv6"]
    again = alice.get(f"/v2.0/security-groups/{other['id']}").json()["security_group"]
    assert _shapes(again["security_group_rules"]) == _shapes(other["security_group_rules"])
    # a project's quota counts the rules its groups got
    usage = api.get("/v2.0/quotas/bob/details").json()["quota"]["security_group_rule"]["used"]
    assert usage == len(bob_default["security_group_rules"]) + len(bob_other["security_group_rules"])
    assert ssh["description"] == "ssh" and web["used_in_non_default_sg"] is True


def test_lifecycle_and_admin_only_management(api: Api) -> None:
    member = api.as_("alice", "member")
    assert_fault(_post(member, protocol="tcp"), 403, "PolicyNotAuthorized")
    t = _create(api, protocol="TCP", ethertype="ipV4", port_range_min=2222, port_range_max=2222, description="d")
    assert set(t) == TEMPLATE_ATTRS
    assert (t["protocol"], t["ethertype"], t["used_in_default_sg"], t["used_in_non_default_sg"]) == (
        "tcp", "IPv4", False, True)
    assert api.get(f"{URL}/{t['id']}").json()["default_security_group_rule"] == t
    assert member.get(f"{URL}/{t['id']}").status_code == 200, "any reader sees the templates"
    assert_fault(member.delete(f"{URL}/{t['id']}"), 403)
    assert_fault(api.put(f"{URL}/{t['id']}", json={"default_security_group_rule": {"description": "x"}}), 400)
    assert api.delete(f"{URL}/{t['id']}").status_code == 204
    assert_fault(api.get(f"{URL}/{t['id']}"), 404, "DefaultSecurityGroupRuleNotFound")
    assert_fault(api.delete(f"{URL}/{t['id']}"), 404, "DefaultSecurityGroupRuleNotFound")


def test_duplicates_share_a_use(api: Api) -> None:
    rule = {"protocol": "tcp", "port_range_min": 4000, "port_range_max": 4000}
    first = _create(api, **rule, used_in_default_sg=True, used_in_non_default_sg=True)
    for flags in ((True, False), (False, True)):
        err = assert_fault(_post(api, **rule, used_in_default_sg=flags[0], used_in_non_default_sg=flags[1]), 409,
                           "DefaultSecurityGroupRuleExists")
        assert first["id"] in err["message"]
    assert_fault(_post(api, **{**rule, "protocol": "6"}, description="other words"), 409)
    udp = {"protocol": "udp", "port_range_min": 50, "port_range_max": 100}
    _create(api, **udp, used_in_default_sg=True, used_in_non_default_sg=False)
    _create(api, **udp, used_in_default_sg=False, used_in_non_default_sg=True)  # no use in common: allowed
    assert len(_templates(api, protocol="udp")) == 2
    r = api.post(URL, json={"default_security_group_rules": [{"direction": "egress", "protocol": "gre"},
                                                             {"direction": "egress", "protocol": "47"}]})
    assert_fault(r, 409, "DuplicateDefaultSgRuleInPost")
    assert _templates(api, protocol="gre") == []


@pytest.mark.parametrize("attrs", [
    {"protocol": "tcp", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "PARENT"},
    {"remote_group_id": "PARENT", "remote_address_group_id": "00000000-0000-4000-8000-000000000000"},
    {"remote_ip_prefix": "10.0.0.0/8", "remote_address_group_id": "00000000-0000-4000-8000-000000000000"},
    {"protocol": "tcp", "port_range_min": 50, "port_range_max": 22},
    {"protocol": "tcp", "port_range_min": 22},
    {"port_range_min": 22, "port_range_max": 22},
    {"protocol": 111, "port_range_min": 70, "port_range_max": 70},
    {"protocol": "icmp", "port_range_min": 256},
    {"protocol": "icmp", "port_range_max": 2},
    {"protocol": "ipv6-frag"},
    {"remote_ip_prefix": "192.168.1.1/24", "ethertype": "IPv6"},
    {"remote_ip_prefix": "bad_ip"},
    {"ethertype": 2},
    {"remote_group_id": "not-a-group"},
    {"direction": "sideways"},
    {"used_in_default_sg": "perhaps"},
])
def test_bad_templates_are_refused(api: Api, attrs: dict[str, Any]) -> None:
    before = len(_templates(api))
    assert_fault(_post(api, **attrs), 400)
    assert len(_templates(api)) == before


def test_normalization(api: Api) -> None:
    every_port = _create(api, protocol="tcp", port_range_min=1, port_range_max=65535)
    assert (every_port["port_range_min"], every_port["port_range_max"]) == (None, None)
    host = _create(api, protocol="udp", remote_ip_prefix="10.1.2.3")
    assert host["remote_ip_prefix"] == "10.1.2.3/32"
    v6 = _create(api, ethertype="IPv6", protocol="tcp", remote_ip_prefix="fe80::2677:3ff:fe7d:4c")
    assert v6["remote_ip_prefix"] == "fe80::2677:3ff:fe7d:4c/128"


def test_filters_sorting_and_pagination(api: Api) -> None:
    made = [_create(api, direction="egress", protocol="tcp", port_range_min=p, port_range_max=p)
            for p in (22, 23, 24)]
    r = api.get(URL, params={"direction": "egress", "protocol": "tcp", "sort_key": "port_range_max",
                             "sort_dir": "desc", "limit": 2})
    assert ids(r, "default_security_group_rules") == [made[2]["id"], made[1]["id"]]
    assert any(link["rel"] == "next" for link in r.json()["default_security_group_rules_links"])
    assert len(_templates(api, used_in_default_sg="true")) == 4
    assert len(_templates(api, used_in_non_default_sg="false")) == 2
    assert_fault(api.get(URL, params={"project_id": "alice"}), 400)
