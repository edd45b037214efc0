"""HA routers with real packets (issue 16 points 1-3): a router made HA by `[l3] ha = true` runs keepalived on
two network nodes; only the active instance answers for the router's addresses and floating IP, the agents
report who is active, and cutting the active host's links moves the router to the other one, with the
established connections (conntrackd keeps their state on the standby). When the links come back, one
instance stays active."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netaddr
import pytest

from fermion.dataplane import conntrackd, keepalived, netns
from fermion.lab import instances
from fermion.lab.topology import EXTERNAL_GATEWAY
from tests.dataplane.conftest import embedded_lab
from tests.dataplane.lab import Lab, Stream, loss_of, ping_ns, tcp_connects, tcp_listener, ticker_server
from tests.dataplane.test_l3 import allow_from_anywhere, put, subnet_of

NETWORK_HOSTS = ("network1", "network2")


@pytest.fixture
def ha_lab(tmp_path: Path) -> Iterator[Lab]:
    with embedded_lab(tmp_path, sections={"l3": {"ha": True}}, hosts=["compute1", *NETWORK_HOSTS],
                      network_hosts=NETWORK_HOSTS) as lab:
        yield lab


def hosting(lab: Lab, router_id: str) -> dict[str, str | None]:
    agents = lab.api._ok(lab.api.http.get(f"/v2.0/routers/{router_id}/l3-agents"))["agents"]
    return {a["host"]: a.get("ha_state") for a in agents}


def active_host(lab: Lab, router_id: str) -> str | None:
    states = hosting(lab, router_id)
    active = [h for h, s in states.items() if s == "active"]
    return active[0] if len(active) == 1 and set(states.values()) == {"active", "standby"} else None


def addresses(lab: Lab, host: str, router_id: str) -> str:
    ns = f"{lab.host_ns(host)}-qrouter-{router_id}"
    return netns.run(["ip", "-n", ns, "-br", "addr"], check=False).stdout


def router_links(lab: Lab, host: str, router_id: str) -> set[str]:
    """The states of the router's qr-/qg- devices on the host."""
    ns = f"{lab.host_ns(host)}-qrouter-{router_id}"
    links = netns.run(["ip", "-n", ns, "-br", "link"], check=False).stdout.splitlines()
    return {line.split()[1] for line in links if line.startswith(("qr-", "qg-"))}


def cut(lab: Lab, host: str, state: str = "down") -> None:
    """The host's wires (underlay, provider and external) go dead, as when it loses power or is cut off
    (state up: they come back)."""
    for wire in (f"ul-{host}", f"pv-{host}", f"ex-{host}"):
        netns.run(["ip", "-n", lab.state.underlay, "link", "set", wire, state])


def workdir(lab: Lab, host: str, router_id: str) -> Path:
    """The router's keepalived and conntrackd files on a host (the L3 agent's state directory)."""
    return lab.state_dir / "l3" / host / "ha" / router_id


def vrrp_states(lab: Lab, router_id: str) -> dict[str, str]:
    """What keepalived on each network host says it is: master, backup, fault or stopped."""
    return {host: keepalived.Keepalived(workdir(lab, host, router_id)).state() for host in NETWORK_HOSTS}


def ha_router(lab: Lab) -> dict[str, Any]:
    ext = instances.ensure_external_network(lab.state, lab.api)
    net = lab.network("net1", "10.1.0.0/24")
    router = lab.api.post("routers", {"name": "r1", "external_gateway_info": {"network_id": ext["id"]}})
    put(lab, f"/v2.0/routers/{router['id']}/add_router_interface", {"subnet_id": subnet_of(lab, net["id"])})
    vm1 = lab.boot("net1", "compute1", "vm1")
    allow_from_anywhere(lab, "icmp")
    allow_from_anywhere(lab, "tcp", 22)
    fip = lab.api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    address, rid = fip["floating_ip_address"], router["id"]
    try:
        lab.wait(lambda: active_host(lab, rid) is not None, 40, "one instance to be active, the other standby")
    except AssertionError as e:
        raise AssertionError(f"{e}: the server says {hosting(lab, rid)}, keepalived {vrrp_states(lab, rid)}") from e
    lab.wait(lambda: ping_ns(lab.state.external, address, count=1), 20, "the floating IP to answer")
    return {"router": router, "rid": rid, "vm1": vm1, "fip": address, "fip_id": fip["id"]}


