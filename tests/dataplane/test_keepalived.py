"""keepalived VRRP between two router namespaces, with real packets (topology in tests/dataplane/hapair.py):
a client on the tenant link pings the HA router's address. Everything carries a unique prefix and is removed
afterwards, even on failure: keepalived processes by their pids, then the namespaces. Needs root,
keepalived, logger, setsid and ping."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from fermion.dataplane import DataplaneError, naming, netns
from fermion.dataplane import conntrackd as ct
from fermion.dataplane import keepalived as ka
from tests.dataplane import hapair as hp
from tests.dataplane.hapair import HaPair
from tests.dataplane.lab import Pinger, require_root


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
    assert hp.addresses(pair.ns(active), hp.QR) == {f"{hp.GATEWAY}/24"}
    assert hp.addresses(pair.ns(standby), hp.QR, link_local=True) == set(), "the standby's port is silent"
    assert hp.QR_LINK_LOCAL in hp.addresses(pair.ns(active), hp.QR, link_local=True)
    ha = {host: naming.ha_device(hp.HA_PORTS[host]) for host in ("r1", "r2")}
    assert hp.PRIMARY_VIP in hp.addresses(pair.ns(active), ha[active])
    assert hp.PRIMARY_VIP not in hp.addresses(pair.ns(standby), ha[standby])
    extra = [r for r in hp.routes(pair.ns(active)) if r["dst"] == "198.18.78.0/24"]
    assert extra and extra[0]["gateway"] == hp.CLIENT and extra[0]["protocol"] == "keepalived"
    assert not [r for r in hp.routes(pair.ns(standby)) if r["dst"] == "198.18.78.0/24"]
    assert (pair.agents[active].state(), pair.agents[standby].state()) == ("master", "backup")
    assert ping_ok(pair)


def ping_ok(pair: HaPair) -> bool:
    """Every echo request of a short ping from the client answered, and answered once."""
    out = subprocess.run(["ip", "netns", "exec", pair.ns("c"), "ping", "-c", "5", "-i", "0.2", "-W", "2", hp.GATEWAY],
                         capture_output=True, text=True, check=False).stdout
    return " 0% packet loss" in out and "DUP!" not in out


def test_losing_the_active_host_moves_the_address_and_the_ping_resumes(pair: HaPair) -> None:
    active = pair.start()
    standby = "r2" if active == "r1" else "r1"
    before = len(pair.agents[standby].transitions())
    ping = Pinger(pair.ns("c"), hp.GATEWAY)
    try:
        hp.wait_until(lambda: hp.addresses(pair.ns(active), hp.QR) != set(), "the ping to start")
        ping.wait(after=time.time() - 0.1)  # the ping works before
        main, vrrp = pair.agents[active].pids()
        assert main is not None and vrrp is not None
        os.kill(vrrp, signal.SIGKILL)  # a lost host: keepalived dies without a word and the links go
        os.kill(main, signal.SIGKILL)
        hp.ip(pair.ns(active), f"link set {naming.ha_device(hp.HA_PORTS[active])} down\nlink set {hp.QR} down\n")
        assert pair.wait_for_master() == standby, "the standby reports the takeover"
        hp.wait_until(lambda: f"{hp.GATEWAY}/24" in hp.addresses(pair.ns(standby), hp.QR), "the address on the standby")
        ping.wait(after=time.time())  # the ping resumes through the standby (RuntimeError if it does not)
    finally:
        ping.stop()
    assert pair.agents[standby].state() == "master"
    assert [t.state for t in pair.agents[standby].transitions()[before:]] == ["master"]
    assert not pair.agents[active].running()
    # the lost host comes back: its keepalived restarts as standby, the new master keeps the address, and
    # nothing the returning host sends draws the client's packets to it
    assert pair.agents[active].ensure(pair.config(active)) == "started"
    hp.ip(pair.ns(active), f"link set {naming.ha_device(hp.HA_PORTS[active])} up\nlink set {hp.QR} up\n")
    hp.wait_until(lambda: pair.agents[active].state() == "backup", "the returning host as standby")
    hp.wait_until(lambda: hp.addresses(pair.ns(active), hp.QR, link_local=True) == set(),
                  "its stale address to go (keepalived removes it as it starts as backup)")
    time.sleep(2.0)  # the returning host's link has settled (IPv6 would have sent its DAD by now)
    assert ping_ok(pair), "the ping still reaches the master"
    assert pair.agents[standby].state() == "master" and pair.agents[active].state() == "backup"


def test_a_reload_adds_addresses_and_routes_without_a_transition(pair: HaPair) -> None:
    active = pair.start()
    standby = "r2" if active == "r1" else "r1"
    pids = {host: pair.agents[host].pids() for host in ("r1", "r2")}
    history = {host: pair.agents[host].transitions() for host in ("r1", "r2")}
    fip = ka.Address("198.18.77.50/32", hp.QR)
    route = ka.Route("198.18.79.0/24", (hp.CLIENT,))
    for host in ("r1", "r2"):
        assert pair.agents[host].ensure(pair.config(host, fip, routes=(hp.EXTRA_ROUTE, route))) == "reloaded"
    hp.wait_until(lambda: "198.18.77.50/32" in hp.addresses(pair.ns(active), hp.QR), "the new address on the master")
    hp.wait_until(lambda: any(r["dst"] == "198.18.79.0/24" for r in hp.routes(pair.ns(active))), "the new route")
    assert hp.quiet(pair) == [], "no instance changed state"
    assert "198.18.77.50/32" not in hp.addresses(pair.ns(standby), hp.QR)
    assert {host: pair.agents[host].pids() for host in ("r1", "r2")} == pids
    assert {host: pair.agents[host].transitions() for host in ("r1", "r2")} == history
    assert pair.agents[active].state() == "master"
    assert pair.agents[active].ensure(pair.config(active, fip, routes=(hp.EXTRA_ROUTE, route))) == "unchanged"


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
    assert hp.quiet(pair) == []
    assert {host: pair.agents[host].transitions() for host in ("r1", "r2")} == history
    # the adopted processes still obey: a change reloads them, a stop hands over to the other host
    fip = ka.Address("198.18.77.51/32", hp.QR)
    assert pair.agents[active].ensure(pair.config(active, fip)) == "reloaded"
    hp.wait_until(lambda: "198.18.77.51/32" in hp.addresses(pair.ns(active), hp.QR), "the new address")
    pair.agents[active].stop()
    assert pair.wait_for_master() == standby, "the new agent's socket hears the takeover"
    assert pair.agents[active].state() == "stopped"
    assert pair.agents[active].transitions()[-1].state == "stopped"
    assert hp.addresses(pair.ns(active), hp.QR) == set(), "a stopped master keeps no address"
    assert not any(netns.alive(pid) for pid in pids[active] if pid is not None)


def test_an_agent_restart_finds_the_stale_instances_and_stops_them(pair: HaPair) -> None:
    pair.start()
    stale = replace(pair.config("r1", routes=()), router_id="stale-router", vrid=hp.VRID + 1,
                    primary_vip="169.254.255.8/24", addresses=(ka.Address("198.18.77.60/32", hp.QR),))
    old = ka.Keepalived(pair.state_dir("r1") / "stale-router")
    old.ensure(stale)
    hp.wait_until(lambda: "198.18.77.60/32" in hp.addresses(pair.ns("r1"), hp.QR), "the stale router's address")
    sync = ct.Conntrackd(pair.state_dir("r1") / "stale-router")
    if shutil.which("conntrackd") is not None:  # the router's conntrackd goes with it
        sync.ensure(ct.Config("stale-router", pair.ns("r1"), stale.ha_device, hp.HA_ADDRESSES["r1"], hp.VRID + 1))
    found = ka.instances(pair.state_dir("r1"))
    assert set(found) == {hp.ROUTER, "stale-router"}
    assert set(p for p in [*old.pids(), sync.pid()] if p is not None) <= set(found["stale-router"])
    stale_pids = found["stale-router"]
    assert ka.cleanup(pair.state_dir("r1"), keep=[hp.ROUTER]) == ["stale-router"]
    assert not any(netns.alive(pid) for pid in stale_pids)
    assert not (pair.state_dir("r1") / "stale-router").exists()
    assert "198.18.77.60/32" not in hp.addresses(pair.ns("r1"), hp.QR), "its address went with it"
    assert pair.agents["r1"].running() and set(ka.instances(pair.state_dir("r1"))) == {hp.ROUTER}


def test_a_keepalived_that_cannot_start_says_why(pair: HaPair) -> None:
    missing = replace(pair.config("r1"), namespace=pair.ns("nowhere"))
    with pytest.raises(DataplaneError, match="nowhere"):
        pair.agents["r1"].ensure(missing)
    assert not pair.agents["r1"].running()
