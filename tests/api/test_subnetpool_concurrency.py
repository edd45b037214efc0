"""Subnets taken from one pool by concurrent clients, on every database: never an overlap, never a 5xx."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx
import pytest

from tests.support.live_api import admin_headers, live_endpoint
from tests.support.live_api import create as _create

ADMIN = admin_headers("pool-race")
CLIENTS = 8
ROUNDS = 4


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                        pytest.param("mysql", marks=pytest.mark.mysql)])
def endpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp(f"pool-{request.param}")
    with live_endpoint(request.param, tmp, "pool-race") as ep:
        yield ep


def _client(endpoint: str) -> httpx.Client:
    return httpx.Client(base_url=endpoint, headers=ADMIN, timeout=120)


def test_concurrent_allocations_never_overlap(endpoint: str) -> None:
    with _client(endpoint) as c:
        pool = _create(c, "subnetpools", name="race", prefixes=["10.200.0.0/16"], default_prefixlen=24)
        nets = [_create(c, "networks", name=f"pool-race-{i}")["id"] for i in range(CLIENTS)]
    start = Barrier(CLIENTS, timeout=120)

    def worker(i: int) -> list[httpx.Response]:
        out = []
        with _client(endpoint) as c:
            for k in range(ROUNDS):
                # singles and bulks, /24s and /26s, on the client's own network and its neighbour's
                net = nets[i if k % 2 else (i + 1) % CLIENTS]
                item = {"network_id": net, "ip_version": 4, "subnetpool_id": pool["id"],
                        "prefixlen": 24 if k % 2 else 26}
                start.wait()
                if k == ROUNDS - 1:
                    out.append(c.post("/v2.0/subnets", json={"subnets": [item] * 3}))
                else:
                    out.append(c.post("/v2.0/subnets", json={"subnet": item}))
        return out

    with ThreadPoolExecutor(CLIENTS) as ex:
        done = [r for part in ex.map(worker, range(CLIENTS)) for r in part]
    statuses = Counter(r.status_code for r in done)
    assert statuses == {201: len(done)}, (statuses, [r.text[:300] for r in done if r.status_code != 201][:3])
    with _client(endpoint) as c:
        subnets = c.get("/v2.0/subnets", params={"subnetpool_id": pool["id"]}).json()["subnets"]
    assert len(subnets) == CLIENTS * (ROUNDS - 1 + 3)
    cidrs = sorted((ipaddress.ip_network(s["cidr"]) for s in subnets), key=lambda n: int(n.network_address))
    for a, b in zip(cidrs, cidrs[1:], strict=False):
        assert not a.overlaps(b), (a, b)
    assert all(n.subnet_of(ipaddress.ip_network("10.200.0.0/16")) for n in cidrs)


def test_one_specific_cidr_goes_to_one_client(endpoint: str) -> None:
    with _client(endpoint) as c:
        pool = _create(c, "subnetpools", name="race-specific", prefixes=["10.201.0.0/16"])
        nets = [_create(c, "networks", name=f"pool-specific-{i}")["id"] for i in range(CLIENTS)]
    start = Barrier(CLIENTS, timeout=120)

    def worker(i: int) -> list[int]:
        out = []
        with _client(endpoint) as c:
            for k in range(ROUNDS):
                body = {"subnet": {"network_id": nets[i], "ip_version": 4, "subnetpool_id": pool["id"],
                                   "cidr": f"10.201.{k}.0/{24 + i % 3}"}}
                start.wait()
                out.append(c.post("/v2.0/subnets", json=body).status_code)
        return out

    with ThreadPoolExecutor(CLIENTS) as ex:
        statuses = Counter(s for part in ex.map(worker, range(CLIENTS)) for s in part)
    assert statuses == {201: ROUNDS, 400: ROUNDS * (CLIENTS - 1)}, statuses


def test_one_default_pool_per_ip_version_even_when_racing(endpoint: str) -> None:
    start = Barrier(CLIENTS, timeout=120)

    def worker(i: int) -> int:
        with _client(endpoint) as c:
            body = {"subnetpool": {"name": f"default-{i}", "prefixes": [f"10.{210 + i}.0.0/16"], "is_default": True}}
            start.wait()
            return c.post("/v2.0/subnetpools", json=body).status_code

    with ThreadPoolExecutor(CLIENTS) as ex:
        statuses = Counter(ex.map(worker, range(CLIENTS)))
    assert statuses == {201: 1, 400: CLIENTS - 1}, statuses
    with _client(endpoint) as c:
        defaults = c.get("/v2.0/subnetpools", params={"is_default": "true", "ip_version": 4}).json()["subnetpools"]
    assert len(defaults) == 1
