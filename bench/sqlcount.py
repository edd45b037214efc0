#!/usr/bin/env python
"""SQL statements, Python calls and CPU per API operation, in process (see bench/README.md).

Builds the API application on a throw-away SQLite database, runs every request on the calling thread
(no worker pool, so the counts and the profile see all of a request's work) and prints, for each
operation of bench/api.py and a few more, the statements one request runs, the Python function calls
it makes (with --calls) and its CPU time. Wall-clock benchmarks are noisy on a shared machine; the
statement and call counts are not, so two checkouts compare exactly.

    .venv/bin/python bench/sqlcount.py                        # the table
    .venv/bin/python bench/sqlcount.py --calls                # with Python calls per request (slower)
    .venv/bin/python bench/sqlcount.py --sql port-create      # and the statements of one port create
    .venv/bin/python bench/sqlcount.py --profile port-create  # and a cProfile of the port creates
    .venv/bin/python bench/sqlcount.py --project demo --roles member   # as a member instead of the admin
    .venv/bin/python bench/sqlcount.py --instructions --repeat 5 --ports 2000  # CPU instructions (valgrind)

--instructions runs itself under valgrind's callgrind and counts the instructions the process executes
for each operation (the in-process test client's share included, the same for every checkout): a CPU
figure that other load on the machine does not change, unlike times. Slow (about 50 times).

It only imports the application (fermion.runtime.embedded.build_app) and counts at the sqlite3 module, so
the same file runs against an older checkout of Fermion (copy it there).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import ipaddress
import os
import pstats
import re
import shutil
import sqlite3
import sqlite3.dbapi2
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
_UNDER_CALLGRIND = "FERMION_SQLCOUNT_CALLGRIND"  # set in the run under valgrind: where its dumps go


class Statements:
    """Records, per thread, the statements the app sends to SQLite: every execute and executemany on a
    cursor (also the hot statements Fermion runs straight on the driver's cursor, fermion/db/direct.py,
    which SQLAlchemy's events do not see), and each COMMIT and ROLLBACK. An executemany is one statement
    (shown with its number of rows). Works by giving sqlite3.connect a counting connection class."""

    def __init__(self) -> None:
        local = self.local = threading.local()

        def record(text: str) -> None:
            log = getattr(local, "log", None)
            if log is not None:
                log.append(text)

        class Cursor(sqlite3.Cursor):
            def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                record(sql)
                return super().execute(sql, *args)

            def executemany(self, sql: str, rows: Any) -> Any:  # type: ignore[override]
                rows = list(rows)
                record(f"{sql} -- x {len(rows)} rows")
                return super().executemany(sql, rows)

        class Connection(sqlite3.Connection):
            def cursor(self, factory: Any = Cursor) -> Any:  # type: ignore[override]
                return super().cursor(factory)

            def execute(self, sql: str, *args: Any) -> Any:  # type: ignore[override]
                return self.cursor().execute(sql, *args)

            def commit(self) -> None:
                if self.in_transaction:
                    record("COMMIT")
                super().commit()

            def rollback(self) -> None:
                if self.in_transaction:
                    record("ROLLBACK")
                super().rollback()

        connect = sqlite3.dbapi2.connect

        def counting_connect(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("factory", Connection)
            return connect(*args, **kwargs)

        sqlite3.dbapi2.connect = counting_connect  # what SQLAlchemy's pysqlite dialect calls

    def start(self) -> None:
        self.local.log = []

    def stop(self) -> list[str]:
        log = getattr(self.local, "log", None) or []
        self.local.log = None
        return log


class Inline(Executor):
    """Runs the submitted call at once on the caller's thread (the app hands requests to a thread pool),
    under the profiler when one is set: the app's work, not the test client's."""

    def __init__(self) -> None:
        self.profile: cProfile.Profile | None = None
        self.cpu = 0.0  # CPU seconds spent in submitted calls

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        prof = self.profile
        if prof is not None:
            prof.enable()
        t0 = time.thread_time()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting coroutine
            fut.set_exception(err)
        finally:
            self.cpu += time.thread_time() - t0
            if prof is not None:
                prof.disable()
        return fut


@dataclass
class Op:
    statements: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the whole request
    app_cpu: list[float] = field(default_factory=list)  # the app's worker-thread part
    sql: list[str] = field(default_factory=list)  # the first request's
    profile: cProfile.Profile | None = None
    instructions: int | None = None  # with --instructions: executed by the whole process for these requests


class Bench:
    def __init__(self, tmp: Path, headers: dict[str, str], profiled: Callable[[str], bool]) -> None:
        from fermion.config import settings as cfg
        from fermion.db import migrate
        from fermion.db.engine import Database
        from fermion.runtime.embedded import build_app

        self.counter = Statements()  # before any connection is made
        url = f"sqlite:///{tmp / 'sqlcount.sqlite'}"
        db = Database(url)
        migrate.upgrade(db.engine)
        db.dispose()
        self.app = build_app(cfg.Settings().replace("database", url=url))
        self.inline = self.app.pool = Inline()
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://bench",
                                        headers=headers, timeout=600)
        self.profiled = profiled
        self.ops: dict[str, Op] = {}
        self.callgrind = os.environ.get(_UNDER_CALLGRIND, "")

    @contextmanager
    def measuring(self, op: str) -> Iterator[None]:
        """A group of requests of one operation (under callgrind: their instructions are counted apart)."""
        if self.callgrind:
            _callgrind("-i", "on")
            _callgrind("-z")
        try:
            yield
        finally:
            if self.callgrind:
                _callgrind("-d", op)
                _callgrind("-i", "off")

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
        self.app.services.db.dispose()

    def call(self, method: str, path: str, body: Any = None, ok: int = 200, op: str | None = None,
             decode: bool = True) -> Any:
        """One request (recorded under `op` when given); its decoded answer (when `decode`)."""
        rec = None if op is None else self.ops.setdefault(op, Op())
        if rec is not None and rec.profile is None and self.profiled(op or ""):
            rec.profile = cProfile.Profile()
        self.counter.start()
        self.inline.profile = None if rec is None else rec.profile
        self.inline.cpu = 0.0
        t0 = time.thread_time()
        r = self.loop.run_until_complete(self.client.request(method, path, json=body))
        cpu = time.thread_time() - t0
        self.inline.profile = None
        statements = self.counter.stop()
        if r.status_code != ok:
            raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:500]}")
        if rec is not None:
            rec.statements.append(len(statements))
            rec.cpu.append(cpu)
            rec.app_cpu.append(self.inline.cpu)
            rec.sql = rec.sql or statements
        return r.json() if r.content and decode else None


def _callgrind(*args: str) -> None:
    """Control the callgrind instance this process runs under (waits for it to act)."""
    subprocess.run(["callgrind_control", *args, str(os.getpid())], capture_output=True, check=False, timeout=600)


def _dumped(base: str) -> dict[str, int]:
    """Instructions per dump of a callgrind run (op name -> count)."""
    out = {}
    for path in Path(base).parent.glob(Path(base).name + ".*"):
        text = path.read_text(errors="replace")
        name = re.search(r"^desc: Trigger: (?:Client Request: )?dump (.+)$", text, re.M)
        total = re.search(r"^(?:totals|summary): (\d+)", text, re.M)
        if name and total:
            out[name.group(1).strip()] = int(total.group(1))
    return out


def cidr(i: int) -> str:
    return str(ipaddress.ip_network(f"10.{i >> 4}.{(i & 15) << 4}.0/20"))


def run(b: Bench, n: int, ports: int, bulk: int) -> int:
    """The operations, n times each (the lists fewer); returns how many ports the full list returned."""
    b.call("PUT", "/v2.0/quotas/fermion-default", {"quota": {"network": -1, "subnet": -1, "port": -1}})
    # warm-up: SQL compile caches, lazy imports (not counted)
    w = b.call("POST", "/v2.0/networks", {"network": {"name": "warm"}}, 201)["network"]["id"]
    b.call("POST", "/v2.0/subnets", {"subnet": {"network_id": w, "ip_version": 4, "cidr": cidr(4095)}}, 201)
    for i in range(3):
        p = b.call("POST", "/v2.0/ports", {"port": {"network_id": w, "device_id": f"warm-{i}"}}, 201)["port"]
        b.call("GET", f"/v2.0/ports/{p['id']}")
        b.call("PUT", f"/v2.0/ports/{p['id']}", {"port": {"name": "warm"}})
        b.call("GET", f"/v2.0/networks/{w}")
    for path in ("/v2.0/ports", f"/v2.0/ports?network_id={w}", "/v2.0/ports?device_id=warm-0", "/v2.0/networks",
                 "/v2.0/subnets"):
        b.call("GET", path)
    # as `fermion serve` after start-up: what exists now stays out of the collector's walks
    gc.collect()
    gc.freeze()

    with b.measuring("http-floor"):  # GET /: the versions document, no database
        for _ in range(n):
            b.call("GET", "/", op="http-floor", decode=False)
    with b.measuring("network-create"):
        nets = [b.call("POST", "/v2.0/networks", {"network": {"name": f"net-{i}"}}, 201,
                       "network-create")["network"]["id"] for i in range(n)]
    with b.measuring("subnet-create"):
        subs = [b.call("POST", "/v2.0/subnets", {"subnet": {
            "network_id": nets[i], "ip_version": 4, "cidr": cidr(i), "name": f"sub-{i}"}}, 201,
            "subnet-create")["subnet"]["id"] for i in range(n)]
    with b.measuring("port-create"):
        made = [b.call("POST", "/v2.0/ports", {"port": {
            "network_id": nets[i % n], "name": f"port-{i}", "device_id": f"dev-{i:07d}-{uuid.uuid4().hex[:8]}"}},
            201, "port-create")["port"]["id"] for i in range(n)]
    for name, path in (("port-show", "/v2.0/ports/{}"), ("network-show", "/v2.0/networks/{}"),
                       ("subnet-show", "/v2.0/subnets/{}")):
        ids = {"port-show": made, "network-show": nets, "subnet-show": subs}[name]
        with b.measuring(name):
            for i in range(n):
                b.call("GET", path.format(ids[i]), op=name, decode=False)
    with b.measuring("port-update"):
        for i in range(n):
            b.call("PUT", f"/v2.0/ports/{made[i]}", {"port": {"name": f"renamed-{i}"}}, op="port-update",
                   decode=False)
    with b.measuring(f"port-bulk-create-{bulk}"):
        for i in range(max(1, ports // bulk)):
            b.call("POST", "/v2.0/ports", {"ports": [
                {"network_id": nets[(i * bulk + k) % n], "name": f"bulk-{i}-{k}", "device_id": f"bulk-{i:05d}-{k:03d}"}
                for k in range(bulk)]}, 201, f"port-bulk-create-{bulk}", decode=False)
    with b.measuring("port-list"):
        for _ in range(min(n, 5)):
            b.call("GET", "/v2.0/ports", op="port-list", decode=False)
    with b.measuring("port-list-network_id"):
        for i in range(n):
            b.call("GET", f"/v2.0/ports?network_id={nets[i]}", op="port-list-network_id", decode=False)
    with b.measuring("port-list-device_id"):
        for i in range(n):
            b.call("GET", f"/v2.0/ports?device_id=dev-{i:07d}", op="port-list-device_id", decode=False)
    with b.measuring("network-list"):
        for _ in range(min(n, 5)):
            b.call("GET", "/v2.0/networks", op="network-list", decode=False)
    with b.measuring("subnet-list"):
        for _ in range(min(n, 5)):
            b.call("GET", "/v2.0/subnets", op="subnet-list", decode=False)
    with b.measuring("port-delete"):
        for i in range(n):
            b.call("DELETE", f"/v2.0/ports/{made[i]}", ok=204, op="port-delete")
    return len(b.call("GET", "/v2.0/ports?fields=id")["ports"]) + n  # the ports listed above


def under_callgrind(argv: list[str]) -> int:
    """Run this script again under callgrind, instructions counted only inside the measured groups."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("--instructions needs valgrind (callgrind) installed", file=sys.stderr)
        return 2
    out = Path(tempfile.mkdtemp(prefix="fermion-sqlcount-cg-"))
    try:
        env = {**os.environ, _UNDER_CALLGRIND: str(out / "callgrind.out"), "PYTHONHASHSEED": "0"}
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out / 'callgrind.out'}",
               f"--log-file={out / 'valgrind.log'}", sys.executable, str(Path(__file__).resolve()), *argv]
        return subprocess.run(cmd, env=env, check=False).returncode
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=20, help="requests of each operation (lists: at most 5)")
    ap.add_argument("--ports", type=int, default=1000, help="ports made by bulk creates before the lists")
    ap.add_argument("--bulk", type=int, default=100, help="ports per bulk create")
    ap.add_argument("--calls", action="store_true", help="count the app's Python calls per request (cProfile)")
    ap.add_argument("--instructions", action="store_true",
                    help="count the CPU instructions per request under valgrind (deterministic, slow)")
    ap.add_argument("--sql", action="append", default=[], metavar="OP", help="print one request's statements")
    ap.add_argument("--profile", metavar="OP", help="print the cProfile of the requests of OP")
    ap.add_argument("--top", type=int, default=40, help="profile rows to print")
    ap.add_argument("--sort", default="cumulative", help="profile sort key (cumulative, tottime, calls...)")
    ap.add_argument("--profile-out", metavar="FILE", help="also write that profile (pstats) to FILE")
    ap.add_argument("--project", help="X-Project-Id (default: noauth's default project, as bench/api.py)")
    ap.add_argument("--roles", help="X-Roles (default: noauth's default, admin)")
    args = ap.parse_args(argv)
    cg = os.environ.get(_UNDER_CALLGRIND, "")
    if args.instructions and not cg:
        return under_callgrind(argv)
    headers = {k: v for k, v in (("X-Project-Id", args.project), ("X-Roles", args.roles)) if v}
    tmp = Path(tempfile.mkdtemp(prefix="fermion-sqlcount-"))
    try:
        b = Bench(tmp, headers, lambda op: args.calls or op == args.profile)
        try:
            listed = run(b, max(1, args.repeat), args.ports, max(1, args.bulk))
        finally:
            b.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if cg:
        for name, count in _dumped(cg).items():
            if name in b.ops:
                b.ops[name].instructions = count
    print("statements: per request (median, min, max), as the app sent them to SQLite (BEGIN and COMMIT included)")
    if args.calls:
        print("calls: the app's Python function calls per request (mean; cProfile, which also slows the CPU figures)")
    if cg:
        print("instructions: per request (mean, thousands), of the whole process (the test client's part included:")
        print("              see http-floor); CPU times are valgrind's, meaningless")
    print("CPU ms: median per request, of the whole request (the test client's part included) and of the app's")
    print("        worker-thread part (routing, policy, services, SQL, a list's JSON)")
    head = f"{'operation':28} | {'statements':>10} | {'min':>4} | {'max':>4}"
    head += f" | {'calls':>8}" if args.calls else ""
    head += f" | {'instr. k':>10}" if cg else ""
    print(head + f" | {'CPU ms':>8} | {'app CPU ms':>10}")
    for name, rec in b.ops.items():
        label = f"{name} @{listed}" if name == "port-list" else name
        line = (f"{label:28} | {statistics.median(rec.statements):>10g} | {min(rec.statements):>4} | "
                f"{max(rec.statements):>4}")
        if args.calls:
            calls = pstats.Stats(rec.profile).total_calls / len(rec.statements) if rec.profile else 0  # type: ignore[attr-defined]
            line += f" | {calls:>8.0f}"
        if cg:
            line += f" | {(rec.instructions or 0) / len(rec.statements) / 1000:>10,.0f}"
        print(line + f" | {statistics.median(rec.cpu) * 1000:>8.2f} | {statistics.median(rec.app_cpu) * 1000:>10.2f}")
    for name in args.sql:
        print(f"\n-- {name}: {len(b.ops[name].sql)} statements")
        for s in b.ops[name].sql:
            print(" ".join(s.split())[:400])
    prof = b.ops[args.profile].profile if args.profile in b.ops else None
    if prof is not None:
        print(f"\n-- profile of {args.profile} ({len(b.ops[args.profile].statements)} requests)")
        stats = pstats.Stats(prof)
        stats.sort_stats(args.sort).print_stats(args.top)
        if args.profile_out:
            stats.dump_stats(args.profile_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
