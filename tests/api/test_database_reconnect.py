"""The server outlives its database connections: after every pooled connection to PostgreSQL (or MariaDB)
is cut, the next reads and writes succeed on new connections, and a write is never applied twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support import servers
from tests.support.tcpproxy import TcpProxy

ADMIN = {"X-Project-Id": "reconnect", "X-Roles": "admin"}


@pytest.mark.parametrize("kind", [pytest.param("postgres", marks=pytest.mark.postgres),
                                  pytest.param("mysql", marks=pytest.mark.mysql)])
def test_requests_after_the_connections_are_cut(kind: str, tmp_path: Path) -> None:
    with servers.temporary_database(kind, tmp_path) as url:
        real = make_url(url)
        proxy = TcpProxy(real.host or "127.0.0.1", real.port or (5432 if kind == "postgres" else 3306))
        through = real.set(host="127.0.0.1", port=proxy.start()).render_as_string(hide_password=False)
        try:
            with servers.live_server(through) as endpoint, \
                    httpx.Client(base_url=endpoint, headers=ADMIN, timeout=60) as c:
                # several clients at once fill the pool with connections that will all go stale
                for i in range(4):
                    assert c.post("/v2.0/networks", json={"network": {"name": f"before-{i}"}}).status_code == 201
                proxy.cut()
                proxy.restore()
                listed = c.get("/v2.0/networks")
                assert listed.status_code == 200, listed.text
                assert sorted(n["name"] for n in listed.json()["networks"]) == [f"before-{i}" for i in range(4)]
                proxy.cut()
                proxy.restore()
                made = c.post("/v2.0/networks", json={"network": {"name": "after"}})
                assert made.status_code == 201, made.text
                names = [n["name"] for n in c.get("/v2.0/networks").json()["networks"]]
                assert names.count("after") == 1
        finally:
            proxy.stop()


@pytest.mark.postgres
def test_a_connection_idle_past_the_limit_is_checked_before_use(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import text

    from fermion.db import engine

    with servers.temporary_database("postgres", tmp_path) as url:
        real = make_url(url)
        proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        db = engine.Database(real.set(host="127.0.0.1", port=proxy.start()).render_as_string(hide_password=False))
        try:
            with db.read() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
            proxy.cut()
            proxy.restore()
            monkeypatch.setattr(engine, "IDLE_PING_SECONDS", 0.0)
            # no retry here: the pooled connection is found dead at checkout and replaced
            with db.read() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        finally:
            db.dispose()
            proxy.stop()
