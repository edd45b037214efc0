"""Races a user could hit: many clients allocating from one subnet, and quotas under concurrent creates."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import servers

ADMIN = {"X-Project-Id": "race", "X-Roles": "admin"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path):
    with servers.temporary_database(request.param, tmp_path) as url, servers.live_server(url) as ep:
        yield ep


def _create_ports(endpoint: str, net_id: str, clients: int, per_client: int) -> list[httpx.Response]:
    def worker(_: int) -> list[httpx.Response]:
        out = []
        with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=120) as c:
            for _ in range(per_client):
                out.append(c.post("/v2.0/ports", json={"port": {"network_id": net_id}}))
        return out

    with ThreadPoolExecutor(clients) as pool:
        return [r for batch in pool.map(worker, range(clients)) for r in batch]


def test_64_clients_exhaust_a_slash_24_without_duplicates(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=60) as c:
        assert c.put("/v2.0/quotas/race", json={"quota": {"port": -1}}).status_code == 200
        net = c.post("/v2.0/networks", json={"network": {"name": "race"}}).json()["network"]
        sub = c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24",
                                                        "ip_version": 4}}).json()["subnet"]
    responses = _create_ports(endpoint, net["id"], clients=64, per_client=5)  # 320 tries for 253 addresses
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 253, 409: 320 - 253}, statuses
    refused = [r.json()["NeutronError"]["type"] for r in responses if r.status_code == 409]
    assert set(refused) == {"IpAddressGenerationFailure"}
    ips = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in responses if r.status_code == 201]
    macs = [r.json()["port"]["mac_address"] for r in responses if r.status_code == 201]
    assert len(set(ips)) == 253 and len(set(macs)) == 253
    expected = {f"10.9.0.{i}" for i in range(2, 255)}
    assert set(ips) == expected
    with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=60) as c:
        listed = c.get("/v2.0/ports", params={"network_id": net["id"]}).json()["ports"]
        assert sorted(p["fixed_ips"][0]["ip_address"] for p in listed) == sorted(ips)
        # deleting a port frees its address for the next one
        victim = listed[0]
        assert c.delete(f"/v2.0/ports/{victim['id']}").status_code == 204
        again = c.post("/v2.0/ports", json={"port": {"network_id": net["id"],
                                                     "fixed_ips": [{"subnet_id": sub["id"]}]}})
        assert again.status_code == 201, again.text
        assert again.json()["port"]["fixed_ips"][0]["ip_address"] == victim["fixed_ips"][0]["ip_address"]


def test_concurrent_creates_respect_the_quota_exactly(endpoint: str) -> None:
    project = {"X-Project-Id": "quota-race", "X-Roles": "member"}
    with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=60) as c:
        assert c.put("/v2.0/quotas/quota-race", json={"quota": {"network": 10}}).status_code == 200

    def worker(i: int) -> int:
        with httpx.Client(base_url=endpoint, headers=project, timeout=120) as c:
            return c.post("/v2.0/networks", json={"network": {"name": f"q{i}"}}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(worker, range(40)))
    assert statuses == {201: 10, 409: 30}, statuses
    with httpx.Client(base_url=endpoint, headers=project, timeout=60) as c:
        assert len(c.get("/v2.0/networks").json()["networks"]) == 10
        details = c.get("/v2.0/quotas/quota-race/details.json").json()["quota"]
        assert details["network"] == {"limit": 10, "used": 10, "reserved": 0}
