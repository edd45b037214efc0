"""A lab for data-plane tests: emulated hosts in namespaces with a unique prefix, agents, instances; all
removed afterwards, even on failure. Embedded mode runs the server and agents in this process."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fermion.config import settings as cfg
from fermion.dataplane import netns
from fermion.lab import instances, topology
from fermion.lab.instances import Api
from fermion.lab.state import LabInstance, LabState, state_path

HOSTS = ["compute1", "compute2", "network1"]
TOOLS = ("ip", "bridge", "dnsmasq", "udhcpc", "ping", "arping")


def require_root(tools: tuple[str, ...] = TOOLS, what: str = "data-plane tests") -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} need root (network namespaces)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{what}: tools missing: {', '.join(missing)} (scripts/bootstrap installs them)")


def fast_settings(url: str) -> cfg.Settings:
    return (cfg.Settings().replace("database", url=url)
            .replace("agents", report_interval=1.0, agent_down_time=6.0, resync_interval=3.0))


@dataclass
class Lab:
    api: Api
    state: LabState
    state_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def network(self, name: str, cidr: str, **attrs: Any) -> dict[str, Any]:
        net = self.api._ok(self.api.http.post("/v2.0/networks", json={"network": {"name": name, **attrs}}))
        self.api._ok(self.api.http.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["network"]["id"], "cidr": cidr, "ip_version": 4}}))
        return net["network"]  # type: ignore[no-any-return]

    def boot(self, network: str, host: str, name: str, **options: Any) -> LabInstance:
        return instances.boot(self.state, self.api, self.state_dir, network, host, name, dhcp_timeout=20,
                              **options)

    def ping(self, src: str, dst: str, count: int = 2) -> bool:
        return instances.ping(self.state, src, dst, count).returncode == 0

    def host_ns(self, host: str) -> str:
        return self.state.hosts[host].netns

    def wait(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def links(self, host: str) -> str:
        return netns.run(["ip", "-n", self.host_ns(host), "-d", "link", "show"]).stdout

    def wait_agents(self, timeout: float = 30, since: datetime | None = None) -> None:
        """Every agent alive; with `since` (UTC), it has also reported at or after that time: a heartbeat
        from before a server restart still counts as alive for agent_down_time."""
        types = {"l2": "Linux bridge agent", "ovs": "Open vSwitch agent", "dhcp": "DHCP agent", "l3": "L3 agent"}
        wanted = {(h.name, types[kind]) for h in self.state.hosts.values() for kind in h.kinds()}
        floor = "" if since is None else since.strftime("%Y-%m-%d %H:%M:%S")

        def reported() -> set[tuple[str, str]]:
            return {(a["host"], a["agent_type"]) for a in self.api.agents()
                    if a["alive"] and a["heartbeat_timestamp"] >= floor}

        self.wait(lambda: wanted <= reported(), timeout, "agents to report")


# udhcpc runs this with the received options in its environment; it changes nothing, it prints them
PRINT_ENV = """#!/bin/sh
[ "$1" = bound ] && env | sort
exit 0
"""


def dhcp_env(lab: Lab, vm: str, *options: str) -> dict[str, str]:
    """What the instance's DHCP client receives (udhcpc's environment: ip, serverid, router...), asking for
    the named options."""
    script = lab.state_dir / "print-env.sh"
    script.write_text(PRINT_ENV)
    script.chmod(0o755)
    asked = [arg for name in options for arg in ("-O", name)]
    proc = subprocess.run(["ip", "netns", "exec", lab.state.instances[vm].netns, "udhcpc", "-i", "eth0", "-n", "-q",
                           "-f", "-t", "5", "-T", "1", "-A", "1", "-s", str(script), *asked],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


@contextmanager
def built_lab(endpoint: str, state_dir: Path, mode: str, hosts: list[str] | None = None,
              network_hosts: tuple[str, ...] = ("network1",), zones: dict[str, str] | None = None,
              physnets: dict[str, str] | None = None, dvr: bool = False,
              switches: dict[str, str] | None = None) -> Iterator[Lab]:
    """Hosts on an underlay, their state file; the caller starts agents. Everything is removed at exit.
    switches: host -> "ovs" for Open vSwitch hosts."""
    prefix = "ft" + uuid.uuid4().hex[:6]
    state = LabState(prefix=prefix, mode=mode, endpoint=endpoint)
    try:
        topology.build(state, hosts or HOSTS, list(network_hosts), zones, physnets, dvr=dvr, switches=switches,
                       state_dir=state_dir)
        topology.build_external(state)
        state.save(state_path(state_dir))
        yield Lab(api=Api(endpoint), state=state, state_dir=state_dir)
    finally:
        topology.destroy(state, state_dir)
        leftovers = netns.names(prefix)
        assert not leftovers, f"namespaces left behind: {leftovers}"


def ping_loss(lab: Lab, src: str, dst: str, seconds: float) -> subprocess.Popen[str]:
    """Start a fast continuous ping; read .communicate() for its summary."""
    target = lab.state.instances[dst].ip
    assert target
    count = int(seconds / 0.02)
    return subprocess.Popen(["ip", "netns", "exec", lab.state.instances[src].netns, "ping", "-i", "0.02", "-c",
                             str(count), "-W", "1", target], stdout=subprocess.PIPE, text=True)


def pinger(ns: str, target: str) -> subprocess.Popen[str]:
    """A continuous ping (every 50 ms) with a timestamp per reply; stop it with reply_times()."""
    return subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-D", "-n", "-i", "0.05", target],
                            stdout=subprocess.PIPE, text=True)


REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from", re.M)


def reply_times(proc: subprocess.Popen[str]) -> list[float]:
    """Stop a pinger; the times (epoch seconds) of the replies it got."""
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return [float(m.group(1)) for m in REPLY.finditer(out)]


class Pinger:
    """pinger() whose reply times (epoch seconds) are collected as they come, for waiting on them."""

    def __init__(self, ns: str, target: str) -> None:
        self.replies: list[float] = []
        self.proc = pinger(ns, target)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = REPLY.match(line)
            if found:
                self.replies.append(float(found.group(1)))

    def answered_after(self, at: float) -> bool:
        return any(t > at for t in self.replies)

    def wait(self, after: float, timeout: float = 15.0) -> float:
        """The first reply later than after (RuntimeError when none comes within timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [t for t in self.replies if t > after]
            if later:
                return later[0]
            time.sleep(0.01)
        raise RuntimeError(f"no ping reply within {timeout} s")

    def stop(self) -> list[float]:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        return self.replies


def lost_during(lab: Lab, src: str, dst: str, action: Any, settle: float = 1.0) -> tuple[int, list[int]]:
    """Ping every 20 ms from src to dst while action() runs (and settle seconds around it). Returns how many
    echo requests went out and the sequence numbers that got no reply, not counting the last one, which may
    still have been on its way when the ping was stopped."""
    target = lab.state.instances[dst].ip
    assert target
    return lost_while(lab.state.instances[src].netns, target, action, settle)


def lost_while(ns: str, target: str, action: Any, settle: float = 1.0) -> tuple[int, list[int]]:
    """lost_during from any namespace to any address."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-i", "0.02", "-W", "1", target],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(settle)
        action()
        time.sleep(settle)
        assert proc.poll() is None, "the ping ended early"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    sent, _ = loss_of(out)
    replied = {int(m) for m in re.findall(r"icmp_seq=(\d+) ", out)}
    return sent, [seq for seq in range(1, sent) if seq not in replied]


def loss_of(output: str) -> tuple[int, int]:
    for line in output.splitlines():
        if "packets transmitted" in line:
            parts = line.split(",")
            return int(parts[0].split()[0]), int(parts[1].split()[0])
    raise AssertionError(f"no ping summary in {output!r}")


LISTENER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print('ready', flush=True)
while True:
    c, peer = s.accept()
    print(peer[0], flush=True)
    c.sendall(b'hello')
    c.close()
"""

CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(c.recv(16).decode() if sys.argv[4] == 'read' else 'hello')
except OSError as err:
    print('failed', err)
    sys.exit(1)
"""


@contextmanager
def tcp_listener(ns: str, port: int, bind: str = "0.0.0.0") -> Iterator[subprocess.Popen[str]]:
    """A TCP server in a namespace that prints each peer's address (read with peers())."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, bind, str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def capture(ns: str, *expression: str, device: str = "eth0", link: bool = False) -> Iterator[list[str]]:
    """tcpdump on a device in ns while the block runs (link: with link-level headers); the list receives
    the captured lines afterwards."""
    lines: list[str] = []
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-n", *(["-e"] if link else []), "-l", "-i",
                             device, *expression], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        banner = ""
        while "listening on" not in banner and proc.poll() is None:
            banner = proc.stderr.readline()
        assert "listening on" in banner, banner
        yield lines
        time.sleep(0.3)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
        lines.extend(out.splitlines())


