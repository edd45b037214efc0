"""conntrackd for one HA router: it keeps a copy of the active instance's connection tracking table, NAT
bindings included, on every standby, so established connections survive a failover. One daemon per router
namespace, in FTFW mode (acknowledged, resent on loss), multicast over the router's HA device; the UDP port
is derived from the VRID, so the routers of one HA network do not hear each other.

On a VRRP transition keepalived's notify script runs `conntrackd.sh STATE` (after the conntrackd
documentation's primary-backup script): a new master flushes its kernel table of what an earlier turn as
master left, commits the copy it holds into the kernel, then shares its own table from then on; a backup
asks the master for its whole table and lets its own leftovers expire.

Files, in the router's keepalived workdir: conntrackd.conf, .sh, .pid, .lock and .log. The control
socket is conntrackd.ctl there too, but conntrackd takes at most 107 bytes for its path, too few under a deep
state directory: the configuration names it /proc/self/cwd/conntrackd.ctl, and the daemon and every client
run in the workdir (the daemon binds the socket before it changes to /). docs/kernel.md has the measured
behaviour."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import netaddr

from fermion.dataplane import DataplaneError, files, netns

MULTICAST_GROUP = "225.0.0.50"  # Neutron's ha_conntrackd_ipv4_mcast_addr
PORT_BASE = 3780  # Neutron's ha_conntrackd_group: a router's UDP port is this plus its VRID
PROTOCOLS = ("TCP", "UDP", "ICMP", "IPv6-ICMP", "SCTP", "DCCP")
HASH_SIZE = 8192  # buckets of each cache
HASH_LIMIT = 131072  # entries in each cache
SOCKET_BUFFER = 1249280  # the multicast socket's send and receive buffers (the documentation's example)
NETLINK_BUFFER = 2097152  # for conntrack events; conntrackd doubles it, up to the maximum, when events drop
NETLINK_BUFFER_MAX = 8388608
CONTROL = "/proc/self/cwd/conntrackd.ctl"  # the workdir's conntrackd.ctl, for a process running in it
COMMAND_TIMEOUT = 2  # seconds each client command of the transition script may take
STOP_TIMEOUT = 5.0
# the transition script's client commands per state, in order
ON_TRANSITION = {
    # -F first: entries an earlier turn as master left would refuse the commit of the same connections
    "master": ("-F", "-c", "-f", "-R", "-B"),
    "backup": ("-t", "-n"),  # -t: our own entries expire soon (PurgeTimeout); -n: the master sends its table
    "fault": ("-t",),
}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DEVICE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]+$")  # conntrackd's parser takes a path as one bare word


@dataclass(frozen=True)
class Config:
    router_id: str
    namespace: str
    ha_device: str  # ha-<port id[:11]>: the sync messages go over it
    ha_address: str  # this instance's IPv4 address on the HA network, as CIDR ("169.254.192.5/18")
    vrid: int


# ------------------------------------------------------------------------------------------- pure parts
def _path(path: Path) -> str:
    text = str(path)
    if not _SAFE_PATH.match(text):
        raise DataplaneError(f"conntrackd cannot take the path {text!r} (relative, spaces or other specials)")
    return text


def _ha(cfg: Config) -> netaddr.IPNetwork:
    try:
        net = netaddr.IPNetwork(cfg.ha_address)
    except (netaddr.AddrFormatError, ValueError) as err:
        raise DataplaneError(f"bad HA address {cfg.ha_address!r}: {err}") from err
    if net.version != 4:
        raise DataplaneError(f"HA address {cfg.ha_address} must be IPv4 (the sync messages' family)")
    return net


def render(cfg: Config, workdir: Path) -> str:
    """conntrackd.conf. The same Config gives the same text; raises DataplaneError on anything conntrackd
    would refuse. Connections to or from the HA network (VRRP, the sync messages) are not shared."""
    if not _NAME.match(cfg.router_id):
        raise DataplaneError(f"bad router id {cfg.router_id!r}")
    if not _DEVICE.match(cfg.ha_device):
        raise DataplaneError(f"bad device name {cfg.ha_device!r}")
    if not 1 <= cfg.vrid <= 255:
        raise DataplaneError(f"virtual_router_id {cfg.vrid} is outside 1-255")
    ha = _ha(cfg)
    return "\n".join([
        f"# Fermion: router {cfg.router_id}. Rewritten by the L3 agent; edits are lost.",
        "General {",
        f"    HashSize {HASH_SIZE}",
        f"    HashLimit {HASH_LIMIT}",
        f"    LogFile {_path(workdir / 'conntrackd.log')}",
        f"    LockFile {_path(workdir / 'conntrackd.lock')}",
        "    UNIX {",
        f"        Path {CONTROL}",
        "    }",
        "    Systemd off",
        f"    NetlinkBufferSize {NETLINK_BUFFER}",
        f"    NetlinkBufferSizeMaxGrowth {NETLINK_BUFFER_MAX}",
        "    Filter From Kernelspace {",
        "        Protocol Accept {",
        *(f"            {p}" for p in PROTOCOLS),
        "        }",
        "        Address Ignore {",
        "            IPv4_address 127.0.0.1",
        "            IPv6_address ::1",
        f"            IPv4_address {ha.cidr}",
        "        }",
        "    }",
        "}",
        "Sync {",
        "    Mode FTFW {",
        "    }",
        "    Multicast {",
        f"        IPv4_address {MULTICAST_GROUP}",
        f"        IPv4_interface {ha.ip}",
        f"        Group {PORT_BASE + cfg.vrid}",
        f"        Interface {cfg.ha_device}",
        f"        SndSocketBuffer {SOCKET_BUFFER}",
        f"        RcvSocketBuffer {SOCKET_BUFFER}",
        "        Checksum on",
        "    }",
        "}",
    ]) + "\n"


def transition_script(workdir: Path) -> str:
    """conntrackd.sh STATE (master, backup or fault): the client commands for the new state, each bounded
    in time, their output in the daemon's log. Always exits 0: the transition is recorded after it."""
    conf = shlex.quote(_path(workdir / "conntrackd.conf"))
    cases = "".join(f"    {state}) for arg in {' '.join(args)}; do ct \"$arg\"; done;;\n"
                    for state, args in ON_TRANSITION.items())
    return ("#!/bin/sh\n"
            "# Fermion: conntrackd on a VRRP transition ($1), run by keepalived's notify script. Rewritten by the"
            " L3 agent.\n"
            f"cd {shlex.quote(_path(workdir))} || exit 0\n"
            f"ct() {{ timeout {COMMAND_TIMEOUT} conntrackd -C {conf} \"$1\" </dev/null >> conntrackd.log 2>&1; }}\n"
            "case $1 in\n"
            f"{cases}"
            "esac\n"
            "exit 0\n")


