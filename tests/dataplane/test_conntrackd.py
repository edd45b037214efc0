"""One HA router's conntrackd on the real kernel: started in a namespace from the configuration Fermion
renders, adopted by a new view of it (an agent restart), restarted on a change, stopped by pid. The
namespace carries a unique prefix and is removed afterwards, even on failure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fermion.dataplane import conntrackd as ct
from fermion.dataplane import netns
from tests.dataplane.lab import require_root

HA = "ha-0123456789a"


@pytest.fixture
def namespace() -> Iterator[str]:
    require_root(("ip", "conntrackd"), "conntrackd tests")
    ns = "ct" + uuid.uuid4().hex[:6] + "-r1"
    netns.create(ns)
    try:
        netns.run(["ip", "-n", ns, "link", "add", HA, "type", "veth", "peer", "name", "p"])
        netns.run(["ip", "-n", ns, "link", "set", HA, "up"])
        netns.run(["ip", "-n", ns, "addr", "add", "169.254.192.5/18", "dev", HA])
        yield ns
    finally:
        netns.delete(ns)
    assert not netns.exists(ns)


def config(ns: str, vrid: int = 7) -> ct.Config:
    return ct.Config(router_id="r1", namespace=ns, ha_device=HA, ha_address="169.254.192.5/18", vrid=vrid)


def test_conntrackd_runs_what_is_rendered_and_is_adopted_restarted_and_stopped(namespace: str,
                                                                                tmp_path: Path) -> None:
    workdir = tmp_path / ("deep-" * 20) / "8f0c5b1e-2d7a-4c55-9a57-3d1f4b6a9c01"  # past a socket path's limit
    sync = ct.Conntrackd(workdir)
    try:
        assert sync.ensure(config(namespace)) == "started"
        assert sync.running()
        assert (workdir / "conntrackd.ctl").is_socket()
        stats = sync.client(namespace, "-s")
        assert stats.returncode == 0 and "cache internal" in stats.stdout, stats.stderr  # it answers
        assert sync.ensure(config(namespace)) == "unchanged"
        pid = sync.pid()
        assert ct.Conntrackd(workdir).pid() == pid  # a new view adopts the running daemon
        assert sync.ensure(config(namespace, vrid=8)) == "restarted"
        assert sync.pid() not in (None, pid)
    finally:
        sync.stop()
    assert not sync.running()
    assert not (workdir / "conntrackd.lock").exists()  # the next start is not refused
