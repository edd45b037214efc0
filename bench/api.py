#!/usr/bin/env python
"""API benchmark for Fermion: drives a real `fermion serve` over HTTP and prints a table.

Not part of the test suite. For every backend in --db it creates a throw-away database, migrates
it, starts the server and measures:

  * server start (spawn) to first answer on GET /
  * network / subnet / port creates with C concurrent keep-alive clients (ops/s, p50/p99)
  * port show latency
  * list all ports, list filtered by network_id and by device_id at --ports-small and --ports-large
    ports in total (the database is filled with untimed bulk creates of 100)
  * the server's RSS at the end (sum over the process tree when --workers > 1)
  * bulk race: C clients each posting {"ports": [100 ports]} to one network with a /16 subnet (ports/s,
    failed requests, duplicate addresses, server CPU per port)
  * keep-alive: how many TCP connections the clients used, and how many the server saw
  * rbac (--only rbac): lists of --rbac-objects networks and ports that a project sees through RBAC
    policies, against the same lists unfiltered (admin) and by owner
  * network IP availability (admin) at --ports-large ports: the list of every network and one network's
    show (one grouped SQL query either way)

    .venv/bin/python bench/api.py                      # sqlite and postgres, defaults
    .venv/bin/python bench/api.py --quick --db sqlite  # smoke run
    .venv/bin/python bench/api.py --only bulk-race --db sqlite,postgres,mysql
    .venv/bin/python bench/api.py --only rbac --db sqlite,postgres
    .venv/bin/python bench/api.py --only ip-availability --db sqlite,postgres,mysql

Everything is bounded: every request has a timeout, every phase a finite amount of work, and the run
stops itself after --max-seconds. Only the server process this script started is signalled.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("FERMION_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("FERMION_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
PROJECT = "fermion-default"
MIB = 1024 * 1024

# metric key -> (label, target text, check(value) -> bool | None)
TARGETS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "start_ms": ("<= 1000 ms", lambda v: v <= 1000),
    "net_ops": (">= 500/s", lambda v: v >= 500),
    "port_ops": (">= 400/s", lambda v: v >= 400),
    "show_p50": ("<= 3 ms", lambda v: v <= 3),
    "show_p99": ("<= 3 ms", lambda v: v <= 3),
    "list_large_p50": ("<= 300 ms", lambda v: v <= 300),
    "list_large_p99": ("<= 300 ms", lambda v: v <= 300),
    "dev_large_p50": ("<= 10 ms", lambda v: v <= 10),
    "dev_large_p99": ("<= 10 ms", lambda v: v <= 10),
    "rss_mib": ("<= 150 MiB", lambda v: v <= 150),
    "ipavail_large_p50": ("<= 300 ms", lambda v: v <= 300),
    "race_errors": ("0", lambda v: v == 0),
    "race_dups": ("0", lambda v: v == 0),
    "rbac_networks_ratio": ("<= 1.2", lambda v: v <= 1.2),
    "rbac_ports_ratio": ("<= 1.2", lambda v: v <= 1.2),
}


class BenchError(RuntimeError):
    pass


class OutOfTime(RuntimeError):
    pass


# --------------------------------------------------------------------------- small helpers
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def fermion_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "fermion.cli.main", *args]


def proc_tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return out


def rss_kib(pid: int) -> int:
    total = 0
    for p in proc_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _cpu_of(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields_ = stat[stat.rindex(")") + 2:].split()
        return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError):
        return 0.0


def cpu_seconds(pid: int) -> float:
    """user+system CPU time of the process tree."""
    return sum(_cpu_of(p) for p in proc_tree(pid))


_PG_ADMIN: Any = None


def db_backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds per PostgreSQL backend process connected to the benchmark's database (local server)."""
    global _PG_ADMIN
    if not url.startswith("postgresql"):
        return {}
    from sqlalchemy import create_engine, text

    if _PG_ADMIN is None:
        _PG_ADMIN = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    with _PG_ADMIN.connect() as conn:
        pids = [r[0] for r in conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                                           {"d": url.rsplit("/", 1)[1]})]
    return {pid: _cpu_of(pid) for pid in pids}


def host_busy_seconds() -> float:
    """CPU seconds all CPUs of the host spent not idle (from /proc/stat)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def host_busy_now(seconds: float = 1.0) -> float:
    """CPU cores busy on the host over a short sample (before we start anything)."""
    b0, t0 = host_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (host_busy_seconds() - b0) / (time.perf_counter() - t0)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def server_connections(port: int) -> int:
    """ESTABLISHED TCP sockets whose local port is the server's (i.e. as the server sees them)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state = parts[1], parts[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


# --------------------------------------------------------------------------- database and server
@contextmanager
def temporary_database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'fermion-bench.sqlite'}"
        return
    from sqlalchemy import create_engine, text

    name = f"fermion_bench_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN_URL if kind == "postgres" else MYSQL_ADMIN_URL
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}{' WITH (FORCE)' if kind == 'postgres' else ''}"))
        engine.dispose()


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    endpoint: str
    port: int
    start_ms: float
    log: Path
    db_url: str = ""
    start_all: list[float] = field(default_factory=list)


