"""Races a user could hit, run against a live server over each database (the concurrency tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import servers


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql", marks=pytest.mark.mysql)])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A live server on a fresh database of each kind (import it into a test module to use it)."""
    with servers.temporary_database(request.param, tmp_path) as url, servers.live_server(url) as ep:
        yield ep


def in_parallel(endpoint: str, headers: dict[str, str], n: int,
                call: Callable[[httpx.Client, int], httpx.Response]) -> list[httpx.Response]:
    """call(client, i) for i in range(n), each on a client of its own, all at once."""
    def worker(i: int) -> httpx.Response:
        with httpx.Client(base_url=endpoint, headers=headers, timeout=120) as c:
            return call(c, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(worker, range(n)))
