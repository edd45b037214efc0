"""Metering with real packets, in embedded mode: a known number of UDP bytes through a router, read back from
the label's counters in the API (within 1 %), egress and ingress, an excluded source not counted, Neutron's
remote_ip_prefix meaning kept, and the count carried over when the router's table is made anew."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fermion.dataplane import metering as dp
from fermion.dataplane import naming
from fermion.dataplane.netns import terminate
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.lab import Lab, ping_ns
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of

LABELS = "/v2.0/metering/metering-labels"
SINK_PORT = 9099
HEADERS = 28  # IPv4 + UDP: what an nft counter counts on top of the payload


@contextmanager
def udp_sink(ns: str) -> Iterator[None]:
    """Something listening on SINK_PORT, so that nothing answers the datagrams (no ICMP port unreachable)."""
    code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind(('0.0.0.0', {SINK_PORT}))\nwhile True:\n    s.recv(65535)\n")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c", code])
    try:
        time.sleep(0.3)
        yield
    finally:
        terminate([proc.pid])
        proc.wait()


def send_udp(ns: str, target: str, count: int, size: int) -> None:
    """count datagrams of size payload bytes, paced so that no queue on the way drops any."""
    code = ("import socket, time, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"for _ in range({count}):\n    s.sendto(b'x' * {size}, ('{target}', {SINK_PORT}))\n"
            "    time.sleep(0.002)\n")
    subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", code], check=True, timeout=30)


def make_label(lab: Lab, name: str, *rules: dict[str, Any]) -> str:
    label = lab.api._ok(lab.api.http.post(LABELS, json={"metering_label": {"name": name}}))["metering_label"]
    for rule in rules:
        lab.api._ok(lab.api.http.post("/v2.0/metering/metering-label-rules", json={
            "metering_label_rule": {"metering_label_id": label["id"], **rule}}))
    return str(label["id"])


def counted(lab: Lab, label_id: str) -> tuple[int, int]:
    body = lab.api._ok(lab.api.http.get(f"{LABELS}/{label_id}/counters"))["counters"]
    return body["packets"], body["bytes"]


def settled(lab: Lab, labels: dict[str, tuple[int, int]], timeout: float = 20) -> dict[str, tuple[int, int]]:
    """The labels' counts once they reach the expected ones (or stop moving, then the caller's asserts say
    what differs)."""
    deadline = time.monotonic() + timeout
    while True:
        now = {label: counted(lab, label) for label in labels}
        if all(now[k][1] >= want[1] * 0.99 for k, want in labels.items()) or time.monotonic() > deadline:
            time.sleep(2.5)  # a late report would show here
            return {label: counted(lab, label) for label in labels}
        time.sleep(0.3)


def test_metering_counts_what_crosses_the_router(lab: Lab) -> None:
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("mnet", "10.61.0.0/24")
    router = lab.api.post("routers", {"name": "metered", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    vm1 = lab.boot("mnet", "compute1", "mvm1")
    vm2 = lab.boot("mnet", "compute2", "mvm2")
    allow_from_anywhere(lab, "icmp")
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    fip_address = fip["floating_ip_address"]

    egress = make_label(lab, "egress", {"direction": "egress", "destination_ip_prefix": "0.0.0.0/0"},
                        {"direction": "egress", "source_ip_prefix": f"{vm2.ip}/32", "excluded": True})
    ingress = make_label(lab, "ingress", {"direction": "ingress", "destination_ip_prefix": "10.61.0.0/24"})
    # remote_ip_prefix as Neutron's driver reads it: on egress, the (internal) source address
    legacy = make_label(lab, "legacy", {"direction": "egress", "remote_ip_prefix": f"{vm1.ip}/32"})
    ns = naming.router_namespace(router["id"], lab.host_ns("network1"))
    lab.wait(lambda: len(dp.listed(ns)[1]) == 3, 20, "the router's metering table with its three labels")
    ext_ns = lab.state.external
    lab.wait(lambda: ping_ns(ext_ns, fip_address, count=1), 20, "the floating IP to answer")

    with udp_sink(ext_ns):
        before = settled(lab, {k: (0, 0) for k in (egress, ingress, legacy)}, timeout=0)
        started = time.monotonic()
        send_udp(vm1.netns, EXTERNAL_GATEWAY, 200, 1000)  # counted on egress and legacy
        send_udp(vm2.netns, EXTERNAL_GATEWAY, 100, 1200)  # excluded from egress, not vm1's: not legacy
        send_udp(ext_ns, fip_address, 150, 500)  # ingress, to vm1 through its floating IP
        want = {egress: (200, 200 * 1028), ingress: (150, 150 * 528), legacy: (200, 200 * 1028)}
        after = settled(lab, {k: (before[k][0] + p, before[k][1] + b) for k, (p, b) in want.items()})
    for label, (packets, nbytes) in want.items():
        got = (after[label][0] - before[label][0], after[label][1] - before[label][1])
        assert abs(got[1] - nbytes) <= nbytes * 0.01, (label, got, (packets, nbytes))
        assert abs(got[0] - packets) <= packets * 0.01, (label, got, (packets, nbytes))
    print(f"metering: counted within 1 % in {time.monotonic() - started:.1f} s")
    metrics = lab.api.http.get("/metrics").text
    assert f'fermion_metering_label_bytes_total{{label_id="{egress}",router_id="{router["id"]}"}}' in metrics

    # the table made anew (as after a rebuilt namespace): a new epoch, and the label's total goes on from there
    epoch = dp.listed(ns)[0]
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", dp.TABLE], check=True)
    lab.wait(lambda: dp.listed(ns)[0] not in (None, epoch), 30, "the agent to make the table again")
    base = counted(lab, legacy)
    with udp_sink(ext_ns):
        send_udp(vm1.netns, EXTERNAL_GATEWAY, 50, 1000)
        total = settled(lab, {legacy: (base[0] + 50, base[1] + 50 * 1028)})[legacy]
    assert abs(total[1] - (base[1] + 50 * 1028)) <= 50 * 1028 * 0.01, (base, total)
