"""keepalived VRRP between two router namespaces, with real packets: two "hosts" each run the same HA
router (namespaces r1 and r2, their ha- devices on one HA link, their qr- devices with the same MAC on one
tenant link, as Neutron plugs an HA router's port on every host), and a client on the tenant link pings the
router's address. Everything carries a unique prefix and is removed afterwards, even on failure: keepalived
processes by their pids, then the namespaces. Needs root, keepalived, logger, setsid and ping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fermion.dataplane import DataplaneError, naming, netns
from fermion.dataplane import keepalived as ka
from tests.dataplane.lab import pinger, reply_times, require_root

ROUTER = "8f0c5b1e-2d7a-4c55-9a57-3d1f4b6a9c01"
HA_PORTS = {"r1": "1a1a1a1a-1a1a", "r2": "2b2b2b2b-2b2b"}
QR = naming.router_interface("3c3c3c3c-3c3c")  # the same port on both hosts
QR_MAC = "fa:16:3e:4d:00:01"
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
                         addresses=(ka.Address(f"{GATEWAY}/24", QR), *extra), routes=routes)

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
            ip(ns, f"link set {ha} up\naddr add {HA_ADDRESSES[host]} dev {ha}\nlink set {QR} address {QR_MAC} up\n")
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


def addresses(ns: str, device: str) -> set[str]:
    out = subprocess.run(["ip", "-j", "-n", ns, "addr", "show", "dev", device], capture_output=True, text=True,
                         check=True).stdout
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link.get("addr_info", [])
            if a.get("scope") != "link"}


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


@pytest.fixture
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaPair]:
    require_root(("ip", "keepalived", "logger", "setsid", "ping"), "keepalived tests")
    # a short directory of its own: the agents' unix sockets live there (108 bytes at most)
    made = HaPair(prefix="ka" + uuid.uuid4().hex[:6], tmp=tmp_path_factory.mktemp("ka", numbered=True))
    try:
        made.build()
        yield made
    finally:
        made.cleanup()
        leftovers = netns.names(made.prefix)
        assert not leftovers, f"namespaces left behind: {leftovers}"


def test_the_router_address_answers_from_exactly_one_instance(pair: HaPair) -> None:
    active = pair.start()
    standby = "r2" if active == "r1" else "r1"
    assert addresses(pair.ns(active), QR) == {f"{GATEWAY}/24"}
    assert addresses(pair.ns(standby), QR) == set()
    ha = {host: naming.ha_device(HA_PORTS[host]) for host in ("r1", "r2")}
    assert PRIMARY_VIP in addresses(pair.ns(active), ha[active])
    assert PRIMARY_VIP not in addresses(pair.ns(standby), ha[standby])
    extra = [r for r in routes(pair.ns(active)) if r["dst"] == "198.18.78.0/24"]
    assert extra and extra[0]["gateway"] == CLIENT and extra[0]["protocol"] == "keepalived"
    assert not [r for r in routes(pair.ns(standby)) if r["dst"] == "198.18.78.0/24"]
    assert (pair.agents[active].state(), pair.agents[standby].state()) == ("master", "backup")
    out = subprocess.run(["ip", "netns", "exec", pair.ns("c"), "ping", "-c", "3", "-i", "0.2", "-W", "2", GATEWAY],
                         capture_output=True, text=True, check=False).stdout
    assert " 0% packet loss" in out and "DUP!" not in out, out


def test_losing_the_active_host_moves_the_address_and_the_ping_resumes(pair: HaPair) -> None:
    active = pair.start()
    standby = "r2" if active == "r1" else "r1"
    before = len(pair.agents[standby].transitions())
    ping = pinger(pair.ns("c"), GATEWAY)
    try:
        wait_until(lambda: addresses(pair.ns(active), QR) != set(), "the ping to start")
        time.sleep(0.5)
        main, vrrp = pair.agents[active].pids()
        assert main is not None and vrrp is not None
        killed_at = time.time()
        os.kill(vrrp, signal.SIGKILL)  # a lost host: keepalived dies without a word and the links go
        os.kill(main, signal.SIGKILL)
        ip(pair.ns(active), f"link set {naming.ha_device(HA_PORTS[active])} down\nlink set {QR} down\n")
        assert pair.wait_for_master() == standby, "the standby reports the takeover"
        wait_until(lambda: f"{GATEWAY}/24" in addresses(pair.ns(standby), QR), "the address on the standby")
        time.sleep(1.0)
    finally:
        replies = reply_times(ping)
    assert [t for t in replies if t < killed_at], "the ping worked before"
    assert [t for t in replies if t > killed_at], "the ping resumed through the standby"
    assert pair.agents[standby].state() == "master"
    assert [t.state for t in pair.agents[standby].transitions()[before:]] == ["master"]
    assert not pair.agents[active].running()


def test_a_reload_adds_addresses_and_routes_without_a_transition(pair: HaPair) -> None:
    active = pair.start()
    standby = "r2" if active == "r1" else "r1"
    pids = {host: pair.agents[host].pids() for host in ("r1", "r2")}
    history = {host: pair.agents[host].transitions() for host in ("r1", "r2")}
    fip = ka.Address("198.18.77.50/32", QR)
    route = ka.Route("198.18.79.0/24", (CLIENT,))
    for host in ("r1", "r2"):
        assert pair.agents[host].ensure(pair.config(host, fip, routes=(EXTRA_ROUTE, route))) == "reloaded"
    wait_until(lambda: "198.18.77.50/32" in addresses(pair.ns(active), QR), "the new address on the master")
    wait_until(lambda: any(r["dst"] == "198.18.79.0/24" for r in routes(pair.ns(active))), "the new route")
    assert quiet(pair) == [], "no instance changed state"
    assert "198.18.77.50/32" not in addresses(pair.ns(standby), QR)
    assert {host: pair.agents[host].pids() for host in ("r1", "r2")} == pids
    assert {host: pair.agents[host].transitions() for host in ("r1", "r2")} == history
    assert pair.agents[active].state() == "master"
    assert pair.agents[active].ensure(pair.config(active, fip, routes=(EXTRA_ROUTE, route))) == "unchanged"


def test_a_restarted_agent_adopts_the_running_keepalived(pair: HaPair) -> None:
    active = pair.start()
    standby = "r2" if active == "r1" else "r1"
    pids = {host: pair.agents[host].pids() for host in ("r1", "r2")}
    history = {host: pair.agents[host].transitions() for host in ("r1", "r2")}
    for host in ("r1", "r2"):
        pair.restart_agent(host)  # new objects, a new socket: nothing carried over in memory
        assert pair.agents[host].ensure(pair.config(host)) == "unchanged"
    assert {host: pair.agents[host].pids() for host in ("r1", "r2")} == pids
    assert (pair.agents[active].state(), pair.agents[standby].state()) == ("master", "backup")
    assert quiet(pair) == []
    assert {host: pair.agents[host].transitions() for host in ("r1", "r2")} == history
    # the adopted processes still obey: a change reloads them, a stop hands over to the other host
    fip = ka.Address("198.18.77.51/32", QR)
    assert pair.agents[active].ensure(pair.config(active, fip)) == "reloaded"
    wait_until(lambda: "198.18.77.51/32" in addresses(pair.ns(active), QR), "the new address")
    pair.agents[active].stop()
    assert pair.wait_for_master() == standby, "the new agent's socket hears the takeover"
    assert pair.agents[active].state() == "stopped"
    assert pair.agents[active].transitions()[-1].state == "stopped"
    assert addresses(pair.ns(active), QR) == set(), "a stopped master keeps no address"
    assert not any(netns.alive(pid) for pid in pids[active] if pid is not None)


def test_an_agent_restart_finds_the_stale_instances_and_stops_them(pair: HaPair) -> None:
    pair.start()
    stale = replace(pair.config("r1", routes=()), router_id="stale-router", vrid=VRID + 1,
                    primary_vip="169.254.255.8/24", addresses=(ka.Address("198.18.77.60/32", QR),))
    old = ka.Keepalived(pair.state_dir("r1") / "stale-router")
    old.ensure(stale)
    wait_until(lambda: "198.18.77.60/32" in addresses(pair.ns("r1"), QR), "the stale router's address")
    found = ka.instances(pair.state_dir("r1"))
    assert set(found) == {ROUTER, "stale-router"}
    assert set(p for p in old.pids() if p is not None) <= set(found["stale-router"])
    stale_pids = found["stale-router"]
    assert ka.cleanup(pair.state_dir("r1"), keep=[ROUTER]) == ["stale-router"]
    assert not any(netns.alive(pid) for pid in stale_pids)
    assert not (pair.state_dir("r1") / "stale-router").exists()
    assert "198.18.77.60/32" not in addresses(pair.ns("r1"), QR), "its address went with it"
    assert pair.agents["r1"].running() and set(ka.instances(pair.state_dir("r1"))) == {ROUTER}


def test_a_keepalived_that_cannot_start_says_why(pair: HaPair) -> None:
    missing = replace(pair.config("r1"), namespace=pair.ns("nowhere"))
    with pytest.raises(DataplaneError, match="nowhere"):
        pair.agents["r1"].ensure(missing)
    assert not pair.agents["r1"].running()
