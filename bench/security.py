#!/usr/bin/env python
"""Security-group and floating-IP benchmark (needs root): an embedded Fermion (server, in-process transport
and agents in this process, SQLite) with emulated hosts in namespaces; prints a table:

  * a security group with --rules rules applied to --ports ports on one host: time from the API calls until
    the host's nftables enforce it for every port (the group's chain holds every rule and every port jumps
    to it), and the same proven with a packet to one port
  * one rule added to that group: time until it is enforced for all the ports (its chain is shared, so
    one change reaches every port at once), checked in the kernel, then with a TCP connection; and the
    same rule deleted: time until it is gone from the kernel
  * router create + interface + gateway + floating IP: time from the first API call, and from the floating
    IP call, until the lab's external namespace gets the first ping reply from the floating IP

Namespaces are named fs<random>-*, addresses are 198.18.0.0/15 (underlay, external) and 10.x inside
namespaces; everything is removed at the end, even on errors.

    sudo .venv/bin/python bench/security.py             # 200 ports, 1000 rules
    sudo .venv/bin/python bench/security.py --quick     # 40 ports, 200 rules
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataplane import embedded, plug_static, print_table  # noqa: E402
from fermion.dataplane.naming import tap  # noqa: E402
from fermion.lab import instances, topology  # noqa: E402
from fermion.lab.instances import Api  # noqa: E402
from fermion.lab.state import LabState, state_path  # noqa: E402
from fermion.runtime.lab import LabSupervisor  # noqa: E402
from tests.dataplane.lab import tcp_connects, tcp_listener  # noqa: E402
from tests.support.inproc_server import serve_in_thread  # noqa: E402


def nft(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "nft", *args], capture_output=True, text=True,
                          check=False).stdout


class RuleMonitor:
    """`nft monitor rules` in a namespace: when each rule change reached the kernel, as it happened (polling
    `nft list` of a 1,000-rule chain would cost tens of ms a time and steal the agent's CPU)."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "rules"], stdout=subprocess.PIPE,
                                     text=True)
        self.seen: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.2)  # subscribed before the first change

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen.append((time.perf_counter(), line.strip()))

    def wait(self, pattern: str, since: float, timeout: float) -> float:
        found = re.compile(pattern)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for at, line in list(self.seen):
                if at >= since and found.search(line):
                    return at
            time.sleep(0.002)
        raise RuntimeError(f"timed out waiting for a rule change like {pattern!r}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


PROBE = """
import socket, sys, time
ip, port, want_open = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "open"
print("ready", flush=True)
while True:
    s = socket.socket()
    s.settimeout(0.02)
    try:
        s.connect((ip, port))
        is_open = True
    except OSError:
        is_open = False
    s.close()
    if is_open == want_open:
        print(time.time(), flush=True)
        break
    time.sleep(0.005)
"""


class Prober:
    """A loop inside the client's namespace trying a TCP connection every few ms (20 ms timeout): when it first
    succeeds (or first fails), as epoch seconds; no process start in the measured time."""

    def __init__(self, ns: str, ip: str, port: int, want_open: bool) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, ip, str(port),
                                      "open" if want_open else "closed"], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def reached(self, timeout: float) -> float:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise RuntimeError("the TCP probe never saw the change") from None
        return float(out.strip())


def wait_for(check: Any, timeout: float, what: str, step: float = 0.005) -> float:
    t0 = time.perf_counter()
    while not check():
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)
    return time.perf_counter()


def put(api: Api, path: str, body: dict[str, Any]) -> Any:
    return api._ok(api.http.put(path, json=body))


