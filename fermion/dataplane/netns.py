"""Network namespaces. Created from the root mount namespace with `ip netns add` (never from inside
`ip netns exec`: the bind mount would land in a private mount namespace, docs/kernel.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence

from fermion.dataplane import DataplaneError

RUN = "/run/netns"


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(RUN, name))


def names(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(RUN) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def run(argv: Sequence[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise DataplaneError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def create(name: str) -> None:
    if not exists(name):
        run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])


def pids(name: str) -> list[int]:
    proc = run(["ip", "netns", "pids", name], check=False)
    return [int(x) for x in proc.stdout.split()] if proc.returncode == 0 else []


def delete(name: str, kill_timeout: float = 5.0) -> None:
    """Stop what runs in the namespace (it would outlive it), then delete it."""
    if not exists(name):
        return
    terminate(pids(name), kill_timeout)
    run(["ip", "netns", "del", name], check=False)


def terminate(victims: list[int], timeout: float = 5.0) -> None:
    """SIGTERM, wait up to timeout for them to end, then SIGKILL what is left."""
    for pid in victims:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while victims and time.monotonic() < deadline:
        victims = [pid for pid in victims if alive(pid)]
        time.sleep(0.02)
    for pid in victims:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cmdline(pid: int) -> list[str]:
    """A process's arguments ([] when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
