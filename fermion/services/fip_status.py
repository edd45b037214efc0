"""Floating IP status as the L3 agents find it: DOWN while a floating IP has no port, ACTIVE once the agent
serving its router reports it realized, ERROR when that agent failed to realize the router.

Serving means a legacy router's agent, or an HA router's active instance's (none while no instance is
active); for a distributed router, the agent of the host the floating IP's fixed port is bound to. Reports
carry the floating IP's revision, so one made from an older association changes nothing (and the agent is
told to look again). The status goes back to DOWN when the association changes
(floatingips.py, ports.py), when another host comes to serve the router (routers.py), and when no live agent
serves it any more (sweep(), at every agent heartbeat)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, or_, select, update

from fermion.db import models as m
from fermion.rpc.contracts import FloatingIpStatus

ACTIVE, DOWN, ERROR = "ACTIVE", "DOWN", "ERROR"
STATUSES = (ACTIVE, DOWN, ERROR)
HA_ACTIVE = "active"  # l3_ha.ACTIVE (not imported: agents.py, which l3_ha's imports reach, uses this module)
L3_AGENT = "L3 agent"  # agents.L3_AGENT, likewise


def _serving() -> Select[Any]:
    """Centralized router ids joined to the L3 agents serving them: a legacy router's binding, an HA router's
    active one."""
    b, a, r = m.router_l3_agents.c, m.agents.c, m.routers.c
    return (select(b.router_id).join(m.agents, a.id == b.l3_agent_id).join(m.routers, r.id == b.router_id)
            .where(r.distributed.is_(False), or_(b.ha_state.is_(None), b.ha_state == HA_ACTIVE)))


def _served(*agents: ColumnElement[bool]) -> ColumnElement[bool]:
    """Floating IPs served by the L3 agents matching the conditions: a centralized router's by the agent
    serving it, a distributed router's by the agent of the host its fixed port is bound to."""
    f, a, r, p = m.floatingips.c, m.agents.c, m.routers.c, m.ports.c
    local = (select(p.id).join(m.agents, and_(a.host == p.binding_host_id, a.agent_type == L3_AGENT))
             .where(*agents))
    return or_(f.router_id.in_(_serving().where(*agents)),
               and_(f.router_id.in_(select(r.id).where(r.distributed.is_(True))), f.fixed_port_id.in_(local)))


def apply(conn: Connection, host: str, statuses: Mapping[str, FloatingIpStatus]) -> tuple[int, list[str]]:
    """What the host's L3 agent reports, where it serves the floating IP and reported at least the current
    revision. Returns how many changed, and the routers whose floating IPs changed since the agent's view
    was made (it should look again)."""
    f = m.floatingips.c
    served = _served(m.agents.c.host == host)
    changed = 0
    for status in STATUSES:
        rows = [{"b_fip": k, "b_rev": v.revision} for k, v in statuses.items() if v.status == status]
        if not rows:
            continue
        stmt = (update(m.floatingips)
                .where(f.id == bindparam("b_fip"), f.revision_number <= bindparam("b_rev"), f.status != status,
                       f.fixed_port_id.is_not(None), served)
                .values(status=status))
        changed += conn.execute(stmt, rows).rowcount or 0
    stale = set()
    if statuses:
        for fid, router_id, revision in conn.execute(select(f.id, f.router_id, f.revision_number).where(
                f.id.in_(list(statuses)), served)):
            if revision > statuses[fid].revision:
                stale.add(str(router_id))
    return changed, sorted(stale)


def reset(conn: Connection, router_ids: Sequence[str]) -> None:
    """The routers' floating IPs are not known to be realized where they are served now: DOWN until that
    host's agent reports them."""
    if router_ids:
        f = m.floatingips.c
        conn.execute(update(m.floatingips).where(f.router_id.in_(list(router_ids)), f.status != DOWN)
                     .values(status=DOWN))


def sweep(conn: Connection, cutoff: datetime) -> None:
    """DOWN for the floating IPs served by a dead agent (no heartbeat since cutoff). Cheap when every agent
    lives: the subqueries are then empty."""
    f = m.floatingips.c
    conn.execute(update(m.floatingips).where(_served(m.agents.c.heartbeat_timestamp < cutoff), f.status != DOWN)
                 .values(status=DOWN))


def agent_gone(conn: Connection, agent_id: str) -> None:
    """The agent is being deleted: the floating IPs it served have no serving host any more."""
    f = m.floatingips.c
    conn.execute(update(m.floatingips).where(_served(m.agents.c.id == agent_id), f.status != DOWN)
                 .values(status=DOWN))


def assume_realized(conn: Connection, host: str) -> None:
    """An L3 agent older than 1.9 reports no floating IPs: those it serves read ACTIVE while it lives, as they
    did before."""
    f = m.floatingips.c
    conn.execute(update(m.floatingips).where(_served(m.agents.c.host == host), f.fixed_port_id.is_not(None),
                                             f.status != ACTIVE).values(status=ACTIVE))