def test_one_instance_is_active_and_only_it_holds_the_router(ha_lab: Lab) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid = t["rid"]
    active = active_host(lab, rid)
    assert active is not None
    (standby,) = set(NETWORK_HOSTS) - {active}
    assert "10.1.0.1/24" in addresses(lab, active, rid)
    assert "10.1.0.1" not in addresses(lab, standby, rid)  # keepalived gives the standby no router address
    assert t["fip"] not in addresses(lab, standby, rid)
    assert "fe80" not in addresses(lab, standby, rid)  # nor an IPv6 link-local one: it stays silent

    ext_ns = lab.state.external
    lab.wait(lambda: ping_ns(t["vm1"].netns, EXTERNAL_GATEWAY, count=1), 20, "vm1 to reach the outside")
    with tcp_listener(t["vm1"].netns, 22):
        assert tcp_connects(ext_ns, t["fip"], 22)
    # the active instance's agent reported the floating IP realized
    lab.wait(lambda: lab.api._ok(lab.api.http.get(f"/v2.0/floatingips/{t['fip_id']}"))["floatingip"]["status"]
             == "ACTIVE", 20, "the floating IP to turn ACTIVE")


def test_losing_the_active_host_moves_the_router(ha_lab: Lab) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid, ext_ns = t["rid"], lab.state.external
    old = active_host(lab, rid)
    assert old is not None
    (new,) = set(NETWORK_HOSTS) - {old}

    cut(lab, old)
    lab.wait(lambda: hosting(lab, rid).get(new) == "active", 15, f"{new} to report itself active")
    assert "10.1.0.1/24" in addresses(lab, new, rid)
    lab.wait(lambda: ping_ns(ext_ns, t["fip"], count=1), 15, "the floating IP to answer from the other host")
    lab.wait(lambda: ping_ns(t["vm1"].netns, EXTERNAL_GATEWAY, count=1), 15, "vm1 to reach the outside again")
    port = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": rid,
                                                                "device_owner": "network:router_interface"}))
    assert [p["binding:host_id"] for p in port["ports"]] == [new]  # L2 population follows the active host


def test_restarting_the_l3_agents_keeps_keepalived_and_the_traffic(ha_lab: Lab, tmp_path: Path) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid, ext_ns = t["rid"], lab.state.external
    logs = {host: tmp_path / "l3" / host / "ha" / rid / "transitions" for host in NETWORK_HOSTS}
    before = {host: path.read_text() for host, path in logs.items()}
    states = hosting(lab, rid)
    syncs = {host: conntrackd.Conntrackd(workdir(lab, host, rid)).pid() for host in NETWORK_HOSTS}

    supervisor = lab.extra["supervisor"]
    pinger = subprocess.Popen(["ip", "netns", "exec", ext_ns, "ping", "-i", "0.02", "-c", "200", "-W", "1", t["fip"]],
                              stdout=subprocess.PIPE, text=True)
    for host in NETWORK_HOSTS:
        for agent in supervisor.running.pop(host):
            agent.stop()
    supervisor.reconcile()  # fresh agents, which adopt the running keepalived instances
    for host in NETWORK_HOSTS:
        assert all(a.synced.wait(10) for a in supervisor.running[host])
    out, _ = pinger.communicate(timeout=30)
    sent, received = loss_of(out)
    assert sent > 100 and received == sent, out
    assert {host: path.read_text() for host, path in logs.items()} == before  # no transition anywhere
    assert hosting(lab, rid) == states
    assert {host: conntrackd.Conntrackd(workdir(lab, host, rid)).pid() for host in NETWORK_HOSTS} == syncs


def test_an_ha_router_taken_down_leaves_no_process_behind(ha_lab: Lab) -> None:
    if shutil.which("conntrackd") is None:
        pytest.skip("conntrackd is missing (scripts/bootstrap installs it)")
    lab = ha_lab
    rid = ha_router(lab)["router"]["id"]
    lab.wait(lambda: active_host(lab, rid) is not None, 40, "one instance to be active, the other standby")
    running = {host: keepalived.instances(workdir(lab, host, rid).parent).get(rid, []) for host in NETWORK_HOSTS}
    for host in NETWORK_HOSTS:
        assert conntrackd.Conntrackd(workdir(lab, host, rid)).pid() in running[host]
        assert len(running[host]) >= 4  # keepalived's two processes, its notify script and conntrackd
    put(lab, f"/v2.0/routers/{rid}", {"router": {"admin_state_up": False}})
    lab.wait(lambda: not any(workdir(lab, host, rid).exists() for host in NETWORK_HOSTS), 20,
             "the router's files to go from both hosts")
    assert not any(netns.alive(pid) for pids in running.values() for pid in pids)


SNAT_PORT = 5001  # a server in the external namespace, reached by the instance through SNAT
FIP_PORT = 5002  # a server on the instance, reached from outside through its floating IP


