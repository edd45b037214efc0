"""What an agent reports as its configurations (its driver's, and how long its last full sync took), and the hints a
full sync absorbs reaching its driver."""

from __future__ import annotations

from typing import Any

from fermion.agent.runtime import AgentRuntime, SyncResult


class Driver:
    agent_type = "DHCP agent"
    binary = "neutron-dhcp-agent"

    def configurations(self) -> dict[str, Any]:
        return {"networks": 2}


def test_the_last_full_sync_is_reported_once_there_was_one() -> None:
    runtime = AgentRuntime("host-1", Driver(), transport=None)  # type: ignore[arg-type]
    assert runtime._configurations() == {"networks": 2}
    runtime.last_sync_seconds = 0.12345
    assert runtime._configurations() == {"networks": 2, "last_full_sync_seconds": 0.123}


class L3Driver(Driver):
    """A driver that wants to know which routers the server hinted about when a full sync absorbed the hints."""

    view_method = "get_l3_view"

    def __init__(self) -> None:
        self.hinted: set[str] = set()
        self.seen: list[tuple[set[str] | None, set[str]]] = []

    def sync(self, view: dict[str, Any], scope: set[str] | None) -> SyncResult:
        self.seen.append((scope, set(self.hinted)))
        return SyncResult()


class Transport:
    def call(self, method: str, body: Any, timeout: float = 0) -> Any:
        return {}


def test_hints_a_full_sync_absorbs_still_reach_the_driver() -> None:
    """An HA router's instance re-claims it when the server asks (a hint): a hint that arrives while a full sync
    is pending is merged into it, and must not be lost on the way (issue: both instances left standby)."""
    driver = L3Driver()
    runtime = AgentRuntime("host-1", driver, transport=Transport())  # type: ignore[arg-type]
    assert runtime._sync_once(True, {"r1"})
    assert runtime._sync_once(False, {"r2"})
    assert runtime._sync_once(True, set())  # a periodic resync: nothing was asked
    assert driver.seen == [(None, {"r1"}), ({"r2"}, {"r1"}), (None, set())]
