"""Work moves off dead agents, as Neutron's periodic agent status checks do: the legacy routers of an L3 agent
and the networks of a DHCP agent with no heartbeat for agent_down_time go to live agents
(allow_automatic_l3agent_failover, allow_automatic_dhcp_failover).

Every server process runs the check; each router or network moves in a transaction of its own that deletes
the dead agent's binding first (a second process finds it gone and does nothing) with the agent's row locked
(a heartbeat arriving meanwhile waits, then the agent counts as alive and keeps its work)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import select

from fermion.db import models as m
from fermion.db.engine import Database
from fermion.services.agents import DHCP_AGENT, L3_AGENT, AgentService
from fermion.services.dhcp import DhcpService
from fermion.services.routers import NoLiveAgent, RouterService

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailoverSettings:
    routers: bool = True  # [l3] allow_automatic_l3agent_failover
    networks: bool = True  # [agents] allow_automatic_dhcp_failover


@dataclass
class Moved:
    """What one check did: routers (router, new host) and networks (network, dead agent) moved."""

    routers: list[tuple[str, str]] = field(default_factory=list)
    networks: list[tuple[str, str]] = field(default_factory=list)


class AgentFailover:
    def __init__(self, db: Database, agents: AgentService, routers: RouterService, dhcp: DhcpService,
                 settings: FailoverSettings) -> None:
        self.db = db
        self.agents = agents
        self.routers = routers
        self.dhcp = dhcp
        self.settings = settings
        self._last: float | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.routers or self.settings.networks

    @property
    def interval(self) -> float:
        """Seconds between checks: half of agent_down_time (at least one), as Neutron."""
        return max(self.agents.down_time / 2, 1.0)

    def run(self) -> Moved:
        """One check. After a pause longer than agent_down_time (this process stopped, or the clock jumped)
        the agents get one round to report first: their old heartbeats would make them all look dead."""
        moved = Moved()
        at = time.time()
        last, self._last = self._last, at
        if last is not None and at - last > self.agents.down_time + self.interval:
            LOG.warning("agent failover: last check %.0f s ago; giving agents a round to report", at - last)
            return moved
        if self.settings.routers and self._any_alive(L3_AGENT):
            self._routers(moved)
        if self.settings.networks and self._any_alive(DHCP_AGENT):
            self._networks(moved)
        return moved

    def _any_alive(self, agent_type: str) -> bool:
        """With no live agent of the type there is nowhere to go; Neutron then leaves everything as it is."""
        a = m.agents.c
        with self.db.read() as conn:
            found = conn.execute(select(a.id).where(a.agent_type == agent_type, a.admin_state_up.is_(True),
                                                    a.heartbeat_timestamp >= self.agents.cutoff()).limit(1)).first()
        return found is not None

    def _routers(self, moved: Moved) -> None:
        with self.db.read() as conn:
            dead = self.routers.dead_bindings(conn, self.agents.cutoff())
        for router_id, agent_id in dead:
            try:
                host = self.db.write(partial(self.routers.reschedule, router_id=router_id, agent_id=agent_id))
            except NoLiveAgent:
                LOG.warning("router %s stays on dead L3 agent %s: no live L3 agent can take it", router_id, agent_id)
                continue
            except Exception:  # noqa: BLE001 - one router's failure must not keep the others on a dead agent
                LOG.exception("moving router %s off dead L3 agent %s", router_id, agent_id)
                continue
            if host is not None:
                LOG.warning("router %s moved off dead L3 agent %s to host %s", router_id, agent_id, host)
                moved.routers.append((router_id, host))

    def _networks(self, moved: Moved) -> None:
        with self.db.read() as conn:
            dead = self.dhcp.dead_bindings(conn, self.agents.cutoff())
        for network_id, agent_id in dead:
            try:
                done = self.db.write(partial(self.dhcp.move_off, network_id=network_id, agent_id=agent_id))
            except Exception:  # noqa: BLE001 - as above, network by network
                LOG.exception("moving network %s off dead DHCP agent %s", network_id, agent_id)
                continue
            if done:
                LOG.warning("network %s removed from dead DHCP agent %s", network_id, agent_id)
                moved.networks.append((network_id, agent_id))
