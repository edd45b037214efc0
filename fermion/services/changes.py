"""What the web console's live feed hears about: a resource a user can see changed.

Emitted with common.emit inside the write transaction, like the agents' hints, and handed to the after-commit
handlers with them; the RPC notifier sends only hints, so agents never see these."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Changed:
    kind: str  # the member name: network, subnet, port, router, floatingip, security_group, agent, ...
    id: str
    project_id: str | None = None  # the owner; None: for admins only (agents, resources of no project)