def next_peer(proc: subprocess.Popen[str], timeout: float = 5.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no connection reached the listener"
    return proc.stdout.readline().strip()


def tcp_connects(ns: str, ip: str, port: int, timeout: float = 2.0, read: bool = True) -> bool:
    """A connection is accepted (read: and the listener's greeting arrives)."""
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CONNECT, ip, str(port), str(timeout),
                           "read" if read else "connect"],
                          capture_output=True, text=True, timeout=timeout + 10, check=False)
    return proc.returncode == 0 and "hello" in proc.stdout


def ping_ns(ns: str, target: str, count: int = 2, wait: float = 1.0) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-i", "0.2", "-W", str(wait),
                           target], capture_output=True, timeout=count * wait + 10, check=False).returncode == 0


TICKER = """
import socket, sys, threading, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(16)
print('ready', flush=True)
def serve(c):
    lock = threading.Lock()
    pad = b'.' * int(sys.argv[3])
    def tick():
        n = 0
        while True:
            n += 1
            with lock:
                c.sendall(b'tick %d %s\\n' % (n, pad))
            time.sleep(float(sys.argv[2]))
    def echo():
        for line in c.makefile('r'):
            if line.strip() == 'stream':
                threading.Thread(target=quietly, args=(tick,), daemon=True).start()
            else:
                with lock:
                    c.sendall(line.encode())
    quietly(echo)
def quietly(work):
    try:
        work()
    except OSError:  # the connection broke: the client sees it
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

SESSION = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[5]),
                                 source_address=('0.0.0.0', int(sys.argv[4])))
except OSError as err:
    print('refused', err, flush=True)
    sys.exit(0)
c.settimeout(float(sys.argv[3]))
f = c.makefile('rw')
print('connected', flush=True)
for line in sys.stdin:
    try:
        f.write(line)
        f.flush()
        print(f.readline().strip() or 'closed', flush=True)
    except OSError as err:
        print('error', err, flush=True)
"""


