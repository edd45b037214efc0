"""Bulk and single creates racing each other over HTTP on every database: never a 5xx, never a duplicate
address, MAC or segment id, and every bulk request all or nothing."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import Any

import httpx
import pytest

from tests.support.live_api import admin_headers, live_endpoint
from tests.support.live_api import create as _create

ADMIN = admin_headers("bulk-race")
CLIENTS = 8
ROUNDS = 5
UNLIMITED = {"network": -1, "subnet": -1, "port": -1, "floatingip": -1, "security_group": -1,
             "security_group_rule": -1}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                        pytest.param("mysql", marks=pytest.mark.mysql)])
def endpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp(f"bulk-{request.param}")
    with live_endpoint(request.param, tmp, "bulk-race", UNLIMITED) as ep:
        yield ep


def _client(endpoint: str) -> httpx.Client:
    return httpx.Client(base_url=endpoint, headers=ADMIN, timeout=120)


def _race(endpoint: str, collection: str, bodies: Callable[[int], list[list[dict[str, Any]]]]) -> list[Any]:
    """Each of CLIENTS clients posts its requests in order (a list of one item is a single create, more is a
    bulk), all clients starting each bulk at the same moment; returns what was created, after checking
    that every request succeeded and every bulk answered all its items."""
    member = collection[:-1]
    start = Barrier(CLIENTS, timeout=120)

    def worker(i: int) -> list[tuple[list[dict[str, Any]], httpx.Response]]:
        out = []
        with _client(endpoint) as c:
            for items in bodies(i):
                body = {member: items[0]} if len(items) == 1 else {collection: items}
                if len(items) > 1:
                    start.wait()
                out.append((items, c.post(f"/v2.0/{collection.replace('_', '-')}", json=body)))
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        done = [pair for part in pool.map(worker, range(CLIENTS)) for pair in part]
    statuses = Counter(r.status_code for _, r in done)
    assert statuses == {201: len(done)}, (statuses, [r.text[:300] for _, r in done if r.status_code != 201][:3])
    created = []
    for items, r in done:
        got = r.json()[member] if len(items) == 1 else r.json()[collection]
        got = [got] if len(items) == 1 else got
        assert len(got) == len(items)  # a bulk answers every item, in order
        created.extend(got)
    return created


def _mixed(bulk: list[dict[str, Any]], singles: list[dict[str, Any]], times: int = 2) -> list[list[dict[str, Any]]]:
    """The bulk, then the singles one by one, then the bulk again (`times` bulks in all)."""
    return [bulk, *([s] for s in singles), *[bulk] * (times - 1)]


def test_ports_on_one_network(endpoint: str) -> None:
    with _client(endpoint) as c:
        net = _create(c, "networks", name="bulk-ports")
        _create(c, "subnets", network_id=net["id"], cidr="10.20.0.0/16", ip_version=4)
    item = {"network_id": net["id"]}
    ports = _race(endpoint, "ports", lambda i: _mixed([item] * 100, [item] * 4, times=4))  # issue 14's case
    assert len(ports) == CLIENTS * 404
    ips = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
    assert len(ips) == len(ports) and len(set(ips)) == len(ips)
    assert len({p["mac_address"] for p in ports}) == len(ports)
    with _client(endpoint) as c:
        listed = c.get("/v2.0/ports", params={"network_id": net["id"]}).json()["ports"]
    assert sorted(f["ip_address"] for p in listed for f in p["fixed_ips"]) == sorted(ips)


def test_a_bulk_takes_its_addresses_in_ascending_order(endpoint: str) -> None:
    # what keeps concurrent bulks from deadlocking: each locks its unique keys in one (ascending) order
    with _client(endpoint) as c:
        net = _create(c, "networks", name="bulk-order")
        _create(c, "subnets", network_id=net["id"], cidr="10.70.0.0/24", ip_version=4)
        r = c.post("/v2.0/ports", json={"ports": [{"network_id": net["id"]}] * 20})
    assert r.status_code == 201, r.text
    ips = [int(ipaddress.ip_address(p["fixed_ips"][0]["ip_address"])) for p in r.json()["ports"]]
    assert ips == sorted(ips) and len(set(ips)) == 20


def test_security_group_rules(endpoint: str) -> None:
    with _client(endpoint) as c:
        groups = [_create(c, "security-groups", name=f"bulk-rules-{i}")["id"] for i in range(2)]

    def bodies(i: int) -> list[list[dict[str, Any]]]:
        # rules into both groups, each naming itself or the other as the remote group, in an order that
        # differs between clients
        rules = []
        for k in range(12):
            own, other = groups[(i + k) % 2], groups[(i + k + 1) % 2]
            port = 1000 + 100 * i + k
            rules.append({"security_group_id": own, "direction": "ingress", "protocol": "tcp",
                          "port_range_min": port, "port_range_max": port,
                          "remote_group_id": own if k % 3 else other})
        return [rules[:5], *([r] for r in rules[5:8]), rules[8:]]

    rules = _race(endpoint, "security_group_rules", bodies)
    assert len(rules) == CLIENTS * 12
    assert len({r["id"] for r in rules}) == len(rules)


def test_floating_ips(endpoint: str) -> None:
    with _client(endpoint) as c:
        ext = _create(c, "networks", name="bulk-public", **{"router:external": True})
        _create(c, "subnets", network_id=ext["id"], cidr="198.18.0.0/16", ip_version=4)
    item = {"floating_network_id": ext["id"]}
    fips = _race(endpoint, "floatingips", lambda i: _mixed([item] * 25, [item] * 3))
    assert len(fips) == CLIENTS * 53
    addresses = [f["floating_ip_address"] for f in fips]
    assert len(set(addresses)) == len(addresses)
    with _client(endpoint) as c:
        ports = c.get("/v2.0/ports", params={"network_id": ext["id"]}).json()["ports"]
    assert sorted(f["ip_address"] for p in ports for f in p["fixed_ips"]) == sorted(addresses)


def test_networks(endpoint: str) -> None:
    nets = _race(endpoint, "networks", lambda i: _mixed([{"name": f"n{i}"}] * 30, [{"name": f"s{i}"}] * 3))
    assert len(nets) == CLIENTS * 63
    segments = [(n["provider:network_type"], n["provider:segmentation_id"]) for n in nets]
    assert len(set(segments)) == len(segments)


def test_a_bulk_takes_its_segment_ids_in_ascending_order(endpoint: str) -> None:
    with _client(endpoint) as c:
        r = c.post("/v2.0/networks", json={"networks": [{"name": f"bulk-order-{k}"} for k in range(20)]})
    assert r.status_code == 201, r.text
    ids = [n["provider:segmentation_id"] for n in r.json()["networks"]]
    # ascending, but for at most one wrap from the top of the range to its bottom
    assert sum(1 for a, b in zip(ids, ids[1:], strict=False) if b < a) <= 1, ids


def test_subnets(endpoint: str) -> None:
    with _client(endpoint) as c:
        nets = [_create(c, "networks", name=f"bulk-subnets-{i}")["id"] for i in range(CLIENTS)]

    def bodies(i: int) -> list[list[dict[str, Any]]]:
        cidrs = [f"10.{100 + i}.{k}.0/24" for k in range(13)]
        # every client also adds subnets to its neighbour's network
        mine = [{"network_id": nets[i if k % 2 else (i + 1) % CLIENTS], "cidr": cidr, "ip_version": 4}
                for k, cidr in enumerate(cidrs)]
        return [mine[:5], *([s] for s in mine[5:8]), mine[8:]]

    subnets = _race(endpoint, "subnets", bodies)
    assert len(subnets) == CLIENTS * 13
    with _client(endpoint) as c:
        assert len(c.get("/v2.0/subnets").json()["subnets"]) >= len(subnets)


def test_overlapping_subnets_on_one_network(endpoint: str) -> None:
    with _client(endpoint) as c:
        nets = [_create(c, "networks", name=f"bulk-overlap-{k}")["id"] for k in range(ROUNDS)]
    start = Barrier(CLIENTS, timeout=120)

    def worker(i: int) -> list[int]:
        out = []
        with _client(endpoint) as c:
            for net in nets:  # every client asks for a different CIDR that holds 10.60.0.0/26, at once
                body = {"subnet": {"network_id": net, "cidr": f"10.60.0.0/{26 - i}", "ip_version": 4}}
                start.wait()
                out.append(c.post("/v2.0/subnets", json=body).status_code)
        return out

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = Counter(s for part in pool.map(worker, range(CLIENTS)) for s in part)
    assert statuses == {201: ROUNDS, 400: ROUNDS * (CLIENTS - 1)}, statuses
    with _client(endpoint) as c:
        for net in nets:
            assert len(c.get("/v2.0/subnets", params={"network_id": net}).json()["subnets"]) == 1
