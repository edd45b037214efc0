#!/usr/bin/env python
"""Agent failover benchmark (needs root): an embedded Fermion (server, in-process transport and agents in this
process, SQLite) with compute1 and two network hosts, a legacy router with a floating IP for an instance, and
the instance's network served by the router's host's DHCP agent alone (dhcp_agents_per_network 1). Each round
loses the host that carries both (its agents stopped, its wires cut), the server moves them to the other
network host after agent_down_time, and it prints:

  * legacy router rescheduling gap: continuous pings (every 50 ms) from the external namespace to the floating
    IP, and from the instance to the external gateway (SNAT); the time between the last reply before the loss
    and the first after, p50/max over --rounds
  * router shown on the other agent: from the loss until GET /routers/{id}/l3-agents names the other host
    (agent_down_time, then up to half of it until the server's next check)
  * DHCP takeover: a DHCP client in a second instance asking again and again (one DISCOVER, 1 s timeout):
    the time between its last lease before the loss and its first after, from the DHCP port that moved to
    the other host with its address
The lost host then comes back (fresh agents remove its stale router and DHCP server, then its wires go up)
and the next round loses the other one.

Everything lives in namespaces named ft<random>-*, addresses are 198.18.0.0/15 and 10.1.0.0/24 inside
namespaces, and everything is removed at the end, even on errors.

    sudo .venv/bin/python bench/failover.py                      # 5 rounds, agent_down_time 6 s (the lab's)
    sudo .venv/bin/python bench/failover.py --rounds 10 --down-time 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fermion.lab.state import LabInstance  # noqa: E402
from fermion.lab.topology import EXTERNAL_GATEWAY  # noqa: E402
from tests.dataplane.conftest import embedded_lab  # noqa: E402
from tests.dataplane.failover import gap, heal, l3_hosts, legacy_router, lose  # noqa: E402
from tests.dataplane.lab import (  # noqa: E402
    PRINT_ENV,
    Lab,
    Pinger,  # noqa: E402
)

NETWORK_HOSTS = ("network1", "network2")


class DhcpClient:
    """udhcpc in an instance's namespace, one DISCOVER at a time; for each lease it got, when it asked and when
    it had it (epoch seconds)."""

    def __init__(self, inst: LabInstance, script: Path) -> None:
        self.inst = inst
        self.script = script
        self.leases: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            asked = time.time()
            proc = subprocess.run(["ip", "netns", "exec", self.inst.netns, "udhcpc", "-i", "eth0", "-n", "-q", "-f",
                                   "-t", "1", "-T", "1", "-A", "0", "-s", str(self.script)],
                                  capture_output=True, text=True, timeout=30, check=False)
            if proc.returncode == 0 and f"ip={self.inst.ip}" in proc.stdout:
                self.leases.append((asked, time.time()))
            else:
                time.sleep(0.05)

    def leased_after(self, at: float) -> bool:
        return any(asked > at for asked, _ in self.leases)

    def gap(self, at: float) -> float | None:
        """From the last lease had before `at` to the first asked for after it."""
        before = [got for _, got in self.leases if got <= at]
        after = [got for asked, got in self.leases if asked > at]
        return after[0] - before[-1] if before and after else None

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)


def one_round(lab: Lab, t: dict[str, Any], host: str, client: DhcpClient) -> dict[str, float]:
    """Lose the host that carries the router and DHCP; the gaps. Heals it afterwards."""
    (other,) = set(NETWORK_HOSTS) - {host}
    rid = t["router"]["id"]
    inbound, outbound = Pinger(lab.state.external, t["fip"]), Pinger(t["vm1"].netns, EXTERNAL_GATEWAY)
    try:
        lab.wait(lambda: inbound.replies and outbound.replies and client.leases, 30, "pings and leases before")
        time.sleep(0.5)
        at = lose(lab, host)
        lab.wait(lambda: l3_hosts(lab, rid) == [other], 60, "the router to move")
        shown = time.time() - at
        lab.wait(lambda: inbound.answered_after(at) and outbound.answered_after(at) and client.leased_after(at),
                 60, "traffic and leases after")
    finally:
        inbound.stop()
        outbound.stop()
    out = {"fip": gap(inbound.replies, at), "snat": gap(outbound.replies, at), "api": shown,
           "dhcp": client.gap(at)}
    heal(lab, host)
    return {k: v for k, v in out.items() if v is not None}


def row(name: str, values: list[float]) -> tuple[str, str, str, str]:
    if not values:
        return name, "-", "-", "0"
    return name, f"{statistics.median(values):.2f} s", f"{max(values):.2f} s", str(len(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="hosts lost (default 5)")
    parser.add_argument("--down-time", type=float, default=6.0, help="[agents] agent_down_time (default 6 s)")
    parser.add_argument("--report-interval", type=float, default=1.0, help="[agents] report_interval (default 1 s)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/failover.py needs root (network namespaces)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="fermion-failover-"))
    script = tmp / "print-env.sh"
    script.write_text(PRINT_ENV)
    script.chmod(0o755)
    sections = {"agents": {"agent_down_time": args.down_time, "report_interval": args.report_interval}}
    results: dict[str, list[float]] = {"fip": [], "snat": [], "api": [], "dhcp": []}
    with embedded_lab(tmp, sections=sections, hosts=["compute1", *NETWORK_HOSTS],
                      network_hosts=NETWORK_HOSTS) as lab:
        t = legacy_router(lab)
        vm2 = lab.boot("net1", "compute1", "vm2")
        client = DhcpClient(vm2, script)
        host = t["host"]
        try:
            for i in range(args.rounds):
                got = one_round(lab, t, host, client)
                for key, value in got.items():
                    results[key].append(value)
                print(f"round {i + 1}/{args.rounds}: {host} lost: " + ", ".join(f"{k} {v:.2f} s" for k, v in
                                                                                 got.items()), file=sys.stderr)
                (host,) = set(NETWORK_HOSTS) - {host}
        finally:
            client.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    interval = max(args.down_time / 2, 1.0)
    rows = [row("legacy router rescheduling gap, external -> floating IP", results["fip"]),
            row("legacy router rescheduling gap, instance -> external (SNAT)", results["snat"]),
            row("router shown on the other L3 agent (API), from the loss", results["api"]),
            row("DHCP takeover, lease gap (one DHCP agent per network)", results["dhcp"])]
    width = max(len(r[0]) for r in rows)
    print(f"\nagent_down_time {args.down_time:g} s, report_interval {args.report_interval:g} s, check every "
          f"{interval:g} s, load {os.getloadavg()[0]:.1f}")
    print(f"{'metric':<{width}} | {'p50':<7} | {'max':<7} | n")
    print("-" * (width + 24))
    for name, p50, worst, n in rows:
        print(f"{name:<{width}} | {p50:<7} | {worst:<7} | {n}")
    print(f"\nexpected: agent_down_time < detection <= agent_down_time + {interval:g} s (+1 s: heartbeats are "
          "kept to the second), then the new host's agents build the router and the DHCP server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
