"""Embedded mode: server, in-process transport and agents in this process, on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fermion.db import migrate
from fermion.db.engine import Database
from fermion.lab.state import state_path
from fermion.runtime.embedded import build_app
from fermion.runtime.lab import LabSupervisor
from tests.dataplane.lab import HOSTS, Lab, built_lab, fast_settings, require_root
from tests.support.inproc_server import serve_in_thread

# host kinds a test marked HOST_KINDS runs on: every host a Linux-bridge host, every host an Open vSwitch host,
# or a mixed lab (compute1 and network1 OVS, compute2 Linux bridge: one network spans both kinds)
KINDS = {"linuxbridge": dict.fromkeys(HOSTS, "linuxbridge"), "ovs": dict.fromkeys(HOSTS, "ovs"),
         "mixed": {"compute1": "ovs", "compute2": "linuxbridge", "network1": "ovs"}}
HOST_KINDS = pytest.mark.parametrize("lab", list(KINDS), indirect=True)


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    """compute1, compute2 and network1; Linux-bridge hosts unless the test is parametrized (HOST_KINDS)."""
    with embedded_lab(tmp_path, switches=KINDS[getattr(request, "param", "linuxbridge")]) as lab:
        yield lab


@pytest.fixture
def zoned_lab(tmp_path: Path) -> Iterator[Lab]:
    """compute1, and two network nodes (DHCP and L3 agents) in availability zones az1 and az2."""
    with embedded_lab(tmp_path, hosts=["compute1", "network1", "network2"], network_hosts=("network1", "network2"),
                      zones={"network1": "az1", "network2": "az2"}) as lab:
        yield lab


@contextmanager
def embedded_lab(tmp_path: Path, sections: dict[str, dict[str, Any]] | None = None, **topology: Any) -> Iterator[Lab]:
    """sections replace settings, e.g. {"l3": {"ha": True}}."""
    require_root()
    url = f"sqlite:///{tmp_path / 'fermion.sqlite'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    settings = fast_settings(url)
    for section, values in (sections or {}).items():
        settings = settings.replace(section, **values)
    app = build_app(settings)
    with serve_in_thread(app) as endpoint, built_lab(endpoint, tmp_path, "embedded", **topology) as lab:
        supervisor = LabSupervisor(settings, app.transport, state_path(tmp_path), poll=0.2)
        supervisor.start()
        lab.extra.update(app=app, supervisor=supervisor, settings=settings)
        try:
            lab.wait_agents()
            yield lab
        finally:
            supervisor.stop()
