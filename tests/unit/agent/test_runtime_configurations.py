"""What an agent reports as its configurations: its driver's, and how long its last full sync took."""

from __future__ import annotations

from typing import Any

from fermion.agent.runtime import AgentRuntime


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
