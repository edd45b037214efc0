#!/usr/bin/env python
"""Metering benchmark: what counting costs on the agent and the server. Prints a table.

  * apply: one router namespace's `table inet fermion_meter` made with L labels of R rules each (one
    `nft -f` transaction), then changed (one rule more per label: chains replaced, counters kept), then
    unchanged (the agent's cache: no nft run at all)
  * read: the counters of that table read back (what every heartbeat does per metered router)
  * server: an agent report of N counters taken into the database (SQLite), first and then again with
    every count moved on

    sudo .venv/bin/python bench/metering.py                 # defaults
    sudo .venv/bin/python bench/metering.py --labels 200 --rules 10 --counters 5000

Needs root for the namespace (named mtrbench-<random>, removed at exit). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fermion.context import Context
from fermion.dataplane import metering as dp
from fermion.dataplane import netns
from fermion.db import migrate
from fermion.db.engine import Database
from fermion.rpc.contracts import MeteringCounter
from fermion.services import metering
from fermion.services.registry import Services


def timed(work: Callable[[], object], repeat: int = 3) -> float:
    """The median of repeat runs, in milliseconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def labels(count: int, rules: int) -> list[dp.MeterLabel]:
    return [dp.MeterLabel(f"{i:08d}-0000-4000-8000-000000000000", tuple(
        dp.MeterRule("egress" if r % 2 else "ingress", r % 5 == 4, None, f"10.{i % 250}.{r}.0/24")
        for r in range(rules))) for i in range(count)]


def dataplane(n_labels: int, n_rules: int) -> list[tuple[str, float]]:
    ns = f"mtrbench-{uuid.uuid4().hex[:6]}"
    netns.create(ns)
    try:
        manager = dp.MeterManager()
        first, more = labels(n_labels, n_rules), labels(n_labels, n_rules + 1)
        made = timed(lambda: (manager.forget("r"), manager.ensure("r", ns, "qg-bench", first)), 1)
        changed = timed(lambda: (manager.ensure("r", ns, "qg-bench", first),
                                 manager.ensure("r", ns, "qg-bench", more)), 1) / 2
        cached = timed(lambda: manager.ensure("r", ns, "qg-bench", more), 5)
        read = timed(lambda: manager.counts("r", ns), 5)
        return [(f"apply: {n_labels} labels x {n_rules} rules, new table", made),
                ("apply: one rule more per label (counters kept)", changed),
                ("apply: unchanged (cached, no nft run)", cached),
                (f"read: {n_labels} counters of one router", read)]
    finally:
        netns.delete(ns)


def server(n_counters: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        db = Database(url)
        migrate.upgrade(db.engine)
        services = Services.build(db)
        ctx = Context(project_id="bench", roles=frozenset({"admin"}))
        label_count = max(1, n_counters // 10)
        made = db.write(lambda conn: services.metering_labels.create(conn, [
            {"project_id": "bench", "name": f"l{i}", "description": "", "shared": False}
            for i in range(label_count)], ctx))
        ids = [x["id"] for x in made]

        def report(step: int) -> list[MeteringCounter]:
            return [MeteringCounter(f"router-{i // label_count:06d}", ids[i % label_count], step * i, step * i * 100,
                                    "e") for i in range(n_counters)]

        first = timed(lambda: db.write(lambda conn: metering.apply_report(conn, "h", report(1))), 1)
        moved = timed(lambda: db.write(lambda conn: metering.apply_report(conn, "h", report(2))), 1)
        scrape = timed(lambda: db.write(lambda conn: metering.all_counters(conn)), 3)
        db.dispose()
        return [(f"server: first report of {n_counters} counters", first),
                (f"server: report of {n_counters} counters moved on", moved),
                (f"server: /metrics rows for {n_counters} counters", scrape)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--rules", type=int, default=4)
    parser.add_argument("--counters", type=int, default=1000)
    args = parser.parse_args()
    rows = dataplane(args.labels, args.rules) + server(args.counters)
    width = max(len(name) for name, _ in rows)
    print(f"{'metering':<{width}}  {'ms':>9}")
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:>9.1f}")


if __name__ == "__main__":
    main()
