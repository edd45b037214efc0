#!/usr/bin/env python
"""HA router failover benchmark (needs root), in two parts (--only pair|lab; default both).

The lab part (bench/ha_lab.py) loses and heals the active host of an HA router in an embedded lab, as
`fermion lab fail` and `heal` do, --lab-rounds times: ping gaps from outside to a floating IP and from an
instance to outside, TCP through the floating IP and through SNAT, the heal to one active instance.

The pair part: one HA router's keepalived in two router namespaces (the
topology of tests/dataplane/hapair.py: HA link, tenant link with the router's port on both, a client), and
a continuous ping (every 50 ms) from the client to the router's address. It prints:

  * failover gap, host lost: the active instance's keepalived SIGKILLed and its links cut (what a dead
    host looks like to the standby); the gap is the time between the last reply before and the first reply
    after, p50/max over --rounds failovers. The lost host is then healed (keepalived restarted, links up)
    and comes back as standby: nopreempt keeps the new master, which the next round then kills.
  * takeover reported: from the kill to the standby's notify datagram at its agent's socket
  * failover gap, keepalived stopped: a graceful stop (SIGTERM: the master hands over at once), --graceful rounds
  * state changes while both run for --quiet seconds, optionally with --busy CPU burners running (a false
    takeover there would mean advert_int is too short for a loaded host)

Everything lives in namespaces named kb<random>-*, with addresses in 198.18.0.0/15 and 169.254.192.0/18,
and is removed at the end, even on errors: keepalived and the burners by their pids, then the namespaces.

    sudo .venv/bin/python bench/ha.py                          # 10 failovers each, advert_int 0.3 s
    sudo .venv/bin/python bench/ha.py --only lab --lab-rounds 20
    sudo .venv/bin/python bench/ha.py --rounds 20 --advert-int 1 --busy 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ha_lab  # noqa: E402
from fermion.dataplane import keepalived as ka  # noqa: E402
from fermion.dataplane import naming, netns  # noqa: E402
from tests.dataplane import hapair as hp  # noqa: E402
from tests.dataplane.lab import Pinger  # noqa: E402


class Bench(hp.HaPair):
    advert_int = ka.ADVERT_INT

    def config(self, host: str, *extra: ka.Address, routes: tuple[ka.Route, ...] = (hp.EXTRA_ROUTE,)) -> ka.Config:
        return replace(super().config(host, *extra, routes=routes), advert_int=self.advert_int)

    def drain(self) -> list[tuple[str, str]]:
        return [got for reader in self.readers.values() for got in reader.read(0)]

    def links(self, host: str, state: str) -> None:
        hp.ip(self.ns(host), f"link set {naming.ha_device(hp.HA_PORTS[host])} {state}\nlink set {hp.QR} {state}\n")


def other(host: str) -> str:
    return "r2" if host == "r1" else "r1"


def failover(pair: Bench, active: str, crash: bool) -> tuple[float, float]:
    """Kill (crash) or stop the active instance; (ping gap, seconds until the takeover was reported).
    Leaves the old active running again as standby."""
    standby = other(active)
    pair.drain()
    ping = Pinger(pair.ns("c"), hp.GATEWAY)
    try:
        ping.wait(0.0)
        time.sleep(0.3)
        at = time.time()
        if crash:
            main, vrrp = pair.agents[active].pids()
            for pid in (vrrp, main):
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
            pair.links(active, "down")
        else:
            pair.agents[active].stop()
        last = max(t for t in ping.replies if t <= at)
        if pair.wait_for_master() != standby:
            raise RuntimeError("the wrong instance took over")
        reported = time.time() - at
        resumed = ping.wait(at)
    finally:
        ping.stop()
    pair.agents[active].ensure(pair.config(active))
    if crash:
        pair.links(active, "up")
    hp.wait_until(lambda: pair.agents[active].state() == "backup", f"{active} back as standby")
    time.sleep(0.5)
    flaps = [got for got in pair.drain() if got[1] == "master"]
    if flaps or pair.agents[standby].state() != "master":
        raise RuntimeError(f"the healed instance took the router back: {flaps}")
    return resumed - last, reported


def burners(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def row(name: str, values: list[float], unit: str = "s") -> tuple[str, str, str, str]:
    if not values:
        return name, "-", "-", "0"
    return (name, f"{statistics.median(values):.2f} {unit}", f"{max(values):.2f} {unit}", str(len(values)))


def pair_rows(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    pair = Bench(prefix="kb" + uuid.uuid4().hex[:6], tmp=Path(tempfile.mkdtemp(prefix="fermion-ha-")))
    pair.advert_int = args.advert_int
    hot: list[subprocess.Popen[bytes]] = []
    crash_gaps: list[float] = []
    reports: list[float] = []
    stop_gaps: list[float] = []
    try:
        pair.build()
        active = pair.start()
        for n in range(args.rounds):
            g, r = failover(pair, active, crash=True)
            crash_gaps.append(g)
            reports.append(r)
            print(f"host lost {n + 1}/{args.rounds}: {active} -> {other(active)}: gap {g:.2f} s, reported after "
                  f"{r:.2f} s", file=sys.stderr)
            active = other(active)
        for n in range(args.graceful):
            g, _ = failover(pair, active, crash=False)
            stop_gaps.append(g)
            print(f"stop {n + 1}/{args.graceful}: gap {g:.2f} s", file=sys.stderr)
            active = other(active)
        pair.drain()
        hot = burners(args.busy)
        time.sleep(args.quiet)
        changes = pair.drain()
    finally:
        for proc in hot:
            proc.kill()
            proc.wait()
        pair.cleanup()
        shutil.rmtree(pair.tmp, ignore_errors=True)
        leftovers = netns.names(pair.prefix)
        if leftovers:
            print(f"namespaces left behind: {leftovers}", file=sys.stderr)
    return [row("pair: failover gap, host lost (ping every 50 ms)", crash_gaps),
            row("pair: takeover reported to the agent, host lost", reports),
            row("pair: failover gap, keepalived stopped", stop_gaps),
            (f"pair: state changes in {args.quiet:g} s, both up, {args.busy} CPU burners", str(len(changes)), "-",
             "1")]


def lab_rows(rounds: int) -> list[tuple[str, str, str, str]]:
    r = ha_lab.run(rounds, lambda line: print(line, file=sys.stderr))
    return [row("lab: failover gap, outside -> floating IP", r.fip_gaps),
            row("lab: failover gap, vm1 -> outside (198.19.0.1)", r.vm_gaps),
            row("lab: survivor active in the API, from the cut", r.reported),
            row("lab: heal -> one active, standby in sync", r.settled),
            ("lab: echo requests to the floating IP lost while healing", str(sum(r.lost_healing)), "-",
             str(sum(r.sent_healing))),
            ("lab: TCP through the floating IP survives", f"{sum(r.tcp_fip)}/{len(r.tcp_fip)}", "-",
             str(len(r.tcp_fip))),
            ("lab: TCP through SNAT survives", f"{sum(r.tcp_snat)}/{len(r.tcp_snat)}", "-", str(len(r.tcp_snat)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["pair", "lab"], help="one part only (default: both)")
    parser.add_argument("--rounds", type=int, default=10, help="failovers with the host lost (default 10)")
    parser.add_argument("--lab-rounds", type=int, default=10, help="failovers in the lab (default 10)")
    parser.add_argument("--graceful", type=int, default=3, help="failovers by a keepalived stop (default 3)")
    parser.add_argument("--advert-int", type=float, default=ka.ADVERT_INT,
                        help="VRRP advert interval of the pair, seconds (the lab's agents use their own)")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds both run untouched (default 10)")
    parser.add_argument("--busy", type=int, default=0, help="CPU burners running during the quiet period")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/ha.py needs root (network namespaces)", file=sys.stderr)
        return 2
    version = subprocess.run(["keepalived", "--version"], capture_output=True, text=True, check=False)
    print((version.stdout or version.stderr).splitlines()[0], f"| advert_int {args.advert_int} s",
          f"| load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    if args.only in (None, "pair"):
        rows += pair_rows(args)
    if args.only in (None, "lab"):
        rows += lab_rows(args.lab_rounds)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'metric':<{width}} | {'p50':<7} | {'max':<7} | n")
    print("-" * (width + 24))
    for name, p50, worst, n in rows:
        print(f"{name:<{width}} | {p50:<7} | {worst:<7} | {n}")
    print("\ntarget: failover gap p50 <= 2 s (issue 16); lab rows with \"survives\" count the rounds, "
          "\"lost while healing\" shows lost | sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
