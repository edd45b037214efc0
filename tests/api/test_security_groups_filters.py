"""The remaining attributes and filters of issue 15's security extensions: normalized_cidr
(security-groups-normalized-cidr), belongs_to_default_sg (security-groups-rules-belongs-to-default-sg), shared
(security-groups-shared-filtering) and ports filtered by their groups (port-security-groups-filtering)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.support.neutron import assert_fault, ids


@pytest.fixture
def alice(api: Api) -> Api:
    return api.as_("alice", "member")


def _group(who: Api, name: str = "g") -> dict[str, Any]:
    r = who.post("/v2.0/security-groups", json={"security_group": {"name": name}})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group"])


def _rule(who: Api, group_id: str, **attrs: Any) -> dict[str, Any]:
    body = {"security_group_id": group_id, "direction": "ingress", **attrs}
    r = who.post("/v2.0/security-group-rules", json={"security_group_rule": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["security_group_rule"])


def _rules(who: Api, **filters: str) -> list[str]:
    return ids(who.get("/v2.0/security-group-rules", params=filters), "security_group_rules")


def test_normalized_cidr_shows_and_filters_the_network(alice: Api) -> None:
    g = _group(alice)
    host_bits = _rule(alice, g["id"], protocol="tcp", remote_ip_prefix="10.0.0.7/24")
    clean = _rule(alice, g["id"], protocol="udp", remote_ip_prefix="10.0.0.0/24")
    v6 = _rule(alice, g["id"], ethertype="IPv6", remote_ip_prefix="2001:db8::5/64")
    anywhere = _rule(alice, g["id"], protocol="icmp", remote_ip_prefix="0.0.0.0/0")
    assert (host_bits["remote_ip_prefix"], host_bits["normalized_cidr"]) == ("10.0.0.7/24", "10.0.0.0/24")
    assert v6["normalized_cidr"] == "2001:db8::/64"
    assert anywhere["normalized_cidr"] == "0.0.0.0/0"
    assert all(r["normalized_cidr"] is None for r in g["security_group_rules"])
    assert sorted(_rules(alice, normalized_cidr="10.0.0.0/24")) == sorted([host_bits["id"], clean["id"]])
    assert _rules(alice, remote_ip_prefix="10.0.0.0/24") == [clean["id"]]
    assert_fault(alice.get("/v2.0/security-group-rules", params={"normalized_cidr": "nonsense"}), 400)
    r = alice.get("/v2.0/security-group-rules", params={"sort_key": "normalized_cidr", "security_group_id": g["id"]})
    assert r.status_code == 200, r.text


def test_belongs_to_default_sg_filters_rules(alice: Api) -> None:
    g = _group(alice)
    mine = _rule(alice, g["id"], protocol="tcp")
    default = alice.get("/v2.0/security-groups", params={"name": "default"}).json()["security_groups"][0]
    in_default = {r["id"] for r in default["security_group_rules"]}
    assert set(_rules(alice, belongs_to_default_sg="true")) == in_default
    assert set(_rules(alice, belongs_to_default_sg="false")) == {r["id"] for r in g["security_group_rules"]} | {
        mine["id"]}
    assert mine["belongs_to_default_sg"] is False
    assert_fault(alice.get("/v2.0/security-group-rules", params={"belongs_to_default_sg": "maybe"}), 400)


def test_groups_filter_on_shared(alice: Api) -> None:
    g = _group(alice)
    assert g["shared"] is False
    everything = ids(alice.get("/v2.0/security-groups"), "security_groups")
    assert g["id"] in everything
    assert ids(alice.get("/v2.0/security-groups", params={"shared": "false"}), "security_groups") == everything
    assert ids(alice.get("/v2.0/security-groups", params={"shared": "true"}), "security_groups") == []
    assert_fault(alice.get("/v2.0/security-groups", params={"shared": "sometimes"}), 400)


def test_ports_filter_on_their_groups(alice: Api) -> None:
    net = alice.network(name="n")
    alice.subnet(net["id"], "10.0.0.0/24")
    a, b = _group(alice, "a"), _group(alice, "b")
    in_a = alice.port(net["id"], security_groups=[a["id"]])
    in_both = alice.port(net["id"], security_groups=[a["id"], b["id"]])
    alice.port(net["id"])  # the default group
    alice.port(net["id"], security_groups=[], port_security_enabled=False)

    def ports(*groups: str) -> list[str]:
        return sorted(ids(alice.get("/v2.0/ports", params=[("security_groups", g) for g in groups]), "ports"))

    assert ports(a["id"]) == sorted([in_a["id"], in_both["id"]])
    assert ports(b["id"]) == [in_both["id"]]
    assert ports(a["id"], b["id"]) == sorted([in_a["id"], in_both["id"]]), "in any of the groups"
    assert ports("00000000-0000-4000-8000-000000000000") == []
    assert_fault(alice.get("/v2.0/ports", params={"security_groups": "not-a-uuid"}), 400)
