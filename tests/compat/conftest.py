"""A live `fermion serve` (SQLite in a temp dir) shared by the client-compatibility tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import servers

OPENSTACK = str(Path(sys.executable).parent / "openstack")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("compat-db")
    with servers.temporary_database("sqlite", tmp) as url, servers.live_server(url) as ep:
        yield ep


def client_env(**extra: str) -> dict[str, str]:
    """The process environment without any OS_* settings of the person running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(extra)
    return env


@pytest.fixture
def os_env(endpoint: str) -> dict[str, str]:
    """Environment the README promises: noauth plus a network endpoint override."""
    return client_env(OS_AUTH_TYPE="none", OS_NETWORK_ENDPOINT_OVERRIDE=endpoint)


class Worker:
    """One `python -m tests.support.osc_worker` process: the `openstack` client's entry point, imported once."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.osc_worker"], env=env, cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(list(args)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the openstack client worker exited ({self.proc.wait()}) on {args}")
        answer = json.loads(line)
        return subprocess.CompletedProcess([OPENSTACK, *args], answer["returncode"], answer["stdout"],
                                           answer["stderr"])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


WORKERS: dict[frozenset[tuple[str, str]], Worker] = {}


@pytest.fixture(scope="session", autouse=True)
def _close_workers() -> Iterator[None]:
    yield
    for worker in WORKERS.values():
        worker.close()
    WORKERS.clear()


class Cli:
    """Runs `openstack ...` and records how long each call took. The calls go to a worker per environment that
    runs the client's own entry point (tests.support.osc_worker), as the `openstack` script does, without a
    second of start-up per call; `script=True` runs the `openstack` script itself."""

    def __init__(self, env: dict[str, str], script: bool = False) -> None:
        self.env = env
        self.script = script
        self.calls: list[tuple[str, float]] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        if self.script:
            proc = subprocess.run([OPENSTACK, *args], env=self.env, capture_output=True, text=True, timeout=120)
        else:
            key = frozenset(self.env.items())
            if key not in WORKERS:
                WORKERS[key] = Worker(self.env)
            proc = WORKERS[key].run(args)
        self.calls.append((" ".join(args), time.monotonic() - start))
        if check and proc.returncode != 0:
            raise AssertionError(f"openstack {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)


@pytest.fixture
def cli(os_env: dict[str, str]) -> Cli:
    return Cli(os_env)
