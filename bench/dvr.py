#!/usr/bin/env python
"""East-west routing through a distributed router against the centralized path (needs root:
`sudo .venv/bin/python bench/dvr.py [--seconds N]`). An embedded Fermion with the lab's compute1, compute2
and network1 as `fermion lab up --dvr` makes them (L3 agents dvr, dvr and dvr_snat), and two routers with two
subnets each: one distributed, one centralized (on network1). On each: an instance of the first subnet on
compute1, one of the second subnet on compute1 and one on compute2.

Measured per router, for both pairs (same host, across hosts): TCP throughput (iperf3, one stream), the
round-trip time (ping every 10 ms, median) and the VXLAN packets the underlay carried per echo request."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataplane import embedded  # noqa: E402
from fermion.dataplane import netns  # noqa: E402
from fermion.lab import topology  # noqa: E402
from fermion.lab.instances import Api, ensure_external_network  # noqa: E402
from fermion.lab.state import LabState, state_path  # noqa: E402
from fermion.runtime.lab import LabSupervisor  # noqa: E402
from tests.dataplane.lab import Lab  # noqa: E402
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of  # noqa: E402
from tests.support.inproc_server import serve_in_thread  # noqa: E402

HOSTS = ("compute1", "compute2", "network1")
PINGS = 200


def build(lab: Lab, name: str, distributed: bool, second: int) -> dict[str, Any]:
    ext = ensure_external_network(lab.state, lab.api)
    nets = [lab.network(f"{name}-a", f"10.{second}.1.0/24"), lab.network(f"{name}-b", f"10.{second}.2.0/24")]
    router = lab.api.post("routers", {"name": name, "distributed": distributed,
                                      "external_gateway_info": {"network_id": ext["id"]}})
    for net in nets:
        put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    return {"router": router,
            "src": lab.boot(f"{name}-a", "compute1", f"{name}-src"),
            "local": lab.boot(f"{name}-b", "compute1", f"{name}-local"),
            "remote": lab.boot(f"{name}-b", "compute2", f"{name}-remote")}


def underlay_packets(lab: Lab) -> int:
    """VXLAN packets sent by every host's underlay interface so far."""
    total = 0
    for host in HOSTS:
        out = netns.run(["ip", "-n", lab.host_ns(host), "-s", "-j", "link", "show", "ul0"]).stdout
        total += json.loads(out)[0]["stats64"]["tx"]["packets"]
    return total


def rtt_and_crossings(lab: Lab, src: Any, dst: Any) -> tuple[float, float]:
    before = underlay_packets(lab)
    proc = subprocess.run(["ip", "netns", "exec", src.netns, "ping", "-c", str(PINGS), "-i", "0.01", "-W", "1",
                           dst.ip], capture_output=True, text=True, timeout=60, check=False)
    crossings = (underlay_packets(lab) - before) / PINGS / 2  # an echo request and its reply
    times = [float(x.split("time=")[1].split()[0]) for x in proc.stdout.splitlines() if "time=" in x]
    return (statistics.median(times) if times else float("nan")), crossings


def throughput(src: Any, dst: Any, seconds: float) -> float:
    """Gbit/s of one TCP stream from src to dst (iperf3)."""
    server = subprocess.Popen(["ip", "netns", "exec", dst.netns, "iperf3", "-s", "-1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["ip", "netns", "exec", src.netns, "iperf3", "-c", dst.ip, "-t", str(seconds), "-J"],
                             capture_output=True, text=True, timeout=seconds + 30, check=False).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        server.kill()
        server.wait()


def wait_pings(lab: Lab, pairs: list[tuple[str, str]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for src, dst in pairs:
        while not lab.ping(src, dst, count=1):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{src} cannot reach {dst}")
            time.sleep(0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 run length (default 5)")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("iperf3") is None:
        print("bench/dvr.py needs root and iperf3 (scripts/bootstrap installs it)", file=sys.stderr)
        return 2
    tmp, settings, app = embedded()
    state = LabState(prefix="kd" + uuid.uuid4().hex[:6], mode="embedded", endpoint="")
    supervisor: LabSupervisor | None = None
    rows: list[tuple[str, str, str, str]] = []
    try:
        with serve_in_thread(app) as endpoint:
            state.endpoint = endpoint
            topology.build(state, list(HOSTS), ["network1"], dvr=True)
            topology.build_external(state)
            state.save(state_path(tmp))
            supervisor = LabSupervisor(settings, app.transport, state_path(tmp), poll=0.2)
            supervisor.start()
            lab = Lab(api=Api(endpoint), state=state, state_dir=tmp)
            lab.wait_agents(timeout=60)
            allow_from_anywhere(lab, "icmp")
            allow_from_anywhere(lab, "tcp", 5201)
            setups = {"distributed": build(lab, "dvr", True, 41), "centralized": build(lab, "legacy", False, 42)}
            for kind, t in setups.items():
                wait_pings(lab, [(t["src"].name, t["local"].name), (t["src"].name, t["remote"].name)])
                for where in ("local", "remote"):
                    rtt, crossings = rtt_and_crossings(lab, t["src"], t[where])
                    gbits = throughput(t["src"], t[where], args.seconds)
                    label = "same host" if where == "local" else "across hosts"
                    rows.append((f"{kind}, {label}", f"{gbits:.2f} Gbit/s", f"{rtt:.3f} ms", f"{crossings:.1f}"))
                    print(f"{rows[-1]}", file=sys.stderr)
    finally:
        if supervisor is not None:
            supervisor.stop()
        topology.destroy(state)
        shutil.rmtree(tmp, ignore_errors=True)
        leftovers = netns.names(state.prefix)
        if leftovers:
            print(f"namespaces left behind: {leftovers}", file=sys.stderr)
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"\n{'east-west path':<{width}} | {'TCP':<12} | {'RTT p50':<9} | underlay packets per packet")
    print("-" * (width + 56))
    for name, gbits, rtt, crossings in rows:
        print(f"{name:<{width}} | {gbits:<12} | {rtt:<9} | {crossings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