def shared(lab: Lab, host: str, router_id: str, port: int) -> bool:
    """The host's conntrackd holds the other instance's connection to port (its external cache)."""
    cache = conntrackd.Conntrackd(workdir(lab, host, router_id)).client(
        f"{lab.host_ns(host)}-qrouter-{router_id}", "-e")
    return f"dport={port} " in cache.stdout


def serving_router(lab: Lab) -> dict[str, Any]:
    """ha_router with the instance's server port open, one instance active, both directions working."""
    if shutil.which("conntrackd") is None:
        pytest.skip("conntrackd is missing (scripts/bootstrap installs it)")
    t = ha_router(lab)
    allow_from_anywhere(lab, "tcp", FIP_PORT)
    lab.wait(lambda: active_host(lab, t["router"]["id"]) is not None, 20, "one instance active, the other standby")
    reachable(lab, t)
    return t


def reachable(lab: Lab, t: dict[str, Any]) -> None:
    lab.wait(lambda: ping_ns(lab.state.external, t["fip"], count=1), 20, "the floating IP to answer")
    lab.wait(lambda: ping_ns(t["vm1"].netns, EXTERNAL_GATEWAY, count=1), 20, "vm1 to reach the outside")


def test_established_tcp_connections_survive_losing_the_active_host(ha_lab: Lab) -> None:
    """Both servers keep talking through the failover: a server's packet reaching the new active instance
    first is what a router without the connection's state answers with a reset (SNAT) or drops."""
    lab = ha_lab
    t = serving_router(lab)
    rid = t["router"]["id"]
    ext_ns, vm_ns = lab.state.external, t["vm1"].netns
    old = active_host(lab, rid)
    assert old is not None
    (new,) = set(NETWORK_HOSTS) - {old}
    with ticker_server(ext_ns, SNAT_PORT), ticker_server(vm_ns, FIP_PORT):
        streams = {"snat": Stream(vm_ns, EXTERNAL_GATEWAY, SNAT_PORT), "fip": Stream(ext_ns, t["fip"], FIP_PORT)}
        try:
            lab.wait(lambda: all(s.ticks() for s in streams.values()), 10, "both servers' ticks")
            lab.wait(lambda: shared(lab, new, rid, SNAT_PORT) and shared(lab, new, rid, FIP_PORT), 10,
                     f"{new} to hold both connections' state")

            cut(lab, old)
            lab.wait(lambda: hosting(lab, rid).get(new) == "active", 15, f"{new} to report itself active")
            taken = time.time()
            lab.wait(lambda: all(s.ticks(after=taken) or s.ended() for s in streams.values()), 15,
                     "the ticks to come through the new active instance")
            for name, stream in streams.items():
                assert stream.ended() is None, f"the {name} connection ended: {stream.ended()}"
                stream.say(f"still {name}")
            lab.wait(lambda: all(s.heard(f"still {n}") for n, s in streams.items()), 10, "both echoes")
            assert all(s.ended() is None for s in streams.values())
        finally:
            for stream in streams.values():
                stream.close()


def ha_address(lab: Lab, host: str, router_id: str) -> netaddr.IPAddress:
    out = netns.run(["ip", "-j", "-4", "-n", f"{lab.host_ns(host)}-qrouter-{router_id}", "addr"]).stdout
    return next(netaddr.IPAddress(a["local"]) for link in json.loads(out) if link["ifname"].startswith("ha-")
                for a in link["addr_info"] if netaddr.IPAddress(a["local"]) in netaddr.IPNetwork("169.254.192.0/18"))


def one_active(lab: Lab, router_id: str) -> str | None:
    """The host whose instance is the only master, if the API agrees; None otherwise."""
    masters = [h for h, s in vrrp_states(lab, router_id).items() if s == "master"]
    return masters[0] if len(masters) == 1 and active_host(lab, router_id) == masters[0] else None


def transitions(lab: Lab, router_id: str) -> dict[str, list[keepalived.Transition]]:
    return {h: keepalived.Keepalived(workdir(lab, h, router_id)).transitions() for h in NETWORK_HOSTS}


def partition(lab: Lab, router_id: str, host: str) -> None:
    """Cut the active host off; its keepalived runs on, master on its side, the other takes over."""
    (other,) = set(NETWORK_HOSTS) - {host}
    cut(lab, host)
    lab.wait(lambda: vrrp_states(lab, router_id)[other] == "master" and active_host(lab, router_id) == other,
             15, f"{other} to take over")
    assert vrrp_states(lab, router_id)[host] == "master"


