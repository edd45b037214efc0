#!/usr/bin/env python
"""The service plugins' benchmarks one after the other (needs root: `sudo .venv/bin/python bench/services.py`),
each printing its own table:

  * bench/qos.py              API call -> limits on every tap, a QoS policy on 200 ports
  * bench/fwaas.py            a firewall rule on a router with 50 ports -> in the kernel; TCP throughput through
                              a router with a group of 1,000 rules against none (target >= 90 %)
  * bench/port_forwarding.py  API call -> the first connection through a new port forwarding
  * bench/metering.py         rendering and reading a router's metering counters; the server taking reports

--quick passes --quick to those that have it (fewer ports and rounds)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {"qos": ["--quick"], "fwaas": ["--quick"], "port_forwarding": ["--rounds", "5"], "metering": []}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("only", nargs="*", help=f"run only these ({', '.join(BENCHES)})")
    args = parser.parse_args()
    unknown = set(args.only) - set(BENCHES)
    if unknown:
        parser.error(f"no benchmark {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        print("bench/services.py needs root (network namespaces)", file=sys.stderr)
        return 2
    failed = []
    for name, quick in BENCHES.items():
        if args.only and name not in args.only:
            continue
        print(f"\n==== bench/{name}.py", flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else [])], check=False)
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
