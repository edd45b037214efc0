#!/usr/bin/env python
"""HA router failover in the lab (needs root; `sudo .venv/bin/python bench/ha_lab.py [--rounds N]`): an
embedded Fermion with
compute1, network1 and network2, an HA router ("ha": true, made by the admin) on the two network hosts,
vm1 on compute1 with a floating IP and vm2 on compute1 without one. Each round loses the host of the
router's active instance as `fermion lab fail` does (the same code: agents stopped, wires cut, keepalived
killed, router namespaces gone), then heals it as `fermion lab heal` does, and waits until exactly one
instance is active and the other is a standby in sync; the next round loses the other host.

Measured per round: the gap of a ping every 50 ms from the lab's external namespace to the floating IP and
from vm1 to the external gateway (198.19.0.1), from the last reply before the wires were cut to the first
after; when the API shows the survivor active; whether a TCP connection through the floating IP (outside to
vm1) and one through SNAT (vm2 to outside) carry on; the echo requests to the floating IP lost while the
host comes back; and the time from the heal to one active instance with the standby in sync (its agents
synced, keepalived running as backup)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataplane import embedded  # noqa: E402
from fermion.dataplane import keepalived, netns  # noqa: E402
from fermion.lab import failure, topology  # noqa: E402
from fermion.lab.instances import Api, ensure_external_network  # noqa: E402
from fermion.lab.state import LabState, state_path  # noqa: E402
from fermion.lab.topology import EXTERNAL_GATEWAY  # noqa: E402
from fermion.runtime.lab import LabSupervisor  # noqa: E402
from tests.dataplane.lab import Lab, Pinger, Session, echo_server, lost_while, ping_ns  # noqa: E402
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of  # noqa: E402
from tests.dataplane.test_l3_ha import NETWORK_HOSTS, active_host, hosting  # noqa: E402
from tests.support.inproc_server import serve_in_thread  # noqa: E402

FIP_PORT, SNAT_PORT = 7, 8  # echo servers in vm1 (behind the floating IP) and in the external namespace
WAIT = 30.0  # seconds any one step may take before the round fails


@dataclass
class Results:
    fip_gaps: list[float] = field(default_factory=list)
    vm_gaps: list[float] = field(default_factory=list)
    reported: list[float] = field(default_factory=list)
    settled: list[float] = field(default_factory=list)
    lost_healing: list[int] = field(default_factory=list)
    sent_healing: list[int] = field(default_factory=list)
    tcp_fip: list[bool] = field(default_factory=list)
    tcp_snat: list[bool] = field(default_factory=list)


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = WAIT) -> float:
    """Seconds until predicate() held (RuntimeError after timeout)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - start


def gap(replies: list[float], at: float) -> float:
    before = [t for t in replies if t <= at]
    after = [t for t in replies if t > at]
    if not before or not after:
        raise RuntimeError("no reply before or after the failure")
    return after[0] - before[-1]


