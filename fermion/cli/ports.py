"""Before serving: is the listening address free, and if not, which process holds it."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


def taken_by(host: str, port: int) -> str | None:
    """None when a server could listen on host:port; else who listens there already ("pid N (command)")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT does not count
        try:
            s.bind((host, port))
            return None
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                return None  # not a matter of who holds it: the server's own bind reports it
    return listener(port) or "a process this user cannot see"


def listener(port: int) -> str | None:
    """The process listening on a TCP port in this network namespace, from /proc/net/tcp{,6} and the
    processes' open sockets."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is ADDR:PORT in hex; state 0A is LISTEN; field 9 the socket's inode
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in filter(str.isdigit, os.listdir("/proc")) if inodes else ():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return f"pid {pid} ({_cmdline(pid)})"
            except OSError:
                continue
    return None


def _cmdline(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or "?"
