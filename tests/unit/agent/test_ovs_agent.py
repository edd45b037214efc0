"""The OVS agent's link monitor: which tap events wake a sync. Plugging a tap is several link events within some
50 ms (made, up, offloads off, carrier); the first wakes its network, the others are seen by that sync's look
at the links and wake nothing, while a tap made or deleted after the look always wakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fermion.agent.ovs.agent import OvsAgent
from fermion.dataplane import naming
from fermion.dataplane import ovs as o
from fermion.dataplane.linkwatch import LinkEvent
from fermion.rpc.contracts import L2Network, L2Port, L2View, Segment, encode
from tests.unit.agent.test_ovs_planner import CFG

NET = "00000000-0000-4000-8000-00000000000a"
TAP = naming.tap("p1")


class Kernel:
    """OVS and the host's links in memory."""

    def __init__(self) -> None:
        self.state = o.OvsState()

    def observe(self, fresh: bool = True) -> o.OvsState:
        return o.applied(self.state, [])

    def apply(self, ops: list[o.Op]) -> list[tuple[o.Op, str]]:
        links = self.state.links
        self.state = o.applied(self.state, ops)
        self.state.links = links
        return []


def made(name: str = TAP) -> LinkEvent:
    return LinkEvent(False, name, None)


def test_a_taps_plugging_wakes_its_network_once_until_a_sync_looks() -> None:
    kernel = Kernel()
    agent = OvsAgent("h", CFG, Path("/nonexistent"), executor=kernel)
    view: dict[str, Any] = encode(L2View("h", [L2Network(NET, 1450, True, Segment("vxlan", None, 100))],
                                         [L2Port("p1", NET, "fa:16:3e:00:00:01", 1, True, "")]))
    agent.sync(view, None)
    assert agent.woken_by([made("tap-not-ours")]) == set()
    kernel.state.links.add(TAP)
    assert agent.woken_by([made()]) == {NET}
    assert agent.woken_by([made(), made()]) == set()  # up, carrier: the sync it woke will see the tap
    result = agent.sync(view, {NET})
    assert result.up == {"p1": 1}
    assert agent.woken_by([made()]) == set()  # the rest of its plugging, seen
    kernel.state.links.discard(TAP)
    assert agent.woken_by([LinkEvent(True, TAP, None)]) == {NET}
    assert agent.woken_by([LinkEvent(True, TAP, None)]) == set()
    assert agent.sync(view, {NET}).down == ["p1"]
    kernel.state.links.add(TAP)
    assert agent.woken_by([made()]) == {NET}  # made again after the look: wakes again