def bench_group(api: Api, state: LabState, n_ports: int, n_rules: int, runs: int = 10) -> dict[str, float]:
    host_ns = state.hosts["compute1"].netns
    net = api.post("networks", {"name": "sgbench"})
    api.post("subnets", {"network_id": net["id"], "cidr": "10.70.0.0/20", "ip_version": 4, "enable_dhcp": False})
    sg = api.post("security-groups", {"name": "bench"})
    rules = [{"security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
              "port_range_min": 10000 + i, "port_range_max": 10000 + i,
              "remote_ip_prefix": f"10.{100 + i // 250}.{i % 250}.0/24"} for i in range(n_rules)]
    for i in range(0, len(rules), 200):  # bulk, in requests under the body size limit
        api._ok(api.http.post("/v2.0/security-group-rules", json={"security_group_rules": rules[i:i + 200]}))
    ports = []
    for i in range(n_ports):
        port = api.create_port({"network_id": net["id"], "binding:host_id": "compute1",
                                "device_owner": "compute:nova", "device_id": f"sg-{i}"})
        plug_static(f"{state.prefix}-vm-s{i}", host_ns, port, net["mtu"], 20)
        ports.append(port)
    client = api.create_port({"network_id": net["id"], "binding:host_id": "compute1",
                              "device_owner": "compute:nova", "device_id": "client",
                              "fixed_ips": [{"ip_address": "10.70.15.250"}]})
    plug_static(f"{state.prefix}-vm-client", host_ns, client, net["mtu"], 20)
    for port in ports:
        instances.wait_port_status(api, port["id"], "ACTIVE", 60)
    chain = f"sg-{sg['id']}-in"

    devices = {tap(p["id"]) for p in ports}

    def enforced() -> bool:
        # every port's profile (the mark its device maps to) must jump to the group's chain
        if nft(host_ns, "list", "chain", "inet", "fermion_sg", chain).count("accept") < n_rules:
            return False
        marks = dict(re.findall(r'"([^"]+)" : (0x[0-9a-f]+)',
                                nft(host_ns, "list", "map", "bridge", "fermion_sg", "port_profile")))
        if not devices <= marks.keys():
            return False
        inet = nft(host_ns, "list", "table", "inet", "fermion_sg")
        profiles = {int(marks[d], 16) for d in devices}
        return all(re.search(rf"chain in-p{m} {{[^}}]*jump {re.escape(chain)}\n", inet) for m in profiles)

    t0 = time.perf_counter()
    for port in ports:
        put(api, f"/v2.0/ports/{port['id']}", {"port": {"security_groups": [sg["id"]]}})
    api_done = time.perf_counter()
    t_enforced = wait_for(enforced, 120, "the group on every port", 0.05)
    target = ports[0]["fixed_ips"][0]["ip_address"]
    probe_ns = f"{state.prefix}-vm-s0"
    monitor = RuleMonitor(host_ns)
    adds, deletes = [], []
    try:
        for port_number in range(23, 23 + runs):  # each rule added, then deleted; timed as the kernel sees it
            t1 = time.perf_counter()
            rule = api.post("security-group-rules", {"security_group_id": sg["id"], "direction": "ingress",
                                                     "protocol": "tcp", "port_range_min": port_number,
                                                     "port_range_max": port_number})
            adds.append(monitor.wait(rf"add rule inet fermion_sg {chain} .*dport {port_number} accept", t1, 30) - t1)
            time.sleep(0.2)
            t2 = time.perf_counter()
            api._ok(api.http.delete(f"/v2.0/security-group-rules/{rule['id']}"))
            deletes.append(monitor.wait(rf"delete rule inet fermion_sg {chain} ", t2, 30) - t2)
            time.sleep(0.2)
    finally:
        monitor.close()
    with tcp_listener(probe_ns, 22):  # the same, proven with packets
        client = f"{state.prefix}-vm-client"
        if tcp_connects(client, target, 22, 1):
            raise RuntimeError("tcp 22 open before its rule exists")
        probe = Prober(client, target, 22, want_open=True)
        t1 = time.time()
        ssh = api.post("security-group-rules", {"security_group_id": sg["id"], "direction": "ingress",
                                                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22})
        t_packet = probe.reached(30)
        probe = Prober(client, target, 22, want_open=False)
        t2 = time.time()
        api._ok(api.http.delete(f"/v2.0/security-group-rules/{ssh['id']}"))
        t_closed = probe.reached(30)
    return {"apply_api": api_done - t0, "apply": t_enforced - t0, "rule": statistics.median(adds),
            "rule_max": max(adds), "rule_deleted": statistics.median(deletes), "rule_deleted_max": max(deletes),
            "rule_packet": t_packet - t1, "closed": t_closed - t2}


