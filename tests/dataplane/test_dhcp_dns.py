"""Real packets for extra_dhcp_opt and dns-integration (embedded mode): an instance's DHCP client receives its
port's extra options (and only its port's), and dnsmasq answers instances' DNS queries for the other instances
on the network by the names of their dns_assignment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.db import migrate
from fermion.db.engine import Database
from fermion.lab.state import state_path
from fermion.runtime.embedded import build_app
from fermion.runtime.lab import LabSupervisor
from tests.dataplane.lab import Lab, built_lab, dhcp_env, fast_settings, require_root
from tests.support.inproc_server import serve_in_thread

DOMAIN = "example.org."

# one DNS query (type A, recursion desired) over UDP; prints the answers' addresses, or the response code
QUERY = r"""
import random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
qid = random.randrange(65536)
question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
packet = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(packet, (server, 53))
data = s.recv(4096)
rid, flags, qd, an = struct.unpack("!HHHH", data[:8])
assert rid == qid
pos = 12 + len(question) + 4
found = []
for _ in range(an):
    if data[pos] & 0xC0 == 0xC0:
        pos += 2
    else:
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    rtype, _, _, length = struct.unpack("!HHIH", data[pos:pos + 10])
    pos += 10
    if rtype == 1:
        found.append(socket.inet_ntoa(data[pos:pos + length]))
    pos += length
print(" ".join(found) if found else "rcode=%d" % (flags & 0xF))
"""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """The embedded lab, its server configured with dns_domain = example.org. (ports' names are kept)."""
    require_root()
    url = f"sqlite:///{tmp_path / 'fermion.sqlite'}"
    db = Database(url)
    migrate.upgrade(db.engine)
    db.dispose()
    settings = fast_settings(url).replace("network", dns_domain=DOMAIN)
    app = build_app(settings)
    with serve_in_thread(app) as endpoint, built_lab(endpoint, tmp_path, "embedded") as lab:
        supervisor = LabSupervisor(settings, app.transport, state_path(tmp_path), poll=0.2)
        supervisor.start()
        lab.extra.update(app=app, supervisor=supervisor, settings=settings)
        try:
            lab.wait_agents()
            yield lab
        finally:
            supervisor.stop()


def _update_port(lab: Lab, port_id: str, **attrs: Any) -> dict[str, Any]:
    return lab.api._ok(lab.api.http.put(f"/v2.0/ports/{port_id}", json={"port": attrs}))["port"]  # type: ignore[no-any-return]


def _query(lab: Lab, vm: str, server: str, name: str) -> str:
    proc = subprocess.run(["ip", "netns", "exec", lab.state.instances[vm].netns, sys.executable, "-c", QUERY, server,
                           name], capture_output=True, text=True, timeout=15, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _dhcp_server(lab: Lab, network_id: str) -> str:
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"network_id": network_id,
                                                                "device_owner": "network:dhcp"}))["ports"]
    return str(ports[0]["fixed_ips"][0]["ip_address"])