def _spawn(url: str, workers: int, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, float]:
    """Start `fermion serve` and poll GET / as fast as possible; returns (proc, port, ms to first 200)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log, "ab") as logf:
        started = time.perf_counter()
        proc = subprocess.Popen(fermion_cmd("serve", "--host", "127.0.0.1", "--port", str(port),
                                            "--database", url, "--workers", str(workers)),
                                env=env, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = started + 30
        with httpx.Client(timeout=2) as c:
            while True:
                try:
                    if c.get(endpoint + "/").status_code == 200:
                        break
                except httpx.HTTPError:  # refused: not listening yet (costs microseconds)
                    pass
                if proc.poll() is not None or time.perf_counter() > deadline:
                    raise BenchError(f"fermion serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.001)
        return proc, port, (time.perf_counter() - started) * 1000
    except BaseException:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # only the process this script started, by its handle/PID
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@contextmanager
def run_server(url: str, workers: int, tmp: Path, start_runs: int = 1) -> Iterator[Server]:
    """Migrate, then start the server `start_runs` times (keeping the last); start_ms is the median."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    up = subprocess.run(fermion_cmd("db", "upgrade", "--database", url), env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        raise BenchError(f"db upgrade failed: {up.stdout}{up.stderr}")
    log = tmp / "server.log"
    times = []
    for _ in range(max(1, start_runs) - 1):
        proc, _port, ms = _spawn(url, workers, log, env)
        _stop(proc)
        times.append(ms)
    proc, port, ms = _spawn(url, workers, log, env)
    times.append(ms)
    try:
        srv = Server(proc, f"http://127.0.0.1:{port}", port, sorted(times)[len(times) // 2], log, url)
        srv.start_all = times
        yield srv
    finally:
        _stop(proc)


# --------------------------------------------------------------------------- load generation
@dataclass
class PhaseResult:
    ops: int
    wall: float
    lat_ms: list[float]
    errors: list[str]
    results: list[Any]
    conns_per_client: list[int]  # distinct TCP connections each client used
    requests_per_client: list[int]
    server_conns: int  # established connections the server had during the phase
    server_cpu: float  # server CPU seconds consumed during the phase
    client_cpu: float = 0.0  # this process's CPU seconds (all client threads)
    host_cpu: float = 0.0  # busy CPU seconds of the whole host (server, clients, database, anything else)
    db_cpu: float = 0.0  # CPU seconds of the database server's backends (PostgreSQL only)
    cpu_window: float = 0.0  # seconds over which the CPU figures were taken

    def __add__(self, o: PhaseResult) -> PhaseResult:
        return PhaseResult(self.ops + o.ops, self.wall + o.wall, self.lat_ms + o.lat_ms, self.errors + o.errors,
                           self.results + o.results,
                           self.conns_per_client + o.conns_per_client,  # different client sessions
                           self.requests_per_client + o.requests_per_client,
                           max(self.server_conns, o.server_conns), self.server_cpu + o.server_cpu,
                           self.client_cpu + o.client_cpu, self.host_cpu + o.host_cpu,
                           self.db_cpu + o.db_cpu, self.cpu_window + o.cpu_window)

    def cores(self, cpu: float) -> float:
        return cpu / self.cpu_window if self.cpu_window else 0.0

    @property
    def rate(self) -> float:
        return self.ops / self.wall if self.wall else 0.0

    def p(self, q: float) -> float:
        return pct(self.lat_ms, q) if self.lat_ms else float("nan")


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise OutOfTime("--max-seconds exceeded")


def make_client(server: Server) -> KeepAliveClient:
    # one connection per client, kept alive between requests
    return KeepAliveClient(server.port)


def make_httpx(endpoint: str) -> httpx.Client:
    return httpx.Client(base_url=endpoint, timeout=120,
                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


def run_phase(server: Server, clients: int, count: int,
              request: Callable[[KeepAliveClient, int], Reply],
              ok: tuple[int, ...], deadline: Deadline,
              keep: Callable[[Reply], Any] | None = None, count_errors: bool = False) -> PhaseResult:
    """Issue `count` requests (request(client, i)) from `clients` threads, each with its own client.
    A failed request fails the phase, unless count_errors: then the failures are only counted."""
    deadline.check()
    counter = iter(range(count))
    lock = threading.Lock()
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    results: list[Any] = [None] * count
    addrs: list[set[Any]] = [set() for _ in range(clients)]
    reqs = [0] * clients
    barrier = threading.Barrier(clients + 1)
    peak_conns = [0]
    stop = threading.Event()

    def worker(w: int) -> None:
        with make_client(server) as c:
            barrier.wait()
            while not stop.is_set():
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                try:
                    r = request(c, i)
                except ClientFailed as err:
                    with lock:
                        errors.append(f"{type(err).__name__}: {err}")
                    continue
                lat[w].append((time.perf_counter() - t0) * 1000)
                reqs[w] += 1
                addrs[w] |= c.addrs
                if r.status_code not in ok:
                    with lock:
                        errors.append(f"{r.status_code}: {r.text[:300]}")
                        if len(errors) > 20 and not count_errors:
                            stop.set()
                    continue
                if keep is not None:
                    results[i] = keep(r)

    def watch() -> None:
        while not stop.is_set():
            peak_conns[0] = max(peak_conns[0], server_connections(server.port))
            stop.wait(0.05)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(clients)]
    for t in threads:
        t.start()
    watcher = threading.Thread(target=watch, daemon=True)
    barrier.wait()
    t0 = time.perf_counter()
    cpu0, ccpu0, hcpu0 = cpu_seconds(server.proc.pid), time.process_time(), host_busy_seconds()
    db0 = db_backend_cpu(server.db_url)
    watcher.start()
    for t in threads:
        t.join(max(1.0, deadline.end - time.monotonic()))
        if t.is_alive():
            stop.set()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(server.proc.pid) - cpu0
    ccpu, hcpu = time.process_time() - ccpu0, host_busy_seconds() - hcpu0
    db1 = db_backend_cpu(server.db_url)
    dbcpu = sum(v - db0.get(pid, 0.0) for pid, v in db1.items())
    window = time.perf_counter() - t0
    stop.set()
    watcher.join(5)
    for t in threads:
        t.join(130)
    flat = [x for part in lat for x in part]
    if errors and not count_errors:
        raise BenchError(f"{len(errors)} failed request(s); first: {errors[0]}")
    deadline.check()
    return PhaseResult(len(flat), wall, flat, errors, results, [len(a) for a in addrs], reqs,
                       peak_conns[0], cpu, ccpu, hcpu, dbcpu, window)


def timed_gets(client: KeepAliveClient | httpx.Client, paths: list[str],
               check: Callable[[Any], None]) -> list[float]:
    out = []
    for path in paths:
        t0 = time.perf_counter()
        r = client.get(path)
        r.read()
        out.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise BenchError(f"GET {path}: {r.status_code} {r.text[:300]}")
        check(r)
    return out


# --------------------------------------------------------------------------- the benchmark
@dataclass
class Config:
    networks: int
    ports: int
    clients: int
    shows: int
    ports_small: int
    ports_large: int
    list_runs: int
    filter_runs: int
    workers: int
    start_runs: int = 3
    warmup: bool = True
    bulk: int = 100
    race_requests: int = 64
    race_singles: int = 400
    only: str = ""
    rbac_objects: int = 10000


@dataclass
class State:
    network_ids: list[str] = field(default_factory=list)
    ports: list[tuple[str, str, str]] = field(default_factory=list)  # (id, network_id, device_id)


def subnet_cidr(i: int) -> str:
    """The i-th /20 of 10.0.0.0/8 (4093 usable addresses each)."""
    return str(ipaddress.ip_network(f"10.{i >> 4}.{(i & 15) << 4}.0/20"))


def fill_ports(server: Server, st: State, total: int, cfg: Config, deadline: Deadline) -> float:
    """Bulk-create ports (untimed for the table) until `total` exist; returns ports/s for information."""
    need = total - len(st.ports)
    if need <= 0:
        return float("nan")
    base = len(st.ports)
    batches = [(b, min(cfg.bulk, need - b)) for b in range(0, need, cfg.bulk)]

    def request(c: KeepAliveClient, i: int) -> Reply:
        start, n = batches[i]
        body = []
        for k in range(n):
            j = base + start + k
            body.append({"network_id": st.network_ids[j % len(st.network_ids)], "name": f"bench-port-{j}",
                         "device_id": f"bench-dev-{j:07d}-{uuid.uuid4().hex[:8]}"})
        return c.post("/v2.0/ports", json={"ports": body})

    res = run_phase(server, min(cfg.clients, 4), len(batches), request, (201,), deadline,
                    keep=lambda r: [(p["id"], p["network_id"], p["device_id"]) for p in r.json()["ports"]])
    for part in res.results:
        st.ports.extend(part)
    if len(st.ports) != total:
        raise BenchError(f"expected {total} ports after the fill, have {len(st.ports)}")
    return need / res.wall


class Reply:
    """What a KeepAliveClient request returns (the few httpx.Response names the phases use)."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def read(self) -> bytes:
        return self.content


class ClientFailed(RuntimeError):
    pass


class KeepAliveClient:
    """Minimal HTTP/1.1 client over one kept-alive socket.

    The load generator shares the 2 CPUs with the server and the database; httpx spends about 1 ms of
    CPU per request, this about a fifth of that, so more of the machine goes to what is measured.
    It also times lists as the server and the transfer, not a Python HTTP client parsing megabytes."""

    def __init__(self, port: int, timeout: float = 120) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.addrs: set[Any] = set()  # local addresses of every connection this client opened
        self.buf = bytearray(1 << 20)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addrs.add(sock.getsockname())
        self.sock = sock
        return sock

    def request(self, method: str, path: str, json_body: Any = None) -> Reply:
        sock = self.sock or self._connect()
        body = b"" if json_body is None else json.dumps(json_body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n"
                f"Content-Length: {len(body)}\r\n")
        if body:
            head += "Content-Type: application/json\r\n"
        try:
            sock.sendall(head.encode() + b"\r\n" + body)
            return self._reply(sock)
        except OSError as err:
            self.close()
            raise ClientFailed(f"{method} {path}: {err}") from None

    def _reply(self, sock: socket.socket) -> Reply:
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                self.close()
                raise ClientFailed("server closed the connection")
            data += chunk
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(fields.get("content-length", "0"))
        out = bytearray(rest)
        view = memoryview(self.buf)
        while len(out) < length:
            n = sock.recv_into(view)
            if not n:
                self.close()
                raise ClientFailed("server closed the connection")
            out += view[:n]
        if fields.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, bytes(out))

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, json: Any) -> Reply:  # noqa: A002 - httpx's keyword
        return self.request("POST", path, json)

    def put(self, path: str, json: Any) -> Reply:  # noqa: A002
        return self.request("PUT", path, json)

    def delete(self, path: str) -> Reply:
        return self.request("DELETE", path)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> KeepAliveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_lists(server: Server, st: State, cfg: Config, tag: str, m: dict[str, Any]) -> None:
    rng = random.Random(42)
    expected = len(st.ports)
    with make_client(server) as c:
        c.get("/v2.0/ports?device_id=warmup")
        lat = timed_gets(c, ["/v2.0/ports"] * cfg.list_runs, lambda r: None)
        body = c.get("/v2.0/ports").content
        n = len(json.loads(body)["ports"])
        if n != expected:
            raise BenchError(f"list returned {n} ports, expected {expected}")
        m[f"list_{tag}_p50"], m[f"list_{tag}_p99"] = pct(lat, 50), pct(lat, 99)
        m[f"list_{tag}_bytes"] = len(body)
    with make_httpx(server.endpoint) as h:
        h.get("/v2.0/ports?device_id=warmup").read()
        lat = timed_gets(h, ["/v2.0/ports"] * max(1, cfg.list_runs // 2), lambda r: None)
        m[f"list_{tag}_httpx_p50"] = pct(lat, 50)
    with make_client(server) as c:

        nets = [rng.choice(st.network_ids) for _ in range(cfg.filter_runs)]
        def some(r: Reply) -> None:
            if not r.json()["ports"]:
                raise BenchError("network_id filter returned nothing")

        lat = timed_gets(c, [f"/v2.0/ports?network_id={n}" for n in nets], some)
        m[f"net_{tag}_p50"], m[f"net_{tag}_p99"] = pct(lat, 50), pct(lat, 99)

        devs = [rng.choice(st.ports)[2] for _ in range(cfg.filter_runs)]

        def one(r: Reply) -> None:
            if len(r.json()["ports"]) != 1:
                raise BenchError("device_id filter did not return exactly one port")

        lat = timed_gets(c, [f"/v2.0/ports?device_id={d}" for d in devs], one)
        m[f"dev_{tag}_p50"], m[f"dev_{tag}_p99"] = pct(lat, 50), pct(lat, 99)


def measure_ip_availability(server: Server, st: State, cfg: Config, tag: str, m: dict[str, Any]) -> None:
    """GET /v2.0/network-ip-availabilities (every network, used and total per subnet) and one network's show,
    checking that the used counts add up to the ports there are (DHCP ports included)."""
    rng = random.Random(11)
    with make_client(server) as c:
        if c.get(f"/v2.0/network-ip-availabilities/{st.network_ids[0]}").status_code == 404:
            return  # a server without network-ip-availability (an older Fermion, for comparison): no rows

        def counted(r: Reply) -> None:
            nets = r.json()["network_ip_availabilities"]
            if sum(n["used_ips"] for n in nets) < len(st.ports):
                raise BenchError("network IP availability counts fewer addresses than ports")

        lat = timed_gets(c, ["/v2.0/network-ip-availabilities"] * cfg.list_runs, counted)
        m[f"ipavail_{tag}_p50"], m[f"ipavail_{tag}_p99"] = pct(lat, 50), pct(lat, 99)
        nets = [rng.choice(st.network_ids) for _ in range(cfg.filter_runs)]
        lat = timed_gets(c, [f"/v2.0/network-ip-availabilities/{n}" for n in nets], lambda r: None)
        m[f"ipavail_show_{tag}_p50"], m[f"ipavail_show_{tag}_p99"] = pct(lat, 50), pct(lat, 99)


def run_ip_availability(server: Server, cfg: Config, deadline: Deadline, m: dict[str, Any], kind: str,
                        log: Callable[[str], None]) -> None:
    """--only ip-availability: networks with one /20 each, filled (untimed) to --ports-large ports."""
    st = State()
    res = run_phase(server, cfg.clients, cfg.networks,
                    lambda c, i: c.post("/v2.0/networks", json={"network": {"name": f"bench-net-{i}"}}),
                    (201,), deadline, keep=lambda r: r.json()["network"]["id"])
    st.network_ids = res.results
    run_phase(server, cfg.clients, cfg.networks,
              lambda c, i: c.post("/v2.0/subnets", json={"subnet": {
                  "network_id": st.network_ids[i], "ip_version": 4, "cidr": subnet_cidr(i)}}), (201,), deadline)
    m["fill_large_ops"] = fill_ports(server, st, cfg.ports_large, cfg, deadline)
    measure_ip_availability(server, st, cfg, "large", m)
    log(f"[{kind}] at {len(st.ports)} ports: network-ip-availabilities p50 {m['ipavail_large_p50']:.0f} ms, "
        f"show p50 {m['ipavail_show_large_p50']:.1f} ms")


def warm_up(server: Server, cfg: Config, deadline: Deadline) -> None:
    """A few untimed creates of each kind (SQL compile caches, pools, lazy imports); the ports are deleted."""
    n = cfg.clients
    res = run_phase(server, n, n, lambda c, i: c.post("/v2.0/networks", json={"network": {
        "name": f"bench-warmup-{i}"}}), (201,), deadline, keep=lambda r: r.json()["network"]["id"])
    nets = res.results
    run_phase(server, n, n, lambda c, i: c.post("/v2.0/subnets", json={"subnet": {
        "network_id": nets[i], "ip_version": 4, "cidr": subnet_cidr(4095 - i)}}), (201,), deadline)
    res = run_phase(server, n, 4 * n, lambda c, i: c.post("/v2.0/ports", json={"port": {
        "network_id": nets[i % n], "device_id": f"bench-warmup-{i}"}}), (201,), deadline,
        keep=lambda r: r.json()["port"]["id"])
    ports = res.results
    with make_client(server) as c:
        c.get("/v2.0/ports")
        c.get(f"/v2.0/ports/{ports[0]}")
    run_phase(server, n, len(ports), lambda c, i: c.delete(f"/v2.0/ports/{ports[i]}"), (204,), deadline)


def record_create(m: dict[str, Any], key: str, res: PhaseResult) -> None:
    m[f"{key}_ops"], m[f"{key}_p50"], m[f"{key}_p99"] = res.rate, res.p(50), res.p(99)
    m[f"{key}_cpu_ms"] = res.server_cpu * 1000 / res.ops
    db = f"postgres {res.cores(res.db_cpu):.2f} " if res.db_cpu else ""
    other = res.host_cpu - res.server_cpu - res.client_cpu - res.db_cpu
    m[f"{key}_cores"] = (f"server {res.cores(res.server_cpu):.2f} bench clients {res.cores(res.client_cpu):.2f} "
                         f"{db}other {res.cores(max(0.0, other)):.2f} (host total {res.cores(res.host_cpu):.2f})")


def bulk_race(server: Server, cfg: Config, deadline: Deadline, m: dict[str, Any]) -> None:
    """Issue 14's case: C clients each posting {"ports": [100 ports]} to one network with a /16 subnet.
    Failed requests are counted (not fatal), and the addresses checked for duplicates afterwards."""
    with make_client(server) as c:
        r = c.post("/v2.0/networks", json={"network": {"name": "bench-bulk-race"}})
        if r.status_code != 201:
            raise BenchError(f"network for the bulk race: {r.status_code} {r.text[:300]}")
        net = r.json()["network"]["id"]
        r = c.post("/v2.0/subnets", json={"subnet": {"network_id": net, "ip_version": 4, "cidr": "172.16.0.0/16"}})
        if r.status_code != 201:
            raise BenchError(f"subnet for the bulk race: {r.status_code} {r.text[:300]}")

    # single creates first, on the still nearly empty network (the cheapest case for them), for comparison
    singles = run_phase(server, cfg.clients, cfg.race_singles, lambda c, i: c.post("/v2.0/ports", json={"port": {
        "network_id": net, "name": f"bench-race-single-{i}", "device_id": f"bench-race-single-{i:05d}"}}),
        (201,), deadline)
    m["race_single_cpu_ms"] = singles.server_cpu * 1000 / singles.ops

    def request(c: KeepAliveClient, i: int) -> Reply:
        return c.post("/v2.0/ports", json={"ports": [
            {"network_id": net, "name": f"bench-race-{i}-{k}", "device_id": f"bench-race-{i:05d}-{k:03d}"}
            for k in range(cfg.bulk)]})

    res = run_phase(server, cfg.clients, cfg.race_requests, request, (201,), deadline,
                    keep=lambda r: len(r.json()["ports"]), count_errors=True)
    made = sum(n for n in res.results if n)
    m["race_ops"] = made / res.wall if res.wall else float("nan")
    m["race_errors"] = len(res.errors)
    fives = sum(1 for e in res.errors if e[:1] == "5")
    kinds = Counter(" ".join([e.split(":", 1)[0], *re.findall(r'"type":"(\w+)"', e)[:1]]) for e in res.errors)
    m["race_error_kinds"] = ", ".join(f"{n} x {kind}" for kind, n in kinds.most_common())
    m["race_5xx"] = fives
    m["race_cpu_ms"] = res.server_cpu * 1000 / made if made else float("nan")
    with make_client(server) as c:
        ports = c.get(f"/v2.0/ports?network_id={net}&fields=fixed_ips").json()["ports"]
    ips = [f["ip_address"] for p in ports for f in p["fixed_ips"]]
    m["race_dups"] = len(ips) - len(set(ips))
    if len(ports) != made + singles.ops:
        raise BenchError(f"bulk race: {made} ports answered, {len(ports)} listed")


def run_bulk_race(server: Server, cfg: Config, deadline: Deadline, m: dict[str, Any], kind: str,
                  log: Callable[[str], None]) -> None:
    bulk_race(server, cfg, deadline, m)
    log(f"[{kind}] bulk race ({cfg.clients} clients x {cfg.bulk} ports, one /16): {m['race_ops']:.0f} ports/s, "
        f"{m['race_errors']} failed request(s) ({m['race_5xx']} 5xx) {m['race_error_kinds']}, "
        f"{m['race_dups']} duplicate address(es), server CPU {m['race_cpu_ms']:.2f} ms per port "
        f"(single creates there: {m['race_single_cpu_ms']:.2f} ms)")


def _as(endpoint: str, project: str, roles: str) -> httpx.Client:
    return httpx.Client(base_url=endpoint, timeout=120, headers={"X-Project-Id": project, "X-Roles": roles},
                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


def _bulk(h: httpx.Client, collection: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(items), 100):
        r = h.post(f"/v2.0/{collection.replace('_', '-')}", json={collection: items[i:i + 100]})
        if r.status_code != 201:
            raise BenchError(f"bulk {collection}: {r.status_code} {r.text[:300]}")
        out.extend(r.json()[collection])
    return out


def rbac_lists(server: Server, cfg: Config, deadline: Deadline, m: dict[str, Any], log: Callable[[str], None],
               kind: str) -> None:
    """Issue 15's target: a list a project sees through RBAC policies stays within 20 % of the unfiltered
    list of the same items. Project "owner" makes N networks and shares each with project "target" by one
    policy; "target" makes N ports on one more network shared with it. Timed: the lists of each, as the
    admin (no filter), as the owner and as the target (RBAC-filtered in SQL)."""
    n = cfg.rbac_objects
    with _as(server.endpoint, "bench-admin", "admin") as admin, \
            _as(server.endpoint, "owner", "member") as owner, _as(server.endpoint, "target", "member") as target:
        for project in ("owner", "target"):
            r = admin.put(f"/v2.0/quotas/{project}", json={"quota": {
                "network": -1, "subnet": -1, "port": -1, "rbac_policy": -1}})
            if r.status_code != 200:
                raise BenchError(f"quotas: {r.status_code} {r.text[:300]}")
        t0 = time.monotonic()
        # local networks, made by the admin for "owner": more than the tenant VNI range holds
        nets = _bulk(admin, "networks", [{"name": f"rbac-net-{i}", "project_id": "owner",
                                          "provider:network_type": "local"} for i in range(n)])
        _bulk(owner, "rbac_policies", [
            {"object_type": "network", "object_id": net["id"], "action": "access_as_shared",
             "target_tenant": "target"} for net in nets])
        host = owner.post("/v2.0/networks", json={"network": {"name": "rbac-ports"}}).json()["network"]
        r = owner.post("/v2.0/subnets", json={"subnet": {"network_id": host["id"], "ip_version": 4,
                                                         "cidr": "172.20.0.0/16"}})
        if r.status_code != 201:
            raise BenchError(f"subnet: {r.status_code} {r.text[:300]}")
        r = owner.post("/v2.0/rbac-policies", json={"rbac_policy": {
            "object_type": "network", "object_id": host["id"], "action": "access_as_shared",
            "target_tenant": "target"}})
        if r.status_code != 201:
            raise BenchError(f"policy: {r.status_code} {r.text[:300]}")
        _bulk(target, "ports", [{"network_id": host["id"], "name": f"rbac-port-{i}"} for i in range(n)])
        deadline.check()
        log(f"[{kind}] rbac: {n} networks shared by {n} policies, {n} ports on a shared network "
            f"(set up in {time.monotonic() - t0:.0f} s)")
        runs = max(5, cfg.list_runs)
        clients = (("admin", admin), ("owner", owner), ("target", target))
        for what in ("networks", "ports"):
            for who, client in clients:
                client.get(f"/v2.0/{what}?name=warmup").read()
                got = [i for i in client.get(f"/v2.0/{what}").json()[what] if i.get("device_owner") != "network:dhcp"]
                # the target sees exactly what was shared with it (networks: the N and the ports' network)
                want = n + 1 if what == "networks" else n
                if len(got) < want or (who == "target" and len(got) != want):
                    raise BenchError(f"{who} listed {len(got)} {what}, expected {want}")
            lat: dict[str, list[float]] = {who: [] for who, _ in clients}
            for _ in range(runs):  # interleaved, so that a busy host slows every caller alike
                for who, client in clients:
                    lat[who] += timed_gets(client, [f"/v2.0/{what}"], lambda r: None)
            for who, _ in clients:
                m[f"rbac_{what}_{who}_p50"] = pct(lat[who], 50)
            ratio = m[f"rbac_{what}_target_p50"] / m[f"rbac_{what}_admin_p50"]
            m[f"rbac_{what}_ratio"] = ratio
            log(f"[{kind}] rbac: list of {n} {what}: admin p50 {m[f'rbac_{what}_admin_p50']:.0f} ms, owner "
                f"{m[f'rbac_{what}_owner_p50']:.0f} ms, target (through RBAC) {m[f'rbac_{what}_target_p50']:.0f} ms "
                f"= {ratio:.2f} x unfiltered")


def bench_backend(kind: str, cfg: Config, deadline: Deadline, log: Callable[[str], None]) -> dict[str, Any]:
    m: dict[str, Any] = {"loadavg_before": loadavg(), "busy_before": host_busy_now()}
    tmp = Path(tempfile.mkdtemp(prefix=f"fermion-bench-{kind}-"))
    try:
        with temporary_database(kind, tmp) as url, \
                run_server(url, cfg.workers, tmp, cfg.start_runs) as server:
            m["start_ms"] = server.start_ms
            m["rss_start_mib"] = rss_kib(server.proc.pid) / 1024
            log(f"[{kind}] server start to first answer: {', '.join(f'{t:.0f}' for t in server.start_all)} ms "
                f"(pid {server.proc.pid})")
            with make_client(server) as c:
                r = c.put(f"/v2.0/quotas/{PROJECT}", json={"quota": {"network": -1, "subnet": -1, "port": -1}})
                if r.status_code != 200:
                    raise BenchError(f"raising quotas failed: {r.status_code} {r.text}")
                # the HTTP floor: an answer that touches neither the database nor the worker threads
                lat = timed_gets(c, ["/"] * 200, lambda r: None)
                m["floor_p50"], m["floor_p99"] = pct(lat, 50), pct(lat, 99)
            if cfg.warmup:
                warm_up(server, cfg, deadline)
            if cfg.only == "bulk-race":
                run_bulk_race(server, cfg, deadline, m, kind, log)
                return m
            if cfg.only == "rbac":
                rbac_lists(server, cfg, deadline, m, log, kind)
                return m
            if cfg.only == "ip-availability":
                run_ip_availability(server, cfg, deadline, m, kind, log)
                return m
            st = State()

            res = run_phase(server, cfg.clients, cfg.networks,
                            lambda c, i: c.post("/v2.0/networks", json={"network": {"name": f"bench-net-{i}"}}),
                            (201,), deadline, keep=lambda r: r.json()["network"]["id"])
            st.network_ids = res.results
            record_create(m, "net", res)
            log(f"[{kind}] {res.ops} networks: {res.rate:.0f}/s ({m['net_cores']})")

            res = run_phase(server, cfg.clients, cfg.networks,
                            lambda c, i: c.post("/v2.0/subnets", json={"subnet": {
                                "network_id": st.network_ids[i], "ip_version": 4, "cidr": subnet_cidr(i),
                                "name": f"bench-subnet-{i}"}}),
                            (201,), deadline)
            record_create(m, "sub", res)
            log(f"[{kind}] {res.ops} subnets: {res.rate:.0f}/s ({m['sub_cores']})")

            # ports one at a time from C clients; paused at --ports-small for the list measurements there
            def port_req(c: KeepAliveClient, i: int) -> Reply:
                return c.post("/v2.0/ports", json={"port": {
                    "network_id": st.network_ids[i % len(st.network_ids)], "name": f"bench-port-{i}",
                    "device_id": f"bench-dev-{i:07d}-{uuid.uuid4().hex[:8]}"}})

            def keep_port(r: Reply) -> tuple[str, str, str]:
                p = r.json()["port"]
                return p["id"], p["network_id"], p["device_id"]

            first = cfg.ports_small if cfg.ports > cfg.ports_small else cfg.ports
            res = run_phase(server, cfg.clients, first, port_req, (201,), deadline, keep=keep_port)
            st.ports = list(res.results)
            m["fill_small_ops"] = fill_ports(server, st, cfg.ports_small, cfg, deadline)
            measure_lists(server, st, cfg, "small", m)
            log(f"[{kind}] at {len(st.ports)} ports: list p50 {m['list_small_p50']:.0f} ms, "
                f"device_id p50 {m['dev_small_p50']:.1f} ms")
            if cfg.ports > first:
                offset = len(st.ports)
                rest = run_phase(server, cfg.clients, cfg.ports - first,
                                 lambda c, i: port_req(c, offset + i), (201,), deadline, keep=keep_port)
                st.ports.extend(rest.results)
                res = res + rest
            record_create(m, "port", res)
            m["keepalive"] = (f"{sum(res.requests_per_client)} port creates from {len(res.conns_per_client)} "
                              f"client sessions used {sum(res.conns_per_client)} TCP connection(s); the server "
                              f"saw at most {res.server_conns} established at once ({cfg.clients} clients)")
            m["keepalive_ok"] = all(n == 1 for n in res.conns_per_client) and res.server_conns <= cfg.clients
            log(f"[{kind}] {res.ops} ports: {res.rate:.0f}/s ({m['port_cores']}); keep-alive: {m['keepalive']}")

            rng = random.Random(7)
            with make_client(server) as c:
                ids = [rng.choice(st.ports)[0] for _ in range(cfg.shows)]
                lat = timed_gets(c, [f"/v2.0/ports/{i}" for i in ids], lambda r: None)
            m["show_p50"], m["show_p99"] = pct(lat, 50), pct(lat, 99)
            log(f"[{kind}] port show p50 {m['show_p50']:.2f} ms p99 {m['show_p99']:.2f} ms")

            m["fill_large_ops"] = fill_ports(server, st, cfg.ports_large, cfg, deadline)
            m["rss_before_lists_mib"] = rss_kib(server.proc.pid) / 1024
            measure_lists(server, st, cfg, "large", m)
            log(f"[{kind}] at {len(st.ports)} ports: list p50 {m['list_large_p50']:.0f} ms, "
                f"device_id p50 {m['dev_large_p50']:.1f} ms (bulk fill {m['fill_large_ops']:.0f} ports/s)")
            measure_ip_availability(server, st, cfg, "large", m)
            m["rss_mib"] = rss_kib(server.proc.pid) / 1024
            run_bulk_race(server, cfg, deadline, m, kind, log)
            m["server_procs"] = len(proc_tree(server.proc.pid))
            m["server_cpu_total"] = cpu_seconds(server.proc.pid)
    except (BenchError, OutOfTime) as err:
        m["error"] = str(err)
        log(f"[{kind}] FAILED: {err}")
    finally:
        m["loadavg_after"] = loadavg()
        shutil.rmtree(tmp, ignore_errors=True)
    return m


# --------------------------------------------------------------------------- report
def fmt(v: Any, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if v != v:  # nan
        return "-"
    if unit == "/s":
        return f"{v:,.0f}/s"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 1 else f"{v:.1f} ms" if v < 100 else f"{v:,.0f} ms"
    if unit == "MiB":
        return f"{v:.0f} MiB"
    if unit == "KiB":
        return f"{v / 1024:,.0f} KiB"
    if unit == "x":
        return f"{v:.2f} x"
    return str(v)


def report(results: dict[str, dict[str, Any]], cfg: Config, skipped: dict[str, str]) -> str:
    s, L = cfg.ports_small, cfg.ports_large
    rows: list[tuple[str, str, str]] = [
        (f"start to first answer (median of {cfg.start_runs})", "start_ms", "ms"),
        ("HTTP floor: GET / p50 (no DB)", "floor_p50", "ms"),
        ("HTTP floor: GET / p99", "floor_p99", "ms"),
        (f"network create ({cfg.clients} clients)", "net_ops", "/s"),
        ("  network create p50", "net_p50", "ms"),
        ("  network create p99", "net_p99", "ms"),
        ("  server CPU per network create", "net_cpu_ms", "ms"),
        (f"subnet create ({cfg.clients} clients)", "sub_ops", "/s"),
        ("  subnet create p50", "sub_p50", "ms"),
        ("  subnet create p99", "sub_p99", "ms"),
        ("  server CPU per subnet create", "sub_cpu_ms", "ms"),
        (f"port create ({cfg.clients} clients)", "port_ops", "/s"),
        ("  port create p50", "port_p50", "ms"),
        ("  port create p99", "port_p99", "ms"),
        ("  server CPU per port create", "port_cpu_ms", "ms"),
        (f"port show p50 ({cfg.shows} shows)", "show_p50", "ms"),
        ("port show p99", "show_p99", "ms"),
    ]
    for tag, n in (("small", s), ("large", L)):
        rows += [
            (f"list all ports @{n} p50 ({cfg.list_runs} runs)", f"list_{tag}_p50", "ms"),
            (f"list all ports @{n} p99", f"list_{tag}_p99", "ms"),
            ("  same, through httpx (p50)", f"list_{tag}_httpx_p50", "ms"),
            (f"  response size @{n}", f"list_{tag}_bytes", "KiB"),
            (f"list ?network_id @{n} p50 ({cfg.filter_runs} runs)", f"net_{tag}_p50", "ms"),
            (f"list ?network_id @{n} p99", f"net_{tag}_p99", "ms"),
            (f"list ?device_id @{n} p50 ({cfg.filter_runs} runs)", f"dev_{tag}_p50", "ms"),
            (f"list ?device_id @{n} p99", f"dev_{tag}_p99", "ms"),
            (f"  bulk fill to {n} (untimed, info)", f"fill_{tag}_ops", "/s"),
        ]
    rows += [(f"network-ip-availabilities list @{L} p50 ({cfg.list_runs} runs)", "ipavail_large_p50", "ms"),
             (f"network-ip-availabilities list @{L} p99", "ipavail_large_p99", "ms"),
             (f"network-ip-availabilities show @{L} p50 ({cfg.filter_runs} runs)", "ipavail_show_large_p50", "ms"),
             (f"network-ip-availabilities show @{L} p99", "ipavail_show_large_p99", "ms")]
    rows += [("server RSS just after start", "rss_start_mib", "MiB"),
             (f"server RSS @{L} ports, before listing them", "rss_before_lists_mib", "MiB"),
             (f"server RSS @{L} ports, after the lists", "rss_mib", "MiB"),
             (f"bulk race: {cfg.clients} clients x {cfg.bulk} ports, one /16 ({cfg.race_requests} requests)",
              "race_ops", "/s"),
             ("  failed bulk requests", "race_errors", ""),
             ("  of which 5xx", "race_5xx", ""),
             ("  duplicate addresses", "race_dups", ""),
             ("  server CPU per port in a bulk", "race_cpu_ms", "ms"),
             (f"  server CPU per single port create there ({cfg.race_singles}, first)", "race_single_cpu_ms", "ms")]
    for what in ("networks", "ports"):
        rows += [(f"rbac: list {cfg.rbac_objects} {what}, admin (unfiltered) p50", f"rbac_{what}_admin_p50", "ms"),
                 (f"rbac: list {cfg.rbac_objects} {what}, owner p50", f"rbac_{what}_owner_p50", "ms"),
                 (f"rbac: list {cfg.rbac_objects} {what}, target through RBAC p50", f"rbac_{what}_target_p50",
                  "ms"),
                 ("  target / unfiltered", f"rbac_{what}_ratio", "x")]
    backends = list(results) + [k for k in skipped if k not in results]
    if cfg.only:
        rows = [row for row in rows if any(row[1] in r for r in results.values())]
    header = ["metric", *backends, "target"]
    table = []
    for label, key, unit in rows:
        line = [label]
        for b in backends:
            if b in skipped:
                line.append("skipped")
                continue
            v = results[b].get(key)
            cell = fmt(v, unit)
            if key in TARGETS and isinstance(v, (int, float)) and v == v:
                cell += " ok" if TARGETS[key][1](v) else " MISS"
            line.append(cell)
        line.append(TARGETS[key][0] if key in TARGETS else "")
        table.append(line)
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    out = []
    sep = "-+-".join("-" * w for w in widths)
    out.append(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    out.append(sep)
    for row in table:
        out.append(" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                              enumerate(zip(row, widths, strict=True))))
    out.append(sep)
    cpus = os.cpu_count() or 1
    for b in backends:
        r = results.get(b, {})
        if b in skipped:
            out.append(f"[{b}] skipped: {skipped[b]}")
            continue
        if "error" in r:
            out.append(f"[{b}] FAILED: {r['error']}")
        if r.get("race_errors"):
            out.append(f"[{b}] bulk race failures: {r['race_error_kinds']}")
        if "keepalive" in r:
            out.append(f"[{b}] keep-alive {'ok' if r['keepalive_ok'] else 'NOT REUSED'}: {r['keepalive']}")
        for key, what in (("net", "network"), ("sub", "subnet"), ("port", "port")):
            if f"{key}_cores" in r:
                out.append(f"[{b}] CPU cores busy during {what} creates: {r[f'{key}_cores']}")
        if "server_procs" in r:
            out.append(f"[{b}] server processes {r['server_procs']}, server CPU total "
                       f"{r['server_cpu_total']:.1f} s")
        before, after = r.get("loadavg_before", 0.0), r.get("loadavg_after", 0.0)
        busy = r.get("busy_before", 0.0)
        warn = (f"  WARNING: the host was busy before the run ({cpus} CPUs): numbers are pessimistic"
                if busy > 0.25 * cpus else "")
        out.append(f"[{b}] host before the run: {busy:.2f} cores busy, load average {before:.1f} "
                   f"(after {after:.1f}){warn}")
    out.append(f"workers={cfg.workers} clients={cfg.clients} networks={cfg.networks} ports={cfg.ports} "
               f"warm-up={'on' if cfg.warmup else 'off'} cpus={cpus} "
               "(the clients and the database share the machine with the server)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite,postgres", help="comma-separated backends: sqlite,postgres,mysql")
    ap.add_argument("--networks", type=int, default=200, help="networks (each gets one /20 subnet)")
    ap.add_argument("--ports", type=int, default=2000, help="ports created one by one (timed)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients for creates")
    ap.add_argument("--shows", type=int, default=500)
    ap.add_argument("--ports-small", type=int, default=1000)
    ap.add_argument("--ports-large", type=int, default=10000)
    ap.add_argument("--list-runs", type=int, default=5)
    ap.add_argument("--filter-runs", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1, help="passed to fermion serve --workers")
    ap.add_argument("--start-runs", type=int, default=3, help="server starts to time (median is reported)")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="wait up to this many seconds for other load on the host to stop before each backend")
    ap.add_argument("--no-warmup", action="store_true", help="time creates from a cold server")
    ap.add_argument("--race-requests", type=int, default=64,
                    help="bulk race: how many bulk requests of 100 ports the clients post to one network")
    ap.add_argument("--race-singles", type=int, default=400,
                    help="bulk race: single port creates on the same network first, to compare their CPU")
    ap.add_argument("--only", choices=["bulk-race", "rbac", "ip-availability"], default="", help="run only this case")
    ap.add_argument("--rbac-objects", type=int, default=10000,
                    help="rbac: networks shared by policy, and ports on a shared network, a project lists")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--max-seconds", type=float, default=900, help="stop the whole run after this long")
    ap.add_argument("--json", help="also write the raw numbers to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.networks, args.ports, args.shows = 20, 200, 100
        args.ports_small, args.ports_large = 100, 1000
        args.list_runs, args.filter_runs = 3, 10
        args.race_requests, args.race_singles = 8, 80
        args.rbac_objects = 500
    cfg = Config(args.networks, args.ports, args.clients, args.shows, args.ports_small,
                 max(args.ports_large, args.ports_small, args.ports), args.list_runs, args.filter_runs,
                 args.workers, max(1, args.start_runs), not args.no_warmup, race_requests=args.race_requests,
                 race_singles=args.race_singles, only=args.only, rbac_objects=args.rbac_objects)
    if cfg.networks > 4096:
        ap.error("--networks is at most 4096 (one /20 each out of 10.0.0.0/8)")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    deadline = Deadline(args.max_seconds)
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for kind in [k.strip() for k in args.db.split(",") if k.strip()]:
        if kind not in ("sqlite", "postgres", "mysql"):
            ap.error(f"unknown backend {kind!r}")
        if kind != "sqlite":
            admin = make_url(PG_ADMIN_URL if kind == "postgres" else MYSQL_ADMIN_URL)
            host, port = admin.host or "127.0.0.1", admin.port or (5432 if kind == "postgres" else 3306)
            if not reachable(host, port):
                skipped[kind] = f"{'PostgreSQL' if kind == 'postgres' else 'MariaDB'} is not reachable at {host}:{port}"
                log(f"[{kind}] skipped: {skipped[kind]}")
                continue
        if time.monotonic() > deadline.end:
            skipped[kind] = "--max-seconds exceeded before it started"
            continue
        if args.wait_quiet > 0:
            waited = time.monotonic()
            while (busy := host_busy_now()) > 0.25 * (os.cpu_count() or 1) \
                    and time.monotonic() - waited < args.wait_quiet:
                log(f"[{kind}] host busy ({busy:.2f} cores), waiting for it to calm down")
                time.sleep(4)
        t0 = time.monotonic()
        results[kind] = bench_backend(kind, cfg, deadline, log)
        log(f"[{kind}] done in {time.monotonic() - t0:.0f} s")
    if _PG_ADMIN is not None:
        _PG_ADMIN.dispose()
    print(report(results, cfg, skipped))
    if args.json:
        Path(args.json).write_text(json.dumps({"config": cfg.__dict__, "results": results, "skipped": skipped},
                                              indent=2, default=str))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