def command(cfg: Config, workdir: Path) -> list[str]:
    """Daemon mode: conntrackd forks once it is set up, so a zero exit means it runs."""
    return ["ip", "netns", "exec", cfg.namespace, "conntrackd", "-d", "-C", _path(workdir / "conntrackd.conf")]


# ------------------------------------------------------------------------------------------- processes
def _daemon(argv: list[str], conf: str) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == "conntrackd" and "-d" in argv and conf in argv


class Conntrackd:
    """One router's conntrackd, adopted from its pid file: constructing it does nothing."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    @property
    def conf(self) -> Path:
        return self.workdir / "conntrackd.conf"

    @property
    def script(self) -> Path:
        return self.workdir / "conntrackd.sh"

    def pid(self) -> int | None:
        """The daemon's pid when it is alive and ours (a pid file may outlive its process)."""
        try:
            pid = int((self.workdir / "conntrackd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _daemon(netns.cmdline(pid), str(self.conf)) and netns.alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def ensure(self, cfg: Config) -> str:
        """Write the files and make conntrackd run them: started, restarted (its configuration changed, or
        it died) or unchanged. conntrackd cannot reload; a restarted one asks the others for their tables."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = render(cfg, self.workdir)
        files.replace(self.script, transition_script(self.workdir), 0o755)
        changed = files.replace(self.conf, text, 0o644)
        pid = self.pid()
        if pid is not None and not changed:
            return "unchanged"
        action = "started" if pid is None else "restarted"
        self.stop()
        self._start(cfg)
        return action

    def _start(self, cfg: Config) -> None:
        # a lock file left by a killed daemon makes the next one refuse to start
        for name in ("conntrackd.lock", "conntrackd.ctl", "conntrackd.pid"):
            (self.workdir / name).unlink(missing_ok=True)
        try:
            proc = subprocess.run(command(cfg, self.workdir), cwd=self.workdir, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DataplaneError(f"conntrackd for router {cfg.router_id}: {err}") from err
        if proc.returncode != 0:
            raise DataplaneError(f"conntrackd for router {cfg.router_id} did not start: "
                                 + (self._log_tail() or proc.stderr.strip() or str(proc.returncode)))
        pid = self._find()
        if pid is None:
            raise DataplaneError(f"conntrackd for router {cfg.router_id} exited: {self._log_tail()}")
        (self.workdir / "conntrackd.pid").write_text(f"{pid}\n")
        self.client(cfg.namespace, "-n")  # the others' tables now, not at the next transition

    def _find(self) -> int | None:
        conf = str(self.conf)
        for name in os.listdir("/proc"):
            if name.isdigit() and _daemon(netns.cmdline(int(name)), conf) and netns.alive(int(name)):
                return int(name)
        return None

    def _log_tail(self) -> str:
        try:
            lines = (self.workdir / "conntrackd.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def client(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A client command (`-s`, `-e`, `-c`...) against the running daemon."""
        try:
            return subprocess.run(["ip", "netns", "exec", namespace, "conntrackd", "-C", str(self.conf), *args],
                                  cwd=self.workdir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DataplaneError(f"conntrackd {' '.join(args)} in {namespace}: {err}") from err

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            netns.terminate([pid], timeout=STOP_TIMEOUT)
        for name in ("conntrackd.pid", "conntrackd.lock", "conntrackd.ctl"):
            (self.workdir / name).unlink(missing_ok=True)
