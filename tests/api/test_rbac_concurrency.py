"""RBAC policies under concurrent clients, on every database: duplicates are refused by the unique key."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import servers

ADMIN = {"X-Project-Id": "owner", "X-Roles": "admin"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path):
    with servers.temporary_database(request.param, tmp_path) as url, servers.live_server(url) as ep:
        yield ep


def test_concurrent_identical_policies_make_one(endpoint: str) -> None:
    with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=60) as c:
        assert c.put("/v2.0/quotas/owner", json={"quota": {"rbac_policy": -1}}).status_code == 200
        net = c.post("/v2.0/networks", json={"network": {"name": "shared-race"}}).json()["network"]
    body = {"rbac_policy": {"object_type": "network", "object_id": net["id"], "action": "access_as_shared",
                            "target_tenant": "bob"}}

    def worker(_: int) -> list[httpx.Response]:
        with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=120) as c:
            return [c.post("/v2.0/rbac-policies", json=body) for _ in range(3)]

    with ThreadPoolExecutor(8) as pool:
        responses = [r for batch in pool.map(worker, range(8)) for r in batch]
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 23}, statuses
    assert {r.json()["NeutronError"]["type"] for r in responses if r.status_code == 409} == {"DuplicateRbacPolicy"}
    with httpx.Client(base_url=endpoint, headers=ADMIN, timeout=60) as c:
        listed = c.get("/v2.0/rbac-policies", params={"object_id": net["id"]}).json()["rbac_policies"]
        assert len(listed) == 1
        used = c.get("/v2.0/quotas/owner/details").json()["quota"]["rbac_policy"]["used"]
        assert used == 1
        bob = {"X-Project-Id": "bob", "X-Roles": "member"}
        assert c.get(f"/v2.0/networks/{net['id']}", headers=bob).json()["network"]["shared"] is True
