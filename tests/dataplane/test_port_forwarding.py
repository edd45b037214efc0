"""Floating IP port forwarding with real packets: one floating IP, TCP and UDP (and a port range) forwarded from
the lab's external namespace to two instances behind one router."""

from __future__ import annotations

import subprocess
import sys
from contextlib import AbstractContextManager
from typing import Any

from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.lab import Lab, next_peer, serving, tcp_connects, tcp_listener
from tests.dataplane.test_l3 import allow_from_anywhere, routed_pair

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data + b" from " + sys.argv[2].encode() + b" port " + sys.argv[1].encode(), peer)
"""
UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.sendto(b"hi", (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(2048)[0].decode())
"""


def udp_echo(ns: str, port: int, name: str) -> AbstractContextManager[None]:
    return serving(ns, UDP_ECHO, str(port), name)


def udp_answer(ns: str, ip: str, port: int) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", UDP_ASK, ip, str(port)],
                          capture_output=True, text=True, timeout=15, check=False)
    return proc.stdout.strip()


def forward(lab: Lab, fip_id: str, **attrs: Any) -> dict[str, Any]:
    return lab.api._ok(lab.api.http.post(f"/v2.0/floatingips/{fip_id}/port_forwardings",
                                         json={"port_forwarding": attrs}))["port_forwarding"]  # type: ignore[no-any-return]


def test_tcp_and_udp_through_one_floating_ip_to_two_instances(lab: Lab) -> None:
    t = routed_pair(lab)
    vm1, vm2 = t["vm1"], t["vm2"]
    for proto in ("tcp", "udp"):
        allow_from_anywhere(lab, proto)
    fip = lab.api.post("floatingips", {"floating_network_id": t["ext"]["id"]})
    address, ext_ns = fip["floating_ip_address"], lab.state.external
    # TCP 2201 -> vm1:22, TCP 2202 -> vm2:22, UDP 5353 -> vm2:53, UDP 7000-7004 -> vm1:9000-9004
    forward(lab, fip["id"], internal_port_id=vm1.port_id, internal_port=22, external_port=2201, protocol="tcp")
    forward(lab, fip["id"], internal_port_id=vm2.port_id, internal_port=22, external_port=2202, protocol="tcp")
    forward(lab, fip["id"], internal_port_id=vm2.port_id, internal_port=53, external_port=5353, protocol="udp")
    ranged = forward(lab, fip["id"], internal_port_id=vm1.port_id, internal_port_range="9000:9004",
                     external_port_range="7000:7004", protocol="udp")
    with tcp_listener(vm1.netns, 22) as one, tcp_listener(vm2.netns, 22) as two:
        lab.wait(lambda: tcp_connects(ext_ns, address, 2201), 20, "TCP 2201 to reach vm1")
        assert next_peer(one) == EXTERNAL_GATEWAY  # DNAT keeps the client's address
        # each forwarding is realized by the sync after its hint: the others may come a moment later
        lab.wait(lambda: tcp_connects(ext_ns, address, 2202), 20, "TCP 2202 to reach vm2")
        assert next_peer(two) == EXTERNAL_GATEWAY
        assert not tcp_connects(ext_ns, address, 22, timeout=1.0)  # nothing forwards port 22 itself
    with udp_echo(vm2.netns, 53, "vm2"), udp_echo(vm1.netns, 9003, "vm1"):
        lab.wait(lambda: udp_answer(ext_ns, address, 5353) == "hi from vm2 port 53", 20, "UDP 5353 to reach vm2")
        # port N of the range to port N
        lab.wait(lambda: udp_answer(ext_ns, address, 7003) == "hi from vm1 port 9003", 20, "UDP 7003 to reach vm1")
    # removing a forwarding takes it out of the data plane; the others stay
    assert lab.api.http.delete(f"/v2.0/floatingips/{fip['id']}/port_forwardings/{ranged['id']}").status_code == 204
    with udp_echo(vm1.netns, 9003, "vm1"), udp_echo(vm2.netns, 53, "vm2"):
        lab.wait(lambda: udp_answer(ext_ns, address, 7003) == "", 10, "the range to stop forwarding")
        assert udp_answer(ext_ns, address, 5353) == "hi from vm2 port 53"