def build(lab: Lab) -> dict[str, Any]:
    ext = lab.api.network("public")
    net = lab.network("net1", "10.1.0.0/24")
    router = lab.api.post("routers", {"name": "r-ha", "ha": True, "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    vm1 = lab.boot("net1", "compute1", "vm1")
    vm2 = lab.boot("net1", "compute1", "vm2")
    allow_from_anywhere(lab, "icmp")
    allow_from_anywhere(lab, "tcp", FIP_PORT)
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    return {"router": router["id"], "vm1": vm1, "vm2": vm2, "fip": fip["floating_ip_address"]}


def in_sync(lab: Lab, router_id: str, active: str, standby: str) -> bool:
    """Exactly one instance active, the other's agents synced and its keepalived running as backup."""
    agents = lab.extra["supervisor"].running.get(standby, [])
    workdir = lab.state_dir / "l3" / standby / "ha" / router_id
    return (hosting(lab, router_id) == {active: "active", standby: "standby"}
            and bool(agents) and all(a.synced.is_set() for a in agents)
            and keepalived.Keepalived(workdir).state() == "backup")


def one_round(lab: Lab, t: dict[str, Any], lost: str, results: Results) -> str:
    """Lose the active host, measure, heal it; returns the new active host."""
    rid, fip = t["router"], t["fip"]
    (survivor,) = set(NETWORK_HOSTS) - {lost}
    ext_ns, vm1_ns, vm2_ns = lab.state.external, t["vm1"].netns, t["vm2"].netns
    via_fip = Session(ext_ns, fip, FIP_PORT, wait=20.0)
    via_snat = Session(vm2_ns, EXTERNAL_GATEWAY, SNAT_PORT, wait=20.0)
    outside, inside = Pinger(ext_ns, fip), Pinger(vm1_ns, EXTERNAL_GATEWAY)
    try:
        if via_fip.say("before") != "before" or via_snat.say("before") != "before":
            raise RuntimeError("a TCP connection does not work before the failure")
        outside.wait(0.0)
        inside.wait(0.0)
        time.sleep(0.5)
        down = failure.fail(lab.state, lab.state_dir, lost)
        outside.wait(down.cut_at, WAIT)
        inside.wait(down.cut_at, WAIT)
        wait_until(f"{survivor} active in the API", lambda: hosting(lab, rid).get(survivor) == "active")
        results.reported.append(time.time() - down.cut_at)
        results.tcp_fip.append(via_fip.say("after", timeout=25.0) == "after")
        results.tcp_snat.append(via_snat.say("after", timeout=25.0) == "after")
    finally:
        from_outside, from_vm1 = outside.stop(), inside.stop()
        via_fip.close()
        via_snat.close()
    results.fip_gaps.append(gap(from_outside, down.cut_at))
    results.vm_gaps.append(gap(from_vm1, down.cut_at))
    healed: dict[str, float] = {}

    def heal() -> None:
        start = time.monotonic()
        failure.heal(lab.state, lab.state_dir, lost)
        wait_until("one active instance and the standby in sync", lambda: in_sync(lab, rid, survivor, lost))
        healed["at"] = time.monotonic() - start

    sent, missed = lost_while(ext_ns, fip, heal)
    results.settled.append(healed["at"])
    results.sent_healing.append(sent)
    results.lost_healing.append(len(missed))
    return survivor


def run(rounds: int, log: Callable[[str], None]) -> Results:
    tmp, settings, app = embedded()
    state = LabState(prefix="kl" + uuid.uuid4().hex[:6], mode="embedded", endpoint="")
    results = Results()
    supervisor: LabSupervisor | None = None
    try:
        with serve_in_thread(app) as endpoint:
            state.endpoint = endpoint
            topology.build(state, ["compute1", *NETWORK_HOSTS], list(NETWORK_HOSTS))
            topology.build_external(state)
            state.save(state_path(tmp))
            supervisor = LabSupervisor(settings, app.transport, state_path(tmp), poll=0.2)
            supervisor.start()
            lab = Lab(api=Api(endpoint), state=state, state_dir=tmp, extra={"supervisor": supervisor})
            lab.wait_agents()
            ensure_external_network(state, lab.api)
            t = build(lab)
            wait_until("one active instance", lambda: active_host(lab, t["router"]) is not None)
            wait_until("the floating IP to answer", lambda: ping_ns(state.external, t["fip"], count=1))
            with echo_server(t["vm1"].netns, FIP_PORT), echo_server(state.external, SNAT_PORT):
                active = active_host(lab, t["router"])
                assert active is not None
                for n in range(rounds):
                    survivor = one_round(lab, t, active, results)
                    log(f"lab round {n + 1}/{rounds}: {active} lost -> {survivor}: gap outside->FIP "
                        f"{results.fip_gaps[-1]:.2f} s, vm1->outside {results.vm_gaps[-1]:.2f} s, reported after "
                        f"{results.reported[-1]:.2f} s, TCP via FIP {'kept' if results.tcp_fip[-1] else 'lost'}, "
                        f"via SNAT {'kept' if results.tcp_snat[-1] else 'lost'}; healed, in sync after "
                        f"{results.settled[-1]:.2f} s, {results.lost_healing[-1]} of {results.sent_healing[-1]} "
                        "echo requests lost meanwhile")
                    active = survivor
    finally:
        if supervisor is not None:
            supervisor.stop()
        topology.destroy(state)
        shutil.rmtree(tmp, ignore_errors=True)
        leftovers = netns.names(state.prefix)
        if leftovers:
            log(f"namespaces left behind: {leftovers}")
    return results


def _row(name: str, values: list[float]) -> tuple[str, str, str, str]:
    if not values:
        return (name, "-", "-", "0")
    return (name, f"{statistics.median(values):.2f} s", f"{max(values):.2f} s", str(len(values)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="failovers (default 10)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/ha_lab.py needs root (network namespaces)", file=sys.stderr)
        return 2
    r = run(args.rounds, lambda line: print(line, file=sys.stderr))
    rows = [_row("failover gap, outside -> floating IP", r.fip_gaps),
            _row("failover gap, vm1 -> outside (198.19.0.1)", r.vm_gaps),
            _row("survivor active in the API, from the cut", r.reported),
            _row("heal -> one active, standby in sync", r.settled),
            ("echo requests to the floating IP lost while healing", str(sum(r.lost_healing)), "-",
             str(sum(r.sent_healing))),
            ("TCP through the floating IP survives", f"{sum(r.tcp_fip)}/{len(r.tcp_fip)}", "-", str(len(r.tcp_fip))),
            ("TCP through SNAT survives", f"{sum(r.tcp_snat)}/{len(r.tcp_snat)}", "-", str(len(r.tcp_snat)))]
    width = max(len(x[0]) for x in rows)
    print(f"\n{'metric':<{width}} | {'p50':<7} | {'max':<7} | n")
    print("-" * (width + 24))
    for name, p50, worst, n in rows:
        print(f"{name:<{width}} | {p50:<7} | {worst:<7} | {n}")
    print("\ntarget: failover gap p50 <= 2 s (issue 16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