def heal(lab: Lab, router_id: str, host: str, keeper: str) -> None:
    """Links back up: exactly one instance, keeper, stays active, and nothing changes its mind after."""
    cut(lab, host, "up")
    lab.wait(lambda: one_active(lab, router_id) == keeper, 15, f"{keeper} alone active, and the API saying so")
    before = transitions(lab, router_id)
    for _ in range(30):  # 3 s, the L3 agents' periodic sync included
        time.sleep(0.1)
        assert one_active(lab, router_id) == keeper
    assert transitions(lab, router_id) == before


def test_after_a_partition_heals_exactly_one_instance_stays_active_and_connections_go_on(ha_lab: Lab) -> None:
    """Both instances run on while the active host is cut off, each master on its side. When the links come
    back, VRRP keeps the instance with the higher address on the HA network. Cut off first, the other one
    stays; cut off second, that one comes back (failback) and the connections, which moved data through the
    other meanwhile, go on through it."""
    lab = ha_lab
    t = serving_router(lab)
    rid = t["router"]["id"]
    ext_ns, vm_ns = lab.state.external, t["vm1"].netns
    keeper = max(NETWORK_HOSTS, key=lambda h: ha_address(lab, h, rid))
    (other,) = set(NETWORK_HOSTS) - {keeper}
    # keepalived's master, once the API says the same (the API alone may still name the first one elected)
    lab.wait(lambda: one_active(lab, rid) is not None, 20, "one master, the API agreeing")
    if one_active(lab, rid) == other:
        partition(lab, rid, other)
        heal(lab, rid, other, keeper)  # no failback: the one that took over stays
        reachable(lab, t)

    bulk = 1 << 16  # 64 KiB a tick, 1.3 MB/s: the connections move far beyond their windows meanwhile
    with ticker_server(ext_ns, SNAT_PORT, padding=bulk), ticker_server(vm_ns, FIP_PORT, padding=bulk):
        streams = {"snat": Stream(vm_ns, EXTERNAL_GATEWAY, SNAT_PORT), "fip": Stream(ext_ns, t["fip"], FIP_PORT)}
        try:
            lab.wait(lambda: shared(lab, other, rid, SNAT_PORT) and shared(lab, other, rid, FIP_PORT), 10,
                     f"{other} to hold both connections' state")
            partition(lab, rid, keeper)
            taken = time.time()
            lab.wait(lambda: all(len(s.ticks(after=taken)) > 20 or s.ended() for s in streams.values()), 20,
                     "data through the instance that took over")
            for _ in range(40):  # 4 s, longer than the agents' periodic sync: the API stays with the new one
                time.sleep(0.1)
                assert active_host(lab, rid) == other

            heal(lab, rid, keeper, keeper)
            back = time.time()
            lab.wait(lambda: all(len(s.ticks(after=back)) > 20 or s.ended() for s in streams.values()), 20,
                     "data through the instance that came back")
            for name, stream in streams.items():
                assert stream.ended() is None, f"the {name} connection ended: {stream.ended()}"
                stream.say(f"still {name}")
            lab.wait(lambda: all(s.heard(f"still {n}") for n, s in streams.items()), 10, "both echoes")
        finally:
            for stream in streams.values():
                stream.close()


def test_an_admin_down_ha_router_stops_keepalived_everywhere_and_comes_back(ha_lab: Lab) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid, ext_ns = t["rid"], lab.state.external
    put(lab, f"/v2.0/routers/{rid}", {"router": {"admin_state_up": False}})
    lab.wait(lambda: not ping_ns(ext_ns, t["fip"], count=1), 20, "the floating IP to stop answering")
    for host in NETWORK_HOSTS:  # disabled, not removed: no keepalived, the router's devices down
        lab.wait(lambda h=host: not workdir(lab, h, rid).exists(), 20, f"keepalived to stop on {host}")
        lab.wait(lambda h=host: router_links(lab, h, rid) == {"DOWN"}, 20, f"the router's devices down on {host}")
    assert not ping_ns(t["vm1"].netns, "10.1.0.1", count=1)
    lab.wait(lambda: lab.api._ok(lab.api.http.get(f"/v2.0/floatingips/{t['fip_id']}"))["floatingip"]["status"]
             == "DOWN", 20, "the floating IP to turn DOWN")
    ports = lab.api._ok(lab.api.http.get("/v2.0/ports", params={"device_id": rid,
                                                                 "device_owner": "network:router_interface"}))
    (port,) = ports["ports"]
    instances.wait_port_status(lab.api, port["id"], "ACTIVE")

    put(lab, f"/v2.0/routers/{rid}", {"router": {"admin_state_up": True}})
    lab.wait(lambda: active_host(lab, rid) is not None, 30, "one instance to be active again")
    lab.wait(lambda: ping_ns(ext_ns, t["fip"], count=1), 20, "the floating IP to answer again")
