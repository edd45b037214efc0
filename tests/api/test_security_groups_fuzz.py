"""The property-based fuzzing of tests/api/test_fuzz.py, over security groups and their rules: no input
produces a 5xx, every error has Neutron's body, and a refused create writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.api.test_fuzz import FUZZ, assert_neutron_error, body_for, strings
from tests.conftest import Api

PROTOCOLS = st.sampled_from(["tcp", "UDP", "icmp", "ipv6-icmp", "icmpv6", "any", "gre", "6", "58", "300", "-1"])


@pytest.fixture
def sg_world(api: Api) -> dict[str, Any]:
    group, other = (api.post("/v2.0/security-groups", json={"security_group": {"name": n}}).json()["security_group"]
                    for n in ("fuzz", "other"))
    rule = group["security_group_rules"][0]
    return {"api": api, "group": group, "rule": rule,
            "ids": [group["id"], other["id"], rule["id"], "00000000-0000-4000-8000-000000000000"]}


def _count(api: Api, path: str, key: str) -> int:
    return len(api.get(f"/v2.0/{path}").json()[key])


@pytest.mark.parametrize("path,member", [("security-groups", "security_group"),
                                         ("security-group-rules", "security_group_rule")])
def test_fuzz_create(sg_world: dict[str, Any], path: str, member: str) -> None:
    api: Api = sg_world["api"]
    key = f"{member}s"
    seen: set[int] = set()
    base = {} if member == "security_group" else {"security_group_id": sg_world["group"]["id"],
                                                 "direction": "ingress", "protocol": "tcp"}
    fuzzed = body_for(f"{member.capitalize()}Create", member, sg_world["ids"], base)
    if member == "security_group_rule":  # reach the service's protocol and port checks often
        fuzzed = fuzzed | st.fixed_dictionaries({}, optional={
            "protocol": PROTOCOLS, "port_range_min": st.integers(-1, 70000), "port_range_max": st.integers(-1, 300),
            "ethertype": st.sampled_from(["IPv4", "ipv6"]), "remote_ip_prefix": strings,
        }).map(lambda extra: {member: {**base, **extra}})

    @given(body=fuzzed)
    @FUZZ
    def run(body: Any) -> None:
        before = _count(api, path, key)
        r = api.post(f"/v2.0/{path}", json=body)
        seen.add(r.status_code)
        assert_neutron_error(r)
        if r.status_code >= 400:
            assert _count(api, path, key) == before
        else:
            created = r.json()[member]
            assert api.delete(f"/v2.0/{path}/{created['id']}").status_code in (204, 409)

    run()
    assert 400 in seen
    assert 201 in seen, seen


@pytest.mark.parametrize("path,member,key", [("security-groups", "security_group", "group"),
                                             ("security-group-rules", "security_group_rule", "rule")])
def test_fuzz_update(sg_world: dict[str, Any], path: str, member: str, key: str) -> None:
    api: Api = sg_world["api"]
    ident = sg_world[key]["id"]

    @FUZZ
    @given(body=body_for(f"{member.capitalize()}Update", member, sg_world["ids"]))
    def run(body: Any) -> None:
        assert_neutron_error(api.put(f"/v2.0/{path}/{ident}", json=body))

    run()


query_keys = st.sampled_from(["name", "id", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "fields",
                              "tags", "stateful", "security_group_id", "direction", "ethertype", "protocol",
                              "port_range_min", "remote_ip_prefix", "remote_group_id", "shared", "bogus",
                              "tenant_id"])


@pytest.mark.parametrize("path", ["security-groups", "security-group-rules"])
def test_fuzz_list_queries(sg_world: dict[str, Any], path: str) -> None:
    api: Api = sg_world["api"]

    @FUZZ
    @given(params=st.lists(st.tuples(query_keys, strings | st.sampled_from(sg_world["ids"]) | st.just("id")),
                           max_size=5))
    def run(params: list[tuple[str, str]]) -> None:
        assert_neutron_error(api.get(f"/v2.0/{path}", params=params))

    run()
