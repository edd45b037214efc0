"""conntrackd for an HA router: its configuration, and the script keepalived's notify script runs on each
transition (run here with a stand-in conntrackd that records its commands)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fermion.dataplane import DataplaneError
from fermion.dataplane import conntrackd as ct
from fermion.dataplane import keepalived as ka

WORK = Path("/var/lib/fermion/ha/r1")


def _cfg(**changes: object) -> ct.Config:
    base = dict(router_id="r1", namespace="qrouter-r1", ha_device="ha-0123456789a", ha_address="169.254.192.5/18",
                vrid=7)
    base.update(changes)
    return ct.Config(**base)  # type: ignore[arg-type]


def _section(text: str, head: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == head + " {")
    depth, body = 0, []
    for line in lines[start + 1:]:
        if line.strip() == "}" and depth == 0:
            return body
        depth += line.strip().endswith("{") - (line.strip() == "}")
        body.append(line.strip())
    raise AssertionError(f"{head} is not closed")


def test_ftfw_over_the_ha_device_on_a_port_of_the_routers_own() -> None:
    text = ct.render(_cfg(), WORK)
    assert _section(text, "Mode FTFW") == []
    assert _section(text, "Multicast") == [
        "IPv4_address 225.0.0.50", "IPv4_interface 169.254.192.5", "Group 3787", "Interface ha-0123456789a",
        "SndSocketBuffer 1249280", "RcvSocketBuffer 1249280", "Checksum on"]
    # another router on the same HA network: another port
    assert "Group 3788" in ct.render(_cfg(vrid=8), WORK)


def test_connections_of_every_protocol_are_shared_but_not_the_ha_networks_own() -> None:
    text = ct.render(_cfg(), WORK)
    assert _section(text, "Protocol Accept") == ["TCP", "UDP", "ICMP", "IPv6-ICMP", "SCTP", "DCCP"]
    assert _section(text, "Address Ignore") == ["IPv4_address 127.0.0.1", "IPv6_address ::1",
                                                "IPv4_address 169.254.192.0/18"]


def test_the_files_are_in_the_workdir_and_the_socket_path_stays_short() -> None:
    deep = Path("/var/lib/fermion/" + "d" * 120 + "/r1")
    general = _section(ct.render(_cfg(), deep), "General")
    assert f"LogFile {deep}/conntrackd.log" in general and f"LockFile {deep}/conntrackd.lock" in general
    assert _section(ct.render(_cfg(), deep), "UNIX") == ["Path /proc/self/cwd/conntrackd.ctl"]
    assert "Systemd off" in general


@pytest.mark.parametrize("changes", [
    {"vrid": 0}, {"vrid": 256}, {"ha_device": "ha x"}, {"ha_device": "ha-0123456789abcdef"},
    {"ha_address": "fe80::5/64"}, {"ha_address": "nonsense"}, {"router_id": "r 1"},
])
def test_what_conntrackd_would_refuse_is_refused_before(changes: dict[str, object]) -> None:
    with pytest.raises(DataplaneError):
        ct.render(_cfg(**changes), WORK)


def test_paths_conntrackd_would_misread_are_refused() -> None:
    with pytest.raises(DataplaneError, match="path"):
        ct.render(_cfg(), Path("/var/lib/my state/r1"))


RECORDER = """#!/bin/sh
echo "$*" >> "$RECORD"
"""


def _stand_in(tmp_path: Path) -> dict[str, str]:
    """A conntrackd on PATH that appends its arguments to a file: what the script asks of the daemon."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "conntrackd").write_text(RECORDER)
    (bin_dir / "conntrackd").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(tmp_path / "record")}


@pytest.mark.parametrize(("state", "asked"), [
    ("master", ["-F", "-c", "-f", "-R", "-B"]),  # flush what an earlier turn left, commit the copy, share ours
    ("backup", ["-t", "-n"]),  # let our own entries expire, ask the master for its table
    ("fault", ["-t"]),
])
def test_each_transition_asks_the_daemon_for_its_part_in_order(tmp_path: Path, state: str,
                                                               asked: list[str]) -> None:
    (tmp_path / "conntrackd.sh").write_text(ct.transition_script(tmp_path))
    (tmp_path / "conntrackd.sh").chmod(0o755)
    subprocess.run([str(tmp_path / "conntrackd.sh"), state], env=_stand_in(tmp_path), check=True, timeout=30)
    conf = tmp_path / "conntrackd.conf"
    assert (tmp_path / "record").read_text().splitlines() == [f"-C {conf} {arg}" for arg in asked]


def test_the_transition_script_never_fails_the_transition(tmp_path: Path) -> None:
    """No daemon answering (conntrackd missing from PATH here) must not stop keepalived's notify script."""
    (tmp_path / "conntrackd.sh").write_text(ct.transition_script(tmp_path))
    (tmp_path / "conntrackd.sh").chmod(0o755)
    proc = subprocess.run([str(tmp_path / "conntrackd.sh"), "master"], env={"PATH": "/nonexistent"},
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0


def test_keepalived_runs_the_hook_on_every_transition_before_recording_it(tmp_path: Path) -> None:
    """The hook sees the state; it cannot read the fifo (here: a hook that reads everything on its input
    would swallow the later transitions)."""
    hook = tmp_path / "hook.sh"
    hook.write_text('#!/bin/sh\ncat > /dev/null\necho "$1 $(cat state 2>/dev/null || echo none)" >> hooked\n')
    hook.chmod(0o755)
    script = tmp_path / "notify.sh"
    script.write_text(ka.notify_script("r1", tmp_path, None, on_transition=hook))
    script.chmod(0o755)
    (tmp_path / "lines").write_text('INSTANCE "VR_7" BACKUP 50\nINSTANCE "VR_7" MASTER 50\nINSTANCE "VR_7" FAULT 50\n')
    subprocess.run([str(script), str(tmp_path / "lines")], cwd=tmp_path, check=True, timeout=30)
    # each run of the hook saw the state recorded before it: it ran first
    assert (tmp_path / "hooked").read_text().splitlines() == ["backup none", "master backup", "fault master"]
    assert [t.state for t in ka.parse_transitions((tmp_path / "transitions").read_text())] == \
        ["backup", "master", "fault"]