def test_an_instance_receives_its_ports_extra_dhcp_options(lab: Lab) -> None:
    lab.network("opts", "10.50.0.0/24")
    vm1 = lab.boot("opts", "compute1", "vm1")
    lab.boot("opts", "compute2", "vm2")
    assert "ntpsrv" not in dhcp_env(lab, "vm1", "ntpsrv", "tftp")
    _update_port(lab, vm1.port_id, extra_dhcp_opts=[{"opt_name": "ntp-server", "opt_value": "198.18.0.123"},
                                                    {"opt_name": "tftp-server", "opt_value": "boot.example"}])
    lab.wait(lambda: dhcp_env(lab, "vm1", "ntpsrv", "tftp").get("ntpsrv") == "198.18.0.123", 20,
             "the DHCP server to send vm1's NTP server")
    env = dhcp_env(lab, "vm1", "ntpsrv", "tftp")
    assert env["tftp"] == "boot.example"
    assert env["ip"] == vm1.ip  # still its port's address, and the subnet's router
    assert env["router"] == "10.50.0.1"
    # the options are the port's own: the other instance on the network does not get them
    other = dhcp_env(lab, "vm2", "ntpsrv", "tftp")
    assert "ntpsrv" not in other and "tftp" not in other and other["ip"] == lab.state.instances["vm2"].ip
    # removed with a null value: gone from the next lease
    _update_port(lab, vm1.port_id, extra_dhcp_opts=[{"opt_name": "ntp-server", "opt_value": None}])
    lab.wait(lambda: "ntpsrv" not in dhcp_env(lab, "vm1", "ntpsrv", "tftp"), 20, "the NTP option to go")
    assert dhcp_env(lab, "vm1", "ntpsrv", "tftp")["tftp"] == "boot.example"
    # a port's option overrides its subnet's (here the default router)
    _update_port(lab, vm1.port_id, extra_dhcp_opts=[{"opt_name": "router", "opt_value": "10.50.0.254"}])
    lab.wait(lambda: dhcp_env(lab, "vm1").get("router") == "10.50.0.254", 20, "vm1's own router")
    assert dhcp_env(lab, "vm2")["router"] == "10.50.0.1"
    # and a blank router withholds the subnet's: no default route for vm1
    _update_port(lab, vm1.port_id, extra_dhcp_opts=[{"opt_name": "router", "opt_value": ""}])
    lab.wait(lambda: "router" not in dhcp_env(lab, "vm1"), 20, "vm1's router to be withheld")
    assert dhcp_env(lab, "vm1")["ip"] == vm1.ip


def test_instances_resolve_each_other_by_their_dns_names(lab: Lab) -> None:
    net = lab.network("names", "10.60.0.0/24")
    vm1 = lab.boot("names", "compute1", "vm1")
    vm2 = lab.boot("names", "compute2", "vm2")
    server = _dhcp_server(lab, net["id"])
    assert vm1.ip and vm2.ip
    # no dns_name: host-<address> in the configured domain, as the port's dns_assignment says
    assignment = lab.api.port(vm2.port_id)["dns_assignment"]  # type: ignore[index]
    assert assignment == [{"ip_address": vm2.ip, "hostname": "host-" + vm2.ip.replace(".", "-"),
                           "fqdn": f"host-{vm2.ip.replace('.', '-')}.{DOMAIN}"}]
    assert _query(lab, "vm1", server, assignment[0]["fqdn"]) == vm2.ip
    # a dns_name: the instance is found by it, from the other instance
    port = _update_port(lab, vm2.port_id, dns_name="web")
    assert port["dns_assignment"][0]["fqdn"] == f"web.{DOMAIN}"
    lab.wait(lambda: _query(lab, "vm1", server, f"web.{DOMAIN}") == vm2.ip, 20, "web.example.org to resolve")
    assert _query(lab, "vm2", server, f"host-{vm1.ip.replace('.', '-')}.{DOMAIN}") == vm1.ip
    # and its DHCP client is told that name and the domain
    env = dhcp_env(lab, "vm2")
    assert (env.get("hostname"), env.get("domain")) == ("web", DOMAIN.rstrip("."))
    assert _query(lab, "vm1", server, f"nothere.{DOMAIN}") != vm2.ip
    # renamed: the old name goes, the new one answers
    _update_port(lab, vm2.port_id, dns_name="db")
    lab.wait(lambda: _query(lab, "vm1", server, f"db.{DOMAIN}") == vm2.ip, 20, "db.example.org to resolve")
    assert _query(lab, "vm1", server, f"web.{DOMAIN}") != vm2.ip
    # a port no instance took a lease for (an address configured by hand) is found too
    static = lab.api.create_port({"network_id": net["id"], "dns_name": "printer",
                                  "fixed_ips": [{"ip_address": "10.60.0.77"}]})
    assert static["dns_name"] == "printer"
    lab.wait(lambda: _query(lab, "vm1", server, f"printer.{DOMAIN}") == "10.60.0.77", 20, "printer to resolve")
