"""`fermion lab up --physnets HOST=PHYSNET,...`: a host on a physical network of its own (a rack of a routed
network) maps that network, not the lab's shared physnet1, on its eth1."""

from __future__ import annotations

import pytest

from fermion.cli.lab import parse_zones
from fermion.lab.instances import LabError
from fermion.lab.state import LabHost, LabState
from fermion.runtime.lab import agent_argv


def test_physnets_name_hosts_of_the_lab() -> None:
    assert parse_zones("rack1=rack-a", ["rack1", "rack2"], "--physnets", "PHYSNET") == {"rack1": "rack-a"}
    with pytest.raises(LabError, match="--physnets: 'rack3=x' is not HOST=PHYSNET"):
        parse_zones("rack3=x", ["rack1"], "--physnets", "PHYSNET")


def test_a_hosts_own_physnet_replaces_the_shared_one_in_its_mappings() -> None:
    state = LabState(prefix="fl", mode="distributed", endpoint="http://127.0.0.1:9696")
    rack = LabHost(name="rack1", netns="fl-rack1", underlay_ip="198.18.0.11", physnet="rack-a")
    plain = LabHost(name="compute1", netns="fl-compute1", underlay_ip="198.18.0.12")
    assert state.mappings(rack) == {"rack-a": "eth1", "external": "eth2"}
    assert state.mappings(plain) == {"physnet1": "eth1", "external": "eth2"}
    argv = agent_argv(state, rack, "l2")
    assert argv[argv.index("--physical-interface-mappings") + 1] == "rack-a:eth1,external:eth2"
