"""Test infrastructure: databases (SQLite files, throw-away PostgreSQL/MariaDB databases) and servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PG_ADMIN_URL = os.environ.get("FERMION_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("FERMION_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/mysql")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    return _reachable("127.0.0.1", 5432)


def mysql_available() -> bool:
    return _reachable("127.0.0.1", 3306)


def rabbitmq_available(host: str = "127.0.0.1", port: int = 5672) -> bool:
    return _reachable(host, port)


@contextmanager
def temporary_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a URL of an empty database of the given kind; drop it afterwards."""
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'fermion-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    name = f"fermion_test_{uuid.uuid4().hex[:12]}"
    admin_url = PG_ADMIN_URL if kind == "postgres" else MYSQL_ADMIN_URL
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with engine.connect() as conn:
            if kind == "postgres":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fermion_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fermion.cli.main", *args]


def wait_until_up(endpoint: str, proc: subprocess.Popen[bytes] | subprocess.Popen[str],
                  timeout: float = 30) -> bool:
    """Poll GET / until it answers 200; False if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(endpoint + "/", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@contextmanager
def live_server(database_url: str, extra_env: dict[str, str] | None = None,
                workers: int = 1, args: tuple[str, ...] = (), log: Path | None = None) -> Iterator[str]:
    """Migrate the database, start `fermion serve` on a free port and yield its endpoint. The server's
    output goes to a file (`log`, else a temporary one): it logs every request, and a pipe nobody reads
    would fill up and stop it."""
    env = {**os.environ, **(extra_env or {})}
    subprocess.run(fermion_cmd("db", "upgrade", "--database", database_url), check=True, env=env,
                   capture_output=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fermion-serve-") as tmp:
        log = log or Path(tmp) / "server.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(fermion_cmd("serve", "--host", "127.0.0.1", "--port", str(port), "--database",
                                                database_url, "--workers", str(workers), *args),
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            if not wait_until_up(endpoint, proc):
                raise RuntimeError(f"fermion serve did not start: {log.read_text(errors='replace')[-4000:]}")
            yield endpoint
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a server this test started: SIGTERM, then SIGKILL if it has not exited after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
