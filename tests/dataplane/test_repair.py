"""A full resync repairs our nftables tables from what the kernel really holds (docs/trace.md, "What drift
means for repair"): elements, chains and whole tables changed by hand come back, with a transaction that
touches only what differs (an established connection through a refilled chain goes on), and a kernel that
did not drift costs one listing per table and no command. Needs root, nft and nsenter (tests/dataplane/
test_firewall.py's bed: one emulated host, four instances; and the lab)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from fermion.dataplane import fwaas, naming, netns
from fermion.dataplane.firewall import Firewall, Group, Rule, group_chain, remote_set
from tests.dataplane.lab import Lab, Session, echo_server, tcp_connects, tcp_listener
from tests.dataplane.test_firewall import EGRESS_ANY, PING_IN, Bed, bed, scale_state, state
from tests.dataplane.test_trace import settle
from tests.dataplane.test_trace_probe import in_ns, probed, quiet_lab, two_instances_and_a_router

__all__ = ["bed", "quiet_lab"]  # fixtures
LB = "Linux bridge agent"


def nft(b: Bed, *argv: str) -> None:
    netns.run(["nsenter", f"--net={netns.RUN}/{b.host}", "nft", *argv])


@pytest.fixture
def served(bed: Bed) -> Iterator[tuple[Bed, Firewall, object]]:
    """i1 (group a: ping and tcp 22 from group a's members) serves tcp 22; i2 (group a too) pings it."""
    fw = Firewall(bed.host)
    a = Group("a", True, (*EGRESS_ANY, Rule("ingress", "IPv4", 1, remote_group="a"),
                          Rule("ingress", "IPv4", 6, 22, 22, remote_group="a")))
    desired = state(bed.port("i1", "a"), bed.port("i2", "a"), groups=(a,),
                    members={"a": (bed["i1"].ip, bed["i2"].ip)})
    fw.apply(desired)
    bed.serve("i1", 22)
    yield bed, fw, desired


def test_an_untouched_kernel_needs_no_repair(served: tuple[Bed, Firewall, object]) -> None:
    b, fw, desired = served
    before = b.ruleset()
    assert fw.apply(desired, audit=True, repair=True) == 0  # type: ignore[arg-type]
    assert b.ruleset() == before


def test_elements_chains_and_tables_removed_by_hand_come_back(served: tuple[Bed, Firewall, object]) -> None:
    b, fw, desired = served
    before = b.ruleset()
    assert b.ping("i2", b["i1"].ip)
    client = Session(b["i2"].ns, b["i1"].ip, 22)
    b.procs.append(client.proc)
    echo = client.say
    assert echo("one") == "one"
    # 1. i2's address out of group a's remote set: i1 admits no new connection from it
    nft(b, "delete", "element", "inet", "fermion_sg", remote_set("a", False), f"{{ {b['i2'].ip} }}")
    assert not b.ping("i2", b["i1"].ip)
    assert fw.apply(desired) == 0, "an incremental apply does not look at the kernel"  # type: ignore[arg-type]
    assert fw.apply(desired, audit=True, repair=True) == 1  # type: ignore[arg-type]
    assert b.ruleset() == before and b.ping("i2", b["i1"].ip)
    # 2. the group's ingress chain flushed: refilled alone, the connection through it goes on
    nft(b, "flush", "chain", "inet", "fermion_sg", group_chain("a", "ingress"))
    assert not b.ping("i2", b["i1"].ip)
    lines = fw.apply(desired, audit=True, repair=True)  # type: ignore[arg-type]
    assert lines == 1 + 2, "flush and refill one chain of two rules"
    assert b.ruleset() == before and b.ping("i2", b["i1"].ip)
    assert echo("two") == "two", "the established connection saw nothing"
    # 3. a map element (the port's profile) and a chain of ours deleted, and an element of our own
    nft(b, "delete", "element", "bridge", "fermion_sg", "port_profile", f'{{ "{b["i1"].tap}" }}')
    nft(b, "add", "element", "inet", "fermion_sg", remote_set("a", False), "{ 10.77.0.200 }")
    assert fw.apply(desired, audit=True, repair=True) == 2  # type: ignore[arg-type]
    assert b.ruleset() == before
    # 4. the whole inet table deleted: made again; the bridge table is left alone
    nft(b, "delete", "table", "inet", "fermion_sg")
    assert b.ping("i3", b["i1"].ip), "nothing filtered in the stateful table: anyone reaches i1"
    fw.apply(desired, audit=True, repair=True)  # type: ignore[arg-type]
    assert b.ruleset() == before
    assert not b.ping("i3", b["i1"].ip) and b.ping("i2", b["i1"].ip)
    assert echo("three") == "three"
    assert fw.apply(desired, audit=True, repair=True) == 0  # type: ignore[arg-type]


def test_a_restarted_agent_repairs_what_its_digest_cannot_see(bed: Bed) -> None:
    desired = state(bed.port("i1", "g"), groups=(Group("g", True, (*EGRESS_ANY, PING_IN)),))
    Firewall(bed.host).apply(desired)
    assert bed.ping("i2", bed["i1"].ip)
    nft(bed, "flush", "chain", "inet", "fermion_sg", group_chain("g", "ingress"))
    assert not bed.ping("i2", bed["i1"].ip)
    again = Firewall(bed.host)  # the digest says the kernel is right: only the read-back knows better
    assert again.apply(desired, audit=True, repair=True) > 0
    assert bed.ping("i2", bed["i1"].ip)


def test_repair_costs_a_listing_per_table_not_per_port(bed: Bed) -> None:
    fw = Firewall(bed.host)
    desired = scale_state()
    fw.apply(desired)
    timings = {}
    for label, repair in (("audit only (before)", False), ("audit and repair (after)", True)):
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            assert fw.apply(desired, audit=True, repair=repair) == 0
            runs.append(time.perf_counter() - started)
        timings[label] = sorted(runs)[len(runs) // 2]
    print("\nfull resync of the firewall, 200 ports x 1000 rules (median of 5): "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))
    nft(bed, "delete", "element", "bridge", "fermion_sg", "port_profile",
        f'{{ "{desired.ports[7].device}" }}')
    assert fw.apply(desired, audit=True, repair=True) == 1


def test_a_routers_fwaas_table_is_repaired_chain_by_chain_or_whole(bed: Bed) -> None:
    firewalls = fwaas.Firewalls()
    group = fwaas.Group(id="g1", devices=("qr-a", "qr-b"), ingress=(fwaas.Rule("allow", 4, 6, destination_port="22"),),
                        egress=(), enabled=True)
    assert firewalls.ensure(bed.host, [group])
    assert not firewalls.ensure(bed.host, [group], repair=True), "nothing drifted: nothing done"
    before = bed.ruleset()
    nft(bed, "flush", "chain", "inet", fwaas.TABLE, "g0_in")
    assert not firewalls.ensure(bed.host, [group]), "an incremental update does not look"
    assert firewalls.ensure(bed.host, [group], repair=True) and bed.ruleset() == before
    nft(bed, "delete", "table", "inet", fwaas.TABLE)
    assert firewalls.ensure(bed.host, [group], repair=True) and bed.ruleset() == before
    assert not firewalls.ensure(bed.host, [group], repair=True)


# ------------------------------------------------------------------------------------------------ the lab
def probe(lab: Lab, source: str, destination: str, port: int | None = None) -> dict[str, Any]:
    body = {"source": source, "destination": destination, "protocol": "tcp" if port else "icmp", "probe": True}
    if port:
        body["port"] = port
    return lab.api._ok(lab.api.http.post("/v2.0/traces", json={"trace": body}))["trace"]  # type: ignore[no-any-return]


def full_sync(lab: Lab, host: str, agent_type: str) -> None:
    """Ask a host's agent for the full resync its resync_interval would bring (the lab's is 10 minutes)."""
    runtimes = [r for r in lab.extra["supervisor"].running[host] if r.driver.agent_type == agent_type]
    assert runtimes, f"no {agent_type} on {host}"
    runtimes[0].queue.add_full()


def test_a_full_resync_repairs_what_was_removed_by_hand_in_the_lab(quiet_lab: Lab) -> None:
    lab, api = quiet_lab, quiet_lab.api
    ext, vm1, vm2, router = two_instances_and_a_router(lab, "rnet", "10.44.1.0/24")
    group = api._ok(api.http.get(f"/v2.0/ports/{vm2.port_id}"))["port"]["security_groups"][0]
    outside = api._ok(api.http.get("/v2.0/subnets", params={"network_id": ext["id"]}))["subnets"][0]["cidr"]
    api.post("security-group-rules", {"security_group_id": group, "direction": "ingress", "protocol": "tcp",
                                      "port_range_min": 7001, "port_range_max": 7001, "remote_ip_prefix": outside})
    fip = api.post("floatingips", {"floating_network_id": ext["id"], "port_id": vm1.port_id})
    settle(lab, router["id"], fip, None)
    address = fip["floating_ip_address"]
    assert lab.ping("vm1", "vm2") and lab.ping("vm2", "vm1")

    def from_outside() -> bool:  # a ping would be answered by the router itself: the address is on its qg-
        return tcp_connects(lab.state.external, address, 7001)

    with echo_server(vm2.netns, 7000), tcp_listener(vm1.netns, 7001):
        assert from_outside()
        session = Session(vm1.netns, str(vm2.ip), 7000)
        try:
            assert session.say("one") == "one"
            # by hand: vm1 out of the default group's remote set on compute2, the group's ingress chain
            # flushed on compute1, the floating IP's DNAT element out of the router's map on network1
            members = remote_set(group, False)
            in_ns(lab.host_ns("compute2"), "nft", "delete", "element", "inet", "fermion_sg", members, f"{{ {vm1.ip} }}")
            chain = group_chain(group, "ingress")
            in_ns(lab.host_ns("compute1"), "nft", "flush", "chain", "inet", "fermion_sg", chain)
            router_ns = naming.router_namespace(router["id"], lab.host_ns("network1"))
            in_ns(router_ns, "nft", "delete", "element", "ip", "fermion_nat", "fip_dnat", f"{{ {address} }}")
            assert not lab.ping("vm1", "vm2", count=1) and not lab.ping("vm2", "vm1", count=1)
            assert not from_outside()
            inside, outside = probe(lab, "vm2", "vm1"), probe(lab, "external", address, 7001)
            assert inside["probe"] == "drift" and outside["probe"] == "drift"
            assert f"compute1: rules of chain inet fermion_sg {chain}" in probed(inside)["ingress security groups"][
                "missing"]
            assert probed(outside)["floating IP"]["missing"] == [
                f"network1: element {address} : {vm1.ip} of fip_dnat of table ip fermion_nat"]

            for host, agent in (("compute1", LB), ("compute2", LB), ("network1", "L3 agent")):
                full_sync(lab, host, agent)
            paths = (("vm1", "vm2", None), ("vm2", "vm1", None), ("external", address, 7001))
            lab.wait(lambda: all(probe(lab, *path)["probe"] == "ok" for path in paths), 20,
                     "the full resyncs to repair the drift")
            assert lab.ping("vm1", "vm2") and lab.ping("vm2", "vm1") and from_outside()
            assert session.say("two") == "two", "the established connection went on through the repairs"

            # the whole stateful table deleted on compute2: made again, the bridge table left as it was
            bridge = netns.run(["ip", "netns", "exec", lab.host_ns("compute2"), "nft", "list", "table", "bridge",
                                "fermion_sg"]).stdout
            in_ns(lab.host_ns("compute2"), "nft", "delete", "table", "inet", "fermion_sg")
            assert probe(lab, "vm1", "vm2")["probe"] == "drift"
            full_sync(lab, "compute2", LB)
            lab.wait(lambda: probe(lab, "vm1", "vm2")["probe"] == "ok", 20, "compute2's table to come back")
            assert netns.run(["ip", "netns", "exec", lab.host_ns("compute2"), "nft", "list", "table", "bridge",
                              "fermion_sg"]).stdout == bridge
            assert lab.ping("vm1", "vm2") and session.say("three") == "three"
            assert tcp_connects(vm1.netns, str(vm2.ip), 7000, read=False)
        finally:
            session.close()
