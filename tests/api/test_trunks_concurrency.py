"""Trunk races a user could hit, on a live server over each database: the same VLAN added to a trunk by many
clients at once (one wins), one port added to many trunks at once (one wins), and one port taken as a parent
and as a subport at once (never both)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.support import races

MEMBER = {"X-Project-Id": "trunk-race", "X-Roles": "member"}


endpoint = races.endpoint  # the fixture: a live server on each database


def _in_parallel(endpoint: str, n: int, call: Any) -> list[httpx.Response]:
    return races.in_parallel(endpoint, MEMBER, n, call)


def _ports(c: httpx.Client, n: int) -> list[str]:
    net = c.post("/v2.0/networks", json={"network": {}}).json()["network"]
    return [c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]["id"] for _ in range(n)]


def _trunk(c: httpx.Client, parent: str) -> str:
    r = c.post("/v2.0/trunks", json={"trunk": {"port_id": parent}})
    assert r.status_code == 201, r.text
    return r.json()["trunk"]["id"]  # type: ignore[no-any-return]


def test_the_same_vlan_from_many_clients_is_added_once(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        parent, *subs = _ports(c, 9)
        trunk = _trunk(c, parent)

    def add(c: httpx.Client, i: int) -> httpx.Response:
        return c.put(f"/v2.0/trunks/{trunk}/add_subports",
                     json={"sub_ports": [{"port_id": subs[i], "segmentation_type": "vlan", "segmentation_id": 42}]})

    responses = _in_parallel(endpoint, len(subs), add)
    assert Counter(r.status_code for r in responses) == {200: 1, 409: len(subs) - 1}, [r.text for r in responses]
    assert {r.json()["NeutronError"]["type"] for r in responses if r.status_code == 409} == {"DuplicateSubPort"}
    [winner] = [subs[i] for i, r in enumerate(responses) if r.status_code == 200]
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        shown = c.get(f"/v2.0/trunks/{trunk}").json()["trunk"]
        assert shown["sub_ports"] == [{"port_id": winner, "segmentation_type": "vlan", "segmentation_id": 42}]
        owners = {p["id"]: p["device_owner"] for p in c.get("/v2.0/ports").json()["ports"]}
        assert [pid for pid in subs if owners[pid]] == [winner]  # the losers' ports were left as they were


def test_one_port_added_to_many_trunks_joins_one(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        port, *parents = _ports(c, 7)
        trunks = [_trunk(c, p) for p in parents]

    def add(c: httpx.Client, i: int) -> httpx.Response:
        return c.put(f"/v2.0/trunks/{trunks[i]}/add_subports",
                     json={"sub_ports": [{"port_id": port, "segmentation_type": "vlan", "segmentation_id": i + 1}]})

    responses = _in_parallel(endpoint, len(trunks), add)
    assert Counter(r.status_code for r in responses) == {200: 1, 409: len(trunks) - 1}, [r.text for r in responses]
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        holding = [t["id"] for t in c.get("/v2.0/trunks").json()["trunks"] if t["sub_ports"]]
        assert len(holding) == 1
        assert c.get(f"/v2.0/ports/{port}").json()["port"]["device_id"] == holding[0]


def test_a_port_is_never_parent_and_subport_at_once(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        contested, other_parent = _ports(c, 2)
        other = _trunk(c, other_parent)

    def take(c: httpx.Client, i: int) -> httpx.Response:
        if i % 2:
            return c.post("/v2.0/trunks", json={"trunk": {"port_id": contested}})
        return c.put(f"/v2.0/trunks/{other}/add_subports",
                     json={"sub_ports": [{"port_id": contested, "segmentation_type": "vlan", "segmentation_id": 9}]})

    responses = _in_parallel(endpoint, 8, take)
    assert sum(r.status_code in (200, 201) for r in responses) == 1, [r.text for r in responses]
    assert {r.status_code for r in responses} <= {200, 201, 409}, [r.text for r in responses]
    with httpx.Client(base_url=endpoint, headers=MEMBER, timeout=60) as c:
        trunks = c.get("/v2.0/trunks").json()["trunks"]
        as_parent = [t for t in trunks if t["port_id"] == contested]
        as_sub = [t for t in trunks if any(s["port_id"] == contested for s in t["sub_ports"])]
        assert len(as_parent) + len(as_sub) == 1