@contextmanager
def serving(ns: str, script: str, *args: str) -> Iterator[None]:
    """A Python server script run in a namespace, once it has printed `ready`; killed afterwards."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


def echo_server(ns: str, port: int) -> AbstractContextManager[None]:
    """A TCP server that echoes each line (ticker_server, never asked to stream)."""
    return serving(ns, TICKER, str(port), "1", "0")


class Session:
    """One long-lived TCP connection from a namespace: say() sends a line and returns the echo."""

    def __init__(self, ns: str, ip: str, port: int, wait: float = 3.0, source_port: int = 0,
                 must_connect: bool = True, connect_timeout: float = 5.0) -> None:
        """wait: how long a line waits for its echo before say() answers with an error; source_port: the
        connection's own port (0: any)."""
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SESSION, ip, str(port),
                                      str(wait), str(source_port), str(connect_timeout)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.connected = self._line(connect_timeout + 5) == "connected"
        assert self.connected or not must_connect, "the connection was not accepted"

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if ready else "timeout"

    def say(self, text: str, timeout: float = 5.0) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


STREAM = """
import socket, sys, threading, time
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
except OSError as err:
    print('refused', err, flush=True)
    sys.exit(0)
c.settimeout(None)
print('connected', flush=True)
def read():
    try:
        for line in c.makefile('r'):
            print('%.6f %s' % (time.time(), line.strip()[:40]), flush=True)
        print('%.6f closed' % time.time(), flush=True)
    except OSError as err:
        print('%.6f error %s' % (time.time(), err), flush=True)
threading.Thread(target=read, daemon=True).start()
try:
    c.sendall(b'stream\\n')
    for line in sys.stdin:
        c.sendall(line.encode())
except OSError as err:
    print('%.6f error %s' % (time.time(), err), flush=True)
"""


def ticker_server(ns: str, port: int, interval: float = 0.05, padding: int = 0) -> AbstractContextManager[None]:
    """A TCP server that echoes each line and, once a connection says `stream`, sends it `tick N` (and
    padding bytes) every interval seconds: the server's side of a connection speaks without being asked."""
    return serving(ns, TICKER, str(port), str(interval), str(padding))


class Stream:
    """One long-lived TCP connection to a ticker_server: the server's ticks and echoes arrive as they
    come, each with its arrival time (epoch seconds); say() sends a line."""

    def __init__(self, ns: str, ip: str, port: int) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", STREAM, ip, str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        assert first == "connected", f"the connection was not accepted: {first}"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at, _, text = line.strip().partition(" ")
            self.lines.append((float(at), text))

    def ticks(self, after: float = 0.0) -> list[float]:
        """Arrival times of the ticks that came after `after`."""
        return [at for at, text in list(self.lines) if text.startswith("tick ") and at > after]

    def ended(self) -> str | None:
        """How the connection ended (closed, or the error), None while it is open."""
        return next((text for _, text in list(self.lines) if text == "closed" or text.startswith("error")), None)

    def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def heard(self, text: str) -> bool:
        return any(line == text for _, line in list(self.lines))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)


def on_ovs(lab: Lab, host: str) -> bool:
    """Whether the lab host is an Open vSwitch host (else a Linux-bridge host)."""
    return lab.state.hosts[host].switch == "ovs"


def ovs_flows(lab: Lab, host: str, bridge: str) -> str:
    from fermion.dataplane import ovs

    return ovs.Client(ovs.rundir(lab.state_dir, host)).ofctl("dump-flows", bridge)


def plugged(lab: Lab, host: str, device: str) -> bool:
    """Whether the host has the device on its switch: a port of br-int (OVS) or of a Linux bridge."""
    if on_ovs(lab, host):
        from fermion.dataplane import ovs

        return device in ovs.Client(ovs.rundir(lab.state_dir, host)).vsctl("list-ports", "br-int").split()
    return re.search(rf"{device}@\S+ .*master", lab.links(host)) is not None
