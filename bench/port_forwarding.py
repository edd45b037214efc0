#!/usr/bin/env python
"""Port forwarding benchmark (needs root): an embedded Fermion (server, in-process transport and agents in this
process, SQLite) with an instance behind a router, and the lab's external namespace as the client. It prints,
p50 and max over --rounds:

  * added to a floating IP in use: from the POST of a forwarding (a new external port of a floating IP that
    already forwards another) until a TCP connection from outside through it first succeeds
  * first of a fresh floating IP: the same for a floating IP's first forwarding (its address comes to qg-)
  * removed: from the DELETE until a connection through it is first refused

A prober in the external namespace connects in a loop (every 5 ms) from before the API call, so neither
process start-up nor the prober's own latency is counted beyond a few milliseconds.

Everything lives in the lab's namespaces (198.18.0.0/15 outside, 10.x inside), removed at the end.

    sudo .venv/bin/python bench/port_forwarding.py               # 10 rounds
    sudo .venv/bin/python bench/port_forwarding.py --rounds 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dataplane.conftest import embedded_lab  # noqa: E402
from tests.dataplane.lab import Lab, tcp_listener  # noqa: E402
from tests.dataplane.test_l3 import allow_from_anywhere, routed_pair  # noqa: E402

# connects until the outcome wanted ("open" or "refused"), then prints the CLOCK_MONOTONIC time it happened
PROBE = """
import socket, sys, time
ip, port, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print("ready", flush=True)
while True:
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect((ip, port))
        got = "open"
    except ConnectionRefusedError:
        got = "refused"
    except OSError:
        got = "other"
    s.close()
    if got == want:
        print(time.monotonic(), flush=True)
        break
    time.sleep(0.005)
"""


def timed(lab: Lab, ip: str, port: int, want: str, action: Any, timeout: float = 30.0) -> tuple[float, Any]:
    """Seconds from action() until a connection to ip:port from outside is `want`, and what action returned."""
    proc = subprocess.Popen(["ip", "netns", "exec", lab.state.external, sys.executable, "-c", PROBE, ip, str(port),
                             want], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        result = action()
        out, _ = proc.communicate(timeout=timeout)
        return float(out.strip()) - started, result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def forward(lab: Lab, fip_id: str, vm_port: str, external: int) -> dict[str, Any]:
    body = {"port_forwarding": {"internal_port_id": vm_port, "internal_port": 22, "external_port": external,
                                "protocol": "tcp"}}
    return lab.api._ok(lab.api.http.post(f"/v2.0/floatingips/{fip_id}/port_forwardings", json=body))[
        "port_forwarding"]  # type: ignore[no-any-return]


def drop(lab: Lab, fip_id: str, pf_id: str) -> None:
    assert lab.api.http.delete(f"/v2.0/floatingips/{fip_id}/port_forwardings/{pf_id}").status_code == 204


def run(rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"added to a floating IP in use": [], "first of a fresh floating IP": [],
                                   "removed": []}
    with tempfile.TemporaryDirectory(prefix="pfbench-") as tmp, embedded_lab(Path(tmp)) as lab:
        t = routed_pair(lab)
        vm1, vm2 = t["vm1"], t["vm2"]
        allow_from_anywhere(lab, "tcp", 22)
        fip = lab.api.post("floatingips", {"floating_network_id": t["ext"]["id"]})
        address = fip["floating_ip_address"]
        with tcp_listener(vm1.netns, 22), tcp_listener(vm2.netns, 22):
            forward(lab, fip["id"], vm2.port_id, 2200)  # keeps the floating IP in use (one socket, one forwarding)
            timed(lab, address, 2200, "open", lambda: None)  # the floating IP answers
            for n in range(rounds):
                port = 3000 + n
                took, made = timed(lab, address, port, "open", lambda p=port: forward(lab, fip["id"], vm1.port_id, p))
                out["added to a floating IP in use"].append(took)
                took, _ = timed(lab, address, port, "refused", lambda pf=made: drop(lab, fip["id"], pf["id"]))
                out["removed"].append(took)
                fresh = lab.api.post("floatingips", {"floating_network_id": t["ext"]["id"]})
                took, first = timed(lab, fresh["floating_ip_address"], 2222, "open",
                                    lambda f=fresh: forward(lab, f["id"], vm1.port_id, 2222))
                out["first of a fresh floating IP"].append(took)
                drop(lab, fresh["id"], first["id"])
                lab.api._ok(lab.api.http.delete(f"/v2.0/floatingips/{fresh['id']}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    results = run(args.rounds)
    print(f"{'port forwarding: API call to enforced':<40} {'p50 ms':>8} {'max ms':>8} {'n':>4}")
    for name, values in results.items():
        print(f"{name:<40} {statistics.median(values) * 1000:8.0f} {max(values) * 1000:8.0f} {len(values):4d}")


if __name__ == "__main__":
    main()