def bench_floating_ip(api: Api, state: LabState) -> dict[str, float]:
    ext = instances.ensure_external_network(state, api)
    net = api.post("networks", {"name": "fipbench"})
    sub = api.post("subnets", {"network_id": net["id"], "cidr": "10.80.0.0/24", "ip_version": 4,
                               "enable_dhcp": False})
    port = api.create_port({"network_id": net["id"], "binding:host_id": "compute1", "device_owner": "compute:nova",
                            "device_id": "fip-vm"})
    vm_ns = f"{state.prefix}-vm-fip"
    plug_static(vm_ns, state.hosts["compute1"].netns, port, net["mtu"], 24)
    subprocess.run(["ip", "-n", vm_ns, "route", "add", "default", "via", "10.80.0.1"], check=True)
    groups = api._ok(api.http.get("/v2.0/security-groups", params={"name": "default", "project_id": "admin"}))
    api.post("security-group-rules", {"security_group_id": groups["security_groups"][0]["id"],
                                      "direction": "ingress", "protocol": "icmp"})
    instances.wait_port_status(api, port["id"], "ACTIVE", 30)
    t0 = time.perf_counter()
    router = api.post("routers", {"name": "fip-router"})
    put(api, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    put(api, f"/v2.0/routers/{router['id']}", {"router": {"external_gateway_info": {"network_id": ext["id"]}}})
    t1 = time.perf_counter()
    fip = api.post("floatingips", {"floating_network_id": ext["id"], "port_id": port["id"]})
    pinger = subprocess.Popen(["ip", "netns", "exec", state.external, "ping", "-D", "-n", "-i", "0.01", "-W", "1",
                               "-w", "20", "-c", "1", fip["floating_ip_address"]], stdout=subprocess.PIPE, text=True)
    out, _ = pinger.communicate()
    if pinger.returncode != 0:
        raise RuntimeError(f"no reply from the floating IP: {out}")
    t_reply = time.perf_counter()
    return {"all": t_reply - t0, "fip": t_reply - t1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=200)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.ports, args.rules = 40, 200
    tmp, settings, app = embedded()
    prefix = "fs" + uuid.uuid4().hex[:6]
    state = LabState(prefix=prefix, mode="embedded", endpoint="")
    rows: list[tuple[str, str, str]] = []
    supervisor = None
    try:
        with serve_in_thread(app) as endpoint:
            state.endpoint = endpoint
            topology.build(state, ["compute1", "network1"], "network1")
            topology.build_external(state)
            state.save(state_path(tmp))
            supervisor = LabSupervisor(settings, app.transport, state_path(tmp), poll=0.2)
            supervisor.start()
            api = Api(endpoint)
            wait_for(lambda: sum(a["alive"] for a in api.agents()) >= 4, 30, "agents", 0.1)
            g = bench_group(api, state, args.ports, args.rules)
            rows.append((f"group of {args.rules} rules onto {args.ports} ports: API calls", f"{g['apply_api']:.2f} s",
                         ""))
            rows.append((f"group of {args.rules} rules onto {args.ports} ports: enforced", f"{g['apply']:.2f} s", ""))
            rows.append((f"one rule added -> in the kernel for all {args.ports} ports, median / max of 10",
                         f"{g['rule'] * 1000:.0f} / {g['rule_max'] * 1000:.0f} ms", "<= 200 ms"))
            rows.append((f"one rule deleted -> out of the kernel for all {args.ports} ports, median / max",
                         f"{g['rule_deleted'] * 1000:.0f} / {g['rule_deleted_max'] * 1000:.0f} ms", "<= 200 ms"))
            rows.append(("one rule added -> first TCP connection through it", f"{g['rule_packet'] * 1000:.0f} ms",
                         ""))
            rows.append(("that rule deleted -> new TCP connections refused", f"{g['closed'] * 1000:.0f} ms", ""))
            f = bench_floating_ip(api, state)
            rows.append(("router + interface + gateway + floating IP -> first reply", f"{f['all']:.2f} s", ""))
            rows.append(("floating IP call -> first reply from the external namespace", f"{f['fip']:.2f} s",
                         "<= 2 s"))
    finally:
        if supervisor is not None:
            supervisor.stop()
        topology.destroy(state)
    print_table(rows, 12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
