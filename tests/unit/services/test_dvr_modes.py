"""Which L3 agents may take which routers, by agent mode (dvr), and the 409s of binding one by hand."""

from __future__ import annotations

import pytest

from fermion.errors import Conflict
from fermion.services import dvr


@pytest.mark.parametrize(("configurations", "mode"), [({}, "legacy"), (None, "legacy"), ({"agent_mode": "dvr"}, "dvr"),
                                                       ({"agent_mode": "dvr_snat"}, "dvr_snat")])
def test_an_agent_without_agent_mode_is_legacy(configurations: dict[str, str] | None, mode: str) -> None:
    assert dvr.agent_mode(configurations) == mode


def test_centralized_routers_on_legacy_and_dvr_snat_agents_snat_parts_on_dvr_snat_only() -> None:
    assert [m for m in ("legacy", "dvr", "dvr_snat", "dvr_no_external") if dvr.can_host(m, False)] == [
        "legacy", "dvr_snat"]
    assert [m for m in ("legacy", "dvr", "dvr_snat", "dvr_no_external") if dvr.can_host(m, True)] == ["dvr_snat"]


@pytest.mark.parametrize(("mode", "distributed", "refused"), [
    ("dvr", False, "DVRL3CannotAssignToDvrAgent"), ("dvr_no_external", True, "DVRL3CannotAssignToDvrAgent"),
    ("legacy", True, "RouterL3AgentMismatch"), ("legacy", False, None), ("dvr_snat", True, None)])
def test_binding_by_hand(mode: str, distributed: bool, refused: str | None) -> None:
    agent = {"id": "a1", "configurations": {"agent_mode": mode}}
    if refused is None:
        dvr.check_agent(agent, "r1", distributed)
        return
    with pytest.raises(Conflict) as err:
        dvr.check_agent(agent, "r1", distributed)
    assert err.value.type == refused


def test_derived_port_ids_are_stable_and_distinct() -> None:
    assert dvr.snat_port_id("r", "p") == dvr.snat_port_id("r", "p") != dvr.snat_port_id("r", "q")
    assert dvr.fip_gateway_id("a", "n") != dvr.fip_gateway_id("b", "n")
