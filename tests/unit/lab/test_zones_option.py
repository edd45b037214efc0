"""`fermion lab up --zones HOST=ZONE,...`: each host's availability zone, checked against --hosts."""

from __future__ import annotations

import pytest

from fermion.cli.lab import parse_zones
from fermion.lab.instances import LabError
from fermion.lab.state import LabHost, LabState
from fermion.runtime.lab import agent_argv


def test_zones_name_hosts_of_the_lab() -> None:
    assert parse_zones("network1=az1, network2=az2", ["compute1", "network1", "network2"]) == {
        "network1": "az1", "network2": "az2"}
    assert parse_zones("", ["compute1"]) == {}
    for bad in ("network3=az1", "network1", "network1="):
        with pytest.raises(LabError, match="--zones"):
            parse_zones(bad, ["network1"])


def test_agent_processes_report_the_hosts_zone() -> None:
    state = LabState(prefix="fl", mode="distributed", endpoint="http://127.0.0.1:9696")
    host = LabHost(name="network2", netns="fl-network2", underlay_ip="198.18.0.12", dhcp=True, zone="az2")
    argv = agent_argv(state, host, "dhcp")
    assert argv[argv.index("--availability-zone") + 1] == "az2"
