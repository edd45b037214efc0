"""The all-in-one's /metrics while the embedded lab builds a routed network: agents alive, their syncs by
phase, firewall and NAT applies, and ports' create -> ACTIVE latency. Series are process-wide (earlier
tests used the same host names), so the test compares scrapes before and after."""

from __future__ import annotations

from fermion.lab import instances
from tests.dataplane.lab import Lab
from tests.dataplane.test_l3 import routed_pair
from tests.support.prom import Scrape


def scrape(lab: Lab) -> Scrape:
    r = lab.api.http.get("/metrics")
    assert r.status_code == 200
    return Scrape(r.text)


def test_agent_and_port_metrics_follow_the_lab(lab: Lab) -> None:
    before = scrape(lab)
    t = routed_pair(lab)  # a router with a gateway (NAT) on network1, vm1 on compute1, vm2 on compute2
    for vm in (t["vm1"], t["vm2"]):
        instances.wait_port_status(lab.api, vm.port_id, "ACTIVE")
    after = scrape(lab)

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert grew("fermion_port_active_latency_seconds_count") >= 2
    assert 0 < grew("fermion_port_active_latency_seconds_sum") < 60
    assert grew("fermion_agent_nat_apply_seconds_count", host="network1") >= 1
    for host in ("compute1", "compute2"):
        assert grew("fermion_agent_firewall_apply_seconds_count", host=host) >= 1
        assert grew("fermion_agent_sync_duration_seconds_count", agent_type="Linux bridge agent", host=host,
                    phase="apply") >= 1
    assert grew("fermion_agent_syncs_total", agent_type="L3 agent", host="network1", result="ok") >= 1
    for agent_type, host in (("Linux bridge agent", "compute1"), ("Linux bridge agent", "compute2"),
                             ("DHCP agent", "network1"), ("L3 agent", "network1")):
        assert after.value("fermion_agent_alive", agent_type=agent_type, host=host) == 1
    assert grew("fermion_rpc_messages_total", direction="received", method="report_ports") >= 1
