"""Security-group races a user could hit: first use of a project from many clients at once (one default
group), and the same rule added by many clients at once (one rule, the others told its id)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.support import races

MEMBER = {"X-Project-Id": "sg-race", "X-Roles": "member"}


endpoint = races.endpoint  # the fixture: a live server on each database


def _in_parallel(endpoint: str, n: int, call: Any) -> list[httpx.Response]:
    return races.in_parallel(endpoint, MEMBER, n, call)


def test_first_use_from_many_clients_makes_one_default_group(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        net = c.post("/v2.0/networks", json={"network": {}}).json()["network"]
        c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.5.0.0/24", "ip_version": 4}})

    def first_use(c: httpx.Client, i: int) -> httpx.Response:
        if i % 2:
            return c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}})
        return c.get("/v2.0/security-groups")

    responses = _in_parallel(endpoint, 16, first_use)
    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses if r.status_code >= 300]
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        groups = c.get("/v2.0/security-groups").json()["security_groups"]
        assert [g["name"] for g in groups] == ["default"]
        assert len(groups[0]["security_group_rules"]) == 4
        ports = c.get("/v2.0/ports").json()["ports"]
        assert len(ports) == 8 and {tuple(p["security_groups"]) for p in ports} == {(groups[0]["id"],)}
        usage = c.get("/v2.0/quotas/sg-race/details").json()["quota"]
        assert usage["security_group"]["used"] == 1 and usage["security_group_rule"]["used"] == 4


def test_the_same_rule_from_many_clients_is_stored_once(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        group = c.post("/v2.0/security-groups", json={"security_group": {"name": "race"}}).json()["security_group"]
    rule = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 443,
            "port_range_max": 443}

    def add(c: httpx.Client, i: int) -> httpx.Response:
        spelled = {**rule, "protocol": "tcp" if i % 2 else "6"}
        return c.post("/v2.0/security-group-rules", json={"security_group_rule": spelled})

    responses = _in_parallel(endpoint, 16, add)
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 15}
    [winner] = [r.json()["security_group_rule"]["id"] for r in responses if r.status_code == 201]
    for r in responses:
        if r.status_code == 409:
            assert r.json()["NeutronError"] == {
                "type": "SecurityGroupRuleExists", "detail": "",
                "message": f"Security group rule already exists. Rule id is {winner}."}
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        rules = c.get("/v2.0/security-group-rules", params={"security_group_id": group["id"]}).json()
        assert len(rules["security_group_rules"]) == 3
        usage = c.get("/v2.0/quotas/sg-race/details").json()["quota"]
        assert usage["security_group_rule"]["used"] == 4 + 3


ADMIN = {"X-Project-Id": "admin", "X-Roles": "admin"}


def test_the_same_address_from_many_clients_is_added_once(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        ag = c.post("/v2.0/address-groups", json={"address_group": {"name": "race"}}).json()["address_group"]

    def add(c: httpx.Client, i: int) -> httpx.Response:
        return c.put(f"/v2.0/address-groups/{ag['id']}/add_addresses", json={"addresses": ["10.7.0.0/16"]})

    responses = _in_parallel(endpoint, 8, add)
    assert Counter(r.status_code for r in responses) == {200: 1, 400: 7}, [r.text for r in responses]
    assert all(r.json()["NeutronError"]["type"] == "AddressesAlreadyExist" for r in responses if r.status_code == 400)
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        assert c.get(f"/v2.0/address-groups/{ag['id']}").json()["address_group"]["addresses"] == ["10.7.0.0/16"]


def test_a_rule_naming_an_address_group_and_its_deletion_race_cleanly(endpoint: str) -> None:
    """Either the rule goes in and the group stays (409 on its delete), or the group goes and the rule is
    refused (404): never both, never a 500."""
    def race(ag_id: str, sg_id: str) -> Any:
        def call(c: httpx.Client, i: int) -> httpx.Response:
            if i == 0:
                return c.delete(f"/v2.0/address-groups/{ag_id}")
            return c.post("/v2.0/security-group-rules", json={"security_group_rule": {
                "security_group_id": sg_id, "direction": "ingress", "protocol": "tcp",
                "remote_address_group_id": ag_id}})
        return call

    for _ in range(4):
        with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
            ag = c.post("/v2.0/address-groups", json={"address_group": {}}).json()["address_group"]
            sg = c.post("/v2.0/security-groups", json={"security_group": {}}).json()["security_group"]
        deleted, created = _in_parallel(endpoint, 2, race(ag["id"], sg["id"]))
        assert (deleted.status_code, created.status_code) in ((204, 404), (409, 201)), (deleted.text, created.text)


def test_the_same_template_from_many_admins_is_stored_once(endpoint: str) -> None:
    def create(c: httpx.Client, i: int) -> httpx.Response:
        return c.post("/v2.0/default-security-group-rules", headers=ADMIN, json={"default_security_group_rule": {
            "direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443,
            "used_in_default_sg": i % 2 == 0, "used_in_non_default_sg": True}})

    responses = _in_parallel(endpoint, 8, create)
    assert Counter(r.status_code for r in responses) == {201: 1, 409: 7}, [r.text for r in responses]
