"""The lab's record of the agent processes it started: kept across commands, and never mistaken for a later
process that got the same PID."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fermion.lab.state import AgentProcess, LabHost, LabState
from fermion.runtime.lab import running, start_time, stop_agents


def test_agent_processes_survive_a_save_and_load(tmp_path: Path) -> None:
    state = LabState(prefix="fx", mode="distributed", endpoint="http://127.0.0.1:9696", config="/etc/f.toml",
                     agent_env={"FERMION_RPC_PREFIX": "blue"})
    state.hosts["n1"] = LabHost(name="n1", netns="fx-n1", underlay_ip="198.18.0.11", dhcp=True,
                                agents=[AgentProcess(kind="l2", pid=123, start=456)])
    state.save(tmp_path / "lab.json")
    loaded = LabState.load(tmp_path / "lab.json")
    assert loaded == state
    assert loaded is not None and loaded.hosts["n1"].kinds() == ["l2", "dhcp", "l3"]


def test_the_state_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It keeps the agents' environment, which may name a broker URL with its password."""
    path = tmp_path / "lab.json"
    path.write_text("{}")
    path.chmod(0o644)  # a file from before
    LabState(prefix="fx", mode="distributed", endpoint="", agent_env={
        "FERMION_TRANSPORT_URL": "amqp://fermion:secret@broker//"}).save(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_state_file_from_before_agent_records_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text(json.dumps({"prefix": "fx", "mode": "distributed", "endpoint": "http://x", "hosts": {
        "c1": {"name": "c1", "netns": "fx-c1", "underlay_ip": "198.18.0.11", "dhcp": False, "pids": [77]}}}))
    loaded = LabState.load(path)
    assert loaded is not None and loaded.hosts["c1"].agents == [AgentProcess(kind="", pid=77, start=0)]


def test_a_recorded_process_is_known_by_its_start_time() -> None:
    host = LabHost(name="c1", netns="fx-c1", underlay_ip="198.18.0.11")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = start_time(proc.pid)
        assert started
        assert running(AgentProcess(kind="l2", pid=proc.pid, start=started), host)
        # the same PID with another start time is someone else's process: not ours to stop
        other = AgentProcess(kind="l2", pid=proc.pid, start=started + 1)
        assert not running(other, host)
        stop_agents(host, [other], timeout=0.5)
        assert proc.poll() is None
        # without a start time (an old record) only an agent of this host's namespace counts
        assert not running(AgentProcess(kind="", pid=proc.pid), host)
        stop_agents(host, [AgentProcess(kind="l2", pid=proc.pid, start=started)], timeout=5)
        assert proc.wait(5) is not None
    finally:
        proc.kill()
        proc.wait()


def test_a_failed_host_stays_failed_across_commands(tmp_path: Path) -> None:
    """`fermion lab fail` marks it; the supervisor and `heal` read the mark from the file."""
    state = LabState(prefix="fx", mode="embedded", endpoint="http://127.0.0.1:9696")
    state.hosts["network1"] = LabHost(name="network1", netns="fx-network1", underlay_ip="198.18.0.13", dhcp=True,
                                      failed=True)
    state.save(tmp_path / "lab.json")
    loaded = LabState.load(tmp_path / "lab.json")
    assert loaded is not None and loaded.hosts["network1"].failed
