"""`fermion lab fail` and `fermion lab heal` as a user types them (a process per command) against an embedded
lab with two network nodes (issue 16 point 9): losing the host of an HA router's active instance leaves its
floating IP answering, and once the host is back exactly one instance is active, and stays so."""

from __future__ import annotations

import time

from fermion.dataplane import netns
from fermion.lab import failure
from fermion.lab.state import LabState, state_path
from fermion.lab.topology import EXTERNAL_GATEWAY, wires
from tests.dataplane import test_l3_ha
from tests.dataplane.lab import Lab, Pinger, lost_while, ping_ns
from tests.dataplane.test_l3_ha import NETWORK_HOSTS, active_host, addresses, ha_router, hosting
from tests.dataplane.test_lab_cli import fermion_lab

ha_lab = test_l3_ha.ha_lab  # the fixture: compute1, network1 and network2, [l3] ha = true


def wire_states(lab: Lab, host: str) -> set[str]:
    out = netns.run(["ip", "-n", lab.state.underlay, "-br", "link", "show"]).stdout
    return {line.split()[1] for line in out.splitlines() if line.split()[0].split("@")[0] in wires(host)}


def transitions(lab: Lab, host: str, router_id: str) -> list[str]:
    """The VRRP states keepalived went through on the host, in order."""
    path = lab.state_dir / "l3" / host / "ha" / router_id / "transitions"
    return [line.split()[1] for line in path.read_text().splitlines()] if path.exists() else []


def test_fail_and_heal_the_active_host(ha_lab: Lab) -> None:
    lab = ha_lab
    t = ha_router(lab)
    rid, fip = t["router"]["id"], t["fip"]
    ext_ns, vm_ns = lab.state.external, t["vm1"].netns
    lab.wait(lambda: active_host(lab, rid) is not None, 20, "one instance to be active, the other standby")
    lab.wait(lambda: ping_ns(ext_ns, fip, count=1), 20, "the floating IP to answer")
    lab.wait(lambda: ping_ns(vm_ns, EXTERNAL_GATEWAY, count=1), 20, "vm1 to reach the outside")
    lost = active_host(lab, rid)
    assert lost is not None
    (survivor,) = set(NETWORK_HOSTS) - {lost}
    host = lab.state.hosts[lost]
    keepalived = failure.router_processes(host)
    assert keepalived, "keepalived runs in the active host's router namespace"
    supervisor = lab.extra["supervisor"]

    ping = Pinger(ext_ns, fip)
    try:
        ping.wait(0.0)
        failed = fermion_lab(lab, "fail", lost)
        failed_at = time.time()
        assert failed.returncode == 0, failed.stderr
        assert f"host {lost} failed: agents stopped, links cut, " in failed.stdout
        assert lost not in supervisor.running and survivor in supervisor.running
        assert wire_states(lab, lost) == {"DOWN"}
        assert not any(netns.alive(pid) for pid in keepalived)
        assert not netns.names(f"{host.netns}-"), "its router and DHCP namespaces went with the power"
        saved = LabState.load(state_path(lab.state_dir))
        assert saved is not None and saved.hosts[lost].failed
        ping.wait(failed_at)  # the floating IP answers again, from the survivor
    finally:
        ping.stop()
    lab.wait(lambda: hosting(lab, rid) == {lost: "standby", survivor: "active"}, 15,
             f"{survivor} to report itself active")
    lab.wait(lambda: ping_ns(vm_ns, EXTERNAL_GATEWAY, count=1), 15, "vm1 to reach the outside again")
    listed = fermion_lab(lab, "ls").stdout
    assert "FAILED" in next(line for line in listed.splitlines() if f"host {lost}" in line)

    again = fermion_lab(lab, "fail", lost)
    assert again.returncode == 1 and f"host {lost} has failed already" in again.stderr
    assert fermion_lab(lab, "heal", survivor).returncode == 1
    restart = fermion_lab(lab, "restart-agent", lost)
    assert restart.returncode == 1 and f"`fermion lab heal {lost}`" in restart.stderr
    survivor_log = transitions(lab, survivor, rid)
    done = {}

    def heal_and_watch() -> None:
        done["heal"] = healed = fermion_lab(lab, "heal", lost)
        assert healed.returncode == 0, healed.stderr
        lab.wait(one_active, 5, "exactly one active instance within 5 s of the heal")
        for _ in range(15):  # and no flapping afterwards
            time.sleep(0.2)
            assert one_active(), hosting(lab, rid)

    def one_active() -> bool:
        """The survivor active; the healed host standby, its keepalived running again, with none of the
        router's addresses."""
        return (hosting(lab, rid) == {lost: "standby", survivor: "active"}
                and transitions(lab, lost, rid)[-1:] == ["backup"] and bool(failure.router_processes(host))
                and "10.1.0.1/" not in addresses(lab, lost, rid))

    sent, missed = lost_while(ext_ns, fip, heal_and_watch)
    assert f"host {lost} healed: links up; agents alive again" in done["heal"].stdout
    assert wire_states(lab, lost) == {"UP"} and lost in supervisor.running
    assert transitions(lab, survivor, rid) == survivor_log  # the survivor stayed master throughout
    assert "10.1.0.1/" in addresses(lab, survivor, rid)
    # the healed host drew none of the floating IP's traffic
    assert sent > 100 and not missed, f"{len(missed)} of {sent} echo requests lost: {missed}"
    assert ping_ns(vm_ns, EXTERNAL_GATEWAY, count=2)
