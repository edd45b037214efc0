"""scripts/bootstrap on a machine where another apt is running: it waits for the dpkg lock (saying who holds
it) instead of failing, and shows one line per step. apt-get and dpkg-query are stand-ins on PATH that record
their calls, and the lock is a file this test holds, so the machine's own apt is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "w")
fcntl.lockf(f, fcntl.LOCK_EX)  # as dpkg and apt lock: fcntl, not flock
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
print(time.time(), flush=True)
"""


def _tool(path: Path, script: str) -> None:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_bootstrap_waits_for_the_dpkg_lock_and_shows_its_steps(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "apt-get.calls"
    _tool(fake / "dpkg-query", "exit 1\n")  # every Debian package looks missing
    _tool(fake / "apt-get", f'echo "$(date +%s.%N) $*" >> {calls}\n')
    _tool(fake / "sudo", 'exec "$@"\n')
    lock = tmp_path / "lock-frontend"
    lock.touch()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FERMION_APT_LOCKS": f"/nonexistent {lock}"}
        proc = subprocess.run([str(REPO / "scripts/bootstrap")], env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        released = float(holder.stdout.readline())
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"waiting for another package manager to finish: pid {holder.pid}" in out, out
    assert "holds the dpkg lock" in out
    step = next(line for line in out.splitlines() if line.startswith("bootstrap [1/4] Debian packages:"))
    assert "dnsmasq-utils" in step and "udhcpc" in step
    made = [line.split(" ", 1) for line in calls.read_text().splitlines()]
    assert len(made) == 2 and " update" in made[0][1] and " install " in made[1][1], made
    assert all("DPkg::Lock::Timeout=" in args for _, args in made)
    assert float(made[0][0]) >= released  # nothing ran while the other apt held the lock
