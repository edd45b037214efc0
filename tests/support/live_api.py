"""A live server for the concurrency tests: one project's admin, its quotas lifted, and plain creates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support import servers

UNLIMITED = {"network": -1, "subnet": -1, "port": -1}


def admin_headers(project: str) -> dict[str, str]:
    return {"X-Project-Id": project, "X-Roles": "admin"}


@contextmanager
def live_endpoint(kind: str, tmp: Path, project: str, quota: dict[str, int] | None = None) -> Iterator[str]:
    """A server on a fresh database of this kind; the project's quotas lifted (or set to `quota`)."""
    with servers.temporary_database(kind, tmp) as url, servers.live_server(url) as ep:
        with httpx.Client(base_url=ep, headers=admin_headers(project), timeout=60) as c:
            assert c.put(f"/v2.0/quotas/{project}", json={"quota": quota or UNLIMITED}).status_code == 200
        yield ep


def create(c: httpx.Client, collection: str, **attrs: Any) -> dict[str, Any]:
    member = collection.replace("-", "_")[:-1]
    r = c.post(f"/v2.0/{collection}", json={member: attrs})
    assert r.status_code == 201, r.text
    return dict(r.json()[member])
