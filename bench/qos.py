#!/usr/bin/env python
"""QoS benchmark (needs root): an embedded Fermion with emulated hosts in namespaces; --ports ports on
compute1 (static addresses, taps plugged as a hypervisor would), then prints a table:

  * a policy (egress and ingress limits, a DSCP mark) set on their network with one API call: time until
    every tap has both limits in the kernel (tc on the tap and on its ifb)
  * one rule of that policy changed (the limit): time until every tap has the new rate
  * the policy taken off the network: time until no tap is limited any more

Namespaces are named fq<random>-*, addresses 198.18.0.0/15 (underlay) and 10.x inside namespaces; everything
is removed at the end, even on errors.

    sudo .venv/bin/python bench/qos.py              # 200 ports
    sudo .venv/bin/python bench/qos.py --quick      # 40 ports
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataplane import embedded, plug_static, print_table  # noqa: E402
from fermion.dataplane import qos as dq  # noqa: E402
from fermion.dataplane.naming import tap  # noqa: E402
from fermion.lab import instances, topology  # noqa: E402
from fermion.lab.instances import Api  # noqa: E402
from fermion.lab.state import LabState, state_path  # noqa: E402
from fermion.runtime.lab import LabSupervisor  # noqa: E402
from tests.support.inproc_server import serve_in_thread  # noqa: E402


def wait_for(check: Any, timeout: float, what: str, step: float = 0.01) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)
    return time.perf_counter() - started


def rates(host_ns: str) -> dict[str, int]:
    """Every tbf in the host: device -> rate in kbit/s."""
    return {dev: rate for dev, (rate, _) in dq.observe(host_ns).tbf.items()}


def bench(api: Api, state: LabState, n_ports: int, runs: int) -> dict[str, list[float]]:
    host_ns = state.hosts["compute1"].netns
    net = api.post("networks", {"name": "qosbench"})
    api.post("subnets", {"network_id": net["id"], "cidr": "10.80.0.0/20", "ip_version": 4, "enable_dhcp": False})
    ports = []
    for i in range(n_ports):
        port = api.create_port({"network_id": net["id"], "binding:host_id": "compute1",
                                "device_owner": "compute:nova", "device_id": f"q-{i}"})
        plug_static(f"{state.prefix}-vm-q{i}", host_ns, port, net["mtu"], 20)
        ports.append(port)
    for port in ports:
        instances.wait_port_status(api, port["id"], "ACTIVE", 60)
    taps = [tap(p["id"]) for p in ports]
    ifbs = [dq.ifb_name(t) for t in taps]
    policy = api._ok(api.http.post("/v2.0/qos/policies", json={"policy": {"name": "bench"}}))["policy"]
    limits = {}
    for direction in ("egress", "ingress"):
        limits[direction] = api._ok(api.http.post(f"/v2.0/qos/policies/{policy['id']}/bandwidth_limit_rules", json={
            "bandwidth_limit_rule": {"max_kbps": 50000, "direction": direction}}))["bandwidth_limit_rule"]
    api._ok(api.http.post(f"/v2.0/qos/policies/{policy['id']}/dscp_marking_rules",
                          json={"dscp_marking_rule": {"dscp_mark": 46}}))
    out: dict[str, list[float]] = {"set": [], "rule": [], "unset": []}
    for run in range(runs):
        t0 = time.perf_counter()
        api._ok(api.http.put(f"/v2.0/networks/{net['id']}", json={"network": {"qos_policy_id": policy["id"]}}))
        rate = 50000 + run
        wait_for(lambda: all(rates(host_ns).get(d) is not None for d in taps + ifbs), 60, "the limits")
        out["set"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        api._ok(api.http.put(f"/v2.0/qos/policies/{policy['id']}/bandwidth_limit_rules/{limits['ingress']['id']}",
                             json={"bandwidth_limit_rule": {"max_kbps": rate + 1000}}))
        wait_for(lambda: all(rates(host_ns).get(d) == rate + 1000 for d in taps), 60, "the new rate")  # noqa: B023
        out["rule"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        api._ok(api.http.put(f"/v2.0/networks/{net['id']}", json={"network": {"qos_policy_id": None}}))
        wait_for(lambda: not set(rates(host_ns)) & set(taps + ifbs), 60, "the limits to go")
        out["unset"].append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.ports, args.runs = 40, 2
    tmp, settings, app = embedded()
    state = LabState(prefix="fq" + uuid.uuid4().hex[:6], mode="embedded", endpoint="")
    rows: list[tuple[str, str, str]] = []
    supervisor = None
    try:
        with serve_in_thread(app) as endpoint:
            state.endpoint = endpoint
            topology.build(state, ["compute1", "network1"], "network1")
            state.save(state_path(tmp))
            supervisor = LabSupervisor(settings, app.transport, state_path(tmp), poll=0.2)
            supervisor.start()
            api = Api(endpoint)
            wait_for(lambda: sum(a["alive"] for a in api.agents()) >= 4, 30, "agents", 0.1)
            got = bench(api, state, args.ports, args.runs)

            def cell(values: list[float]) -> str:
                return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f} ms"

            n = args.ports
            rows.append((f"policy set on the network -> limits on all {n} taps (median / max of {args.runs})",
                         cell(got["set"]), "<= 1 s"))
            rows.append((f"a rule's limit changed -> new rate on all {n} taps", cell(got["rule"]), "<= 1 s"))
            rows.append((f"policy off the network -> no limit on any of the {n} taps", cell(got["unset"]), ""))
    finally:
        if supervisor is not None:
            supervisor.stop()
        topology.destroy(state)
    print_table(rows, 16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
