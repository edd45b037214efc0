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


class Cli:
    """Runs `openstack ...` as a subprocess and records how long each call took."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.calls: list[tuple[str, float]] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = subprocess.run([OPENSTACK, *args], env=self.env, capture_output=True, text=True, timeout=120)
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
