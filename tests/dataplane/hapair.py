"""Two router namespaces running one HA router's keepalived, for the keepalived tests and bench/ha.py: each
"host" (namespaces r1 and r2) has its ha- device on one HA link and its qr- device, with the same MAC, on one
tenant link (Neutron plugs an HA router's port on every host that runs it), and a client namespace on the
tenant link. Everything carries the prefix given; cleanup() stops keepalived by pid and deletes the
namespaces."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fermion.dataplane import keepalived as ka
from fermion.dataplane import naming, netns

ROUTER = "8f0c5b1e-2d7a-4c55-9a57-3d1f4b6a9c01"
HA_PORTS = {"r1": "1a1a1a1a-1a1a", "r2": "2b2b2b2b-2b2b"}
QR = naming.router_interface("3c3c3c3c-3c3c")  # the same port on both hosts
QR_MAC = "fa:16:3e:4d:00:01"
QR_LINK_LOCAL = "fe80::f816:3eff:fe4d:1/64"  # from the MAC; only the master has it (see build())
HA_ADDRESSES = {"r1": "169.254.192.1/18", "r2": "169.254.192.2/18"}
VRID = 7
PRIMARY_VIP = "169.254.255.7/24"  # Neutron would take 169.254.0.7/24; the tests stay in 169.254.192.0/18
GATEWAY = "198.18.77.1"  # the router's address on the tenant link
CLIENT = "198.18.77.10"
EXTRA_ROUTE = ka.Route("198.18.78.0/24", (CLIENT,))


@dataclass
class HaPair:
    prefix: str
    tmp: Path
    agents: dict[str, ka.Keepalived] = field(default_factory=dict)
    readers: dict[str, ka.Notifications] = field(default_factory=dict)

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def state_dir(self, host: str) -> Path:
        return self.tmp / host

    def config(self, host: str, *extra: ka.Address, routes: tuple[ka.Route, ...] = (EXTRA_ROUTE,)) -> ka.Config:
        return ka.Config(router_id=ROUTER, namespace=self.ns(host), ha_device=naming.ha_device(HA_PORTS[host]),
                         vrid=VRID, primary_vip=PRIMARY_VIP,
                         addresses=(ka.Address(f"{GATEWAY}/24", QR), ka.Address(QR_LINK_LOCAL, QR), *extra),
                         routes=routes)

    def agent(self, host: str) -> ka.Keepalived:
        """The host's L3 agent's view of the router's keepalived (a new object adopts the running one)."""
        return ka.Keepalived(self.state_dir(host) / ROUTER, self.state_dir(host) / "ha.sock")

    def restart_agent(self, host: str) -> None:
        self.readers[host].close()
        self.readers[host] = ka.Notifications(self.state_dir(host) / "ha.sock")
        self.readers[host].open()
        self.agents[host] = self.agent(host)

    def build(self) -> None:
        sw = self.ns("sw")
        netns.create(sw)
        ip(sw, "link add br-ha type bridge\nlink set br-ha up\nlink add br-t type bridge\nlink set br-t up\n")
        for host in ("r1", "r2"):
            ns, ha = self.ns(host), naming.ha_device(HA_PORTS[host])
            netns.create(ns)
            netns.run(["ip", "link", "add", ha, "netns", ns, "type", "veth", "peer", "name", f"ha{host}", "netns", sw])
            netns.run(["ip", "link", "add", QR, "netns", ns, "type", "veth", "peer", "name", f"qr{host}", "netns", sw])
            ip(sw, f"link set ha{host} master br-ha up\nlink set qr{host} master br-t up\n")
            # the backup's qr- device must send nothing: a frame from the shared MAC (IPv6 DAD, router
            # solicitations) would move the tenant bridge's entry for it away from the master
            ip(ns, f"link set {ha} up\naddr add {HA_ADDRESSES[host]} dev {ha}\n"
                   f"link set {QR} address {QR_MAC} addrgenmode none up\n")
            self.state_dir(host).mkdir()
            self.readers[host] = ka.Notifications(self.state_dir(host) / "ha.sock")
            self.readers[host].open()
            self.agents[host] = self.agent(host)
        client = self.ns("c")
        netns.create(client)
        netns.run(["ip", "link", "add", "eth0", "netns", client, "type", "veth", "peer", "name", "qrc", "netns", sw])
        ip(sw, "link set qrc master br-t up\n")
        ip(client, f"link set eth0 up\naddr add {CLIENT}/24 dev eth0\n")

    def start(self) -> str:
        """Both instances started; returns the host whose instance became master."""
        for host in ("r1", "r2"):
            assert self.agents[host].ensure(self.config(host)) == "started"
        reported = self.wait_for_master()
        other = "r2" if reported == "r1" else "r1"
        wait_until(lambda: self.agents[other].state() == "backup", f"{other} backup")
        return reported

    def wait_for_master(self, timeout: float = 15.0) -> str:
        """The host whose notify script reports a master next."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for host, reader in self.readers.items():
                for router_id, state in reader.read(0.05):
                    if router_id == ROUTER and state == "master":
                        return host
        raise AssertionError("no instance reported master")

    def cleanup(self) -> None:
        for reader in self.readers.values():
            reader.close()
        for host in ("r1", "r2"):
            if self.state_dir(host).exists():
                ka.cleanup(self.state_dir(host), [])  # keepalived and its notify script, by pid
        for name in ("r1", "r2", "c", "sw"):
            netns.delete(self.ns(name))


def ip(ns: str, script: str) -> None:
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=script, text=True, check=True)


def addresses(ns: str, device: str, link_local: bool = False) -> set[str]:
    out = subprocess.run(["ip", "-j", "-n", ns, "addr", "show", "dev", device], capture_output=True, text=True,
                         check=True).stdout
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link.get("addr_info", [])
            if link_local or a.get("scope") != "link"}


def routes(ns: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", "-n", ns, "route", "show"], capture_output=True, text=True, check=True).stdout
    return list(json.loads(out))


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def quiet(pair: HaPair, seconds: float = 2.0) -> list[tuple[str, str]]:
    """Everything the readers get within seconds (longer than a backup's 1.14 s master-down interval)."""
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for reader in pair.readers.values():
            got += reader.read(0.05)
    return got
