#!/usr/bin/env python
"""The firewall's part of an L2 agent's periodic full resync, before and after it reads its tables back to
repair drift (needs root): one emulated host namespace (fr<random>-h, removed at the end, even on errors)
with our two nftables tables for --ports ports in 20 groups of 50 rules (1,000 rules, remote groups as
sets); a full resync that finds the kernel right, as Firewall.apply(audit=True) (before: no read-back) and
apply(audit=True, repair=True) (after: one `nft list table` per table, parsed and compared); the median of
--runs each; then one element deleted by hand and repaired.

    sudo .venv/bin/python bench/repair.py                  # 200 and 500 ports
    sudo .venv/bin/python bench/repair.py --ports 1000
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fermion.dataplane import naming, netns  # noqa: E402
from fermion.dataplane.firewall import TABLE, Firewall, FirewallState, Group, PortFilter, Rule  # noqa: E402


def scale(ports: int) -> FirewallState:
    gids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(20)]
    groups = []
    for gi, gid in enumerate(gids):
        rules = [Rule("egress", "IPv4", None), Rule("egress", "IPv6", None)]
        rules += [Rule("ingress", "IPv4", 6, 1000 + r, 1000 + r,
                       remote_ip_prefix=f"10.{gi}.{r}.0/24" if r % 2 else None,
                       remote_group=gids[(gi + 1) % 20] if r % 2 == 0 else None) for r in range(48)]
        groups.append(Group(gid, True, tuple(rules)))
    filters = []
    for p in range(ports):
        pid = f"{p:08x}-1111-4222-8333-{p:012x}"
        filters.append(PortFilter(pid, naming.tap(pid), f"fa:16:3e:10:{p >> 8:02x}:{p & 255:02x}",
                                  (f"10.200.{p >> 8}.{p & 255}",), groups=(gids[p % 20], gids[(p + 1) % 20])))
    members = {g: tuple(f"10.200.{p >> 8}.{p & 255}" for p in range(ports) if p % 20 == i) for i, g in enumerate(gids)}
    return FirewallState(tuple(filters), tuple(groups), members)


def median_ms(fw: Firewall, state: FirewallState, repair: bool, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        if fw.apply(state, audit=True, repair=repair):
            raise RuntimeError("an undrifted kernel was changed")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ports", type=int, action="append")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    ns = f"fr{secrets.token_hex(2)}-h"
    netns.create(ns)
    try:
        print("| ports | full resync, before (ms) | after: with read-back (ms) | one element repaired (ms) |")
        print("|---|---|---|---|")
        for ports in args.ports or [200, 500]:
            fw = Firewall(ns)
            state = scale(ports)
            fw.apply(state, full=True)
            before, after = median_ms(fw, state, False, args.runs), median_ms(fw, state, True, args.runs)
            subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "element", "bridge", TABLE, "port_profile",
                            f'{{ "{state.ports[0].device}" }}'], check=True)
            started = time.perf_counter()
            assert fw.apply(state, audit=True, repair=True) == 1
            fixed = (time.perf_counter() - started) * 1000
            print(f"| {ports} | {before:.0f} | {after:.0f} | {fixed:.0f} |")
            fw.remove()
            fw.close()
    finally:
        netns.delete(ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
