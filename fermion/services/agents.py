"""Agents: registration by state reports, liveness, and the /v2.0/agents resource."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from fermion.db import models as m
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import BadRequest, NotFound
from fermion.metrics import AgentSample
from fermion.ml2.binding import AgentInfo
from fermion.rpc.contracts import StateReport
from fermion.services import fip_status
from fermion.services.common import now

DHCP_AGENT = "DHCP agent"
L3_AGENT = "L3 agent"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
FILTERS = ("id", "agent_type", "binary", "topic", "host", "admin_state_up", "availability_zone", "alive",
           "description")
UPDATABLE = ("admin_state_up", "description")
SORT_KEYS = ("id", "agent_type", "binary", "topic", "host", "admin_state_up", "availability_zone", "alive",
             "description", "created_at", "started_at", "heartbeat_timestamp")


class AgentNotFound(NotFound):
    type = "AgentNotFound"


class AgentService:
    def __init__(self, down_time: float = 30.0) -> None:
        self.down_time = down_time

    def alive(self, heartbeat: datetime, at: datetime | None = None) -> bool:
        return ((at or now()) - heartbeat) <= timedelta(seconds=self.down_time)

    def report(self, conn: Connection, report: StateReport) -> tuple[dict[str, Any], bool]:
        """Record a heartbeat. Returns the agent row and whether it (re)appeared: new, restarted, or back
        from the dead, when the server should retry what depended on it."""
        ts = now()
        a = m.agents.c
        row = conn.execute(select(m.agents).where(a.agent_type == report.agent_type, a.host == report.host)
                           ).first()
        if row is None:
            values = {"id": new_id(), "agent_type": report.agent_type, "binary": report.binary,
                      "topic": report.topic, "host": report.host, "availability_zone": _zone(report),
                      "admin_state_up": True, "description": "", "configurations": report.configurations,
                      "created_at": ts, "started_at": ts, "heartbeat_timestamp": ts}
            if insert_if_absent(conn, m.agents, values):
                return values, True
            row = conn.execute(select(m.agents).where(a.agent_type == report.agent_type,
                                                      a.host == report.host)).one()
        current = dict(row._mapping)
        revived = report.start_flag or not self.alive(current["heartbeat_timestamp"], ts)
        changes: dict[str, Any] = {"heartbeat_timestamp": ts}
        if report.configurations != current["configurations"]:
            changes["configurations"] = report.configurations
        if report.start_flag:
            changes["started_at"] = ts
        if _zone(report) != current["availability_zone"]:
            changes["availability_zone"] = _zone(report)
        conn.execute(update(m.agents).where(a.id == current["id"]).values(**changes))
        return {**current, **changes}, revived

    def on_host(self, conn: Connection, host: str) -> list[AgentInfo]:
        rows = conn.execute(select(m.agents).where(m.agents.c.host == host)).all()
        return [self.info(dict(r._mapping)) for r in rows]

    def by_host(self, conn: Connection, hosts: Sequence[str]) -> dict[str, list[AgentInfo]]:
        """The agents of each of those hosts (a host without agents: an empty list)."""
        out: dict[str, list[AgentInfo]] = {h: [] for h in hosts}
        if hosts:
            for r in conn.execute(select(m.agents).where(m.agents.c.host.in_(list(hosts)))):
                out[r.host].append(self.info(dict(r._mapping)))
        return out

    def info(self, row: dict[str, Any]) -> AgentInfo:
        return AgentInfo(id=row["id"], agent_type=row["agent_type"], host=row["host"],
                         alive=self.alive(row["heartbeat_timestamp"]), admin_state_up=row["admin_state_up"],
                         configurations=row["configurations"] or {})

    # ---------------------------------------------------------------- API
    def to_api(self, row: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
        out = {k: row[k] for k in ("id", "agent_type", "binary", "topic", "host", "admin_state_up",
                                   "description", "configurations", "availability_zone")}
        for k in ("created_at", "started_at", "heartbeat_timestamp"):
            out[k] = row[k].strftime(TIME_FORMAT)
        out["alive"] = self.alive(row["heartbeat_timestamp"], at)
        out["resources_synced"] = None
        return out

    def list_agents(self, conn: Connection, filters: dict[str, list[str]],
                    sorts: Sequence[tuple[str, bool]] = ()) -> list[dict[str, Any]]:
        unknown = [k for k in filters if k not in FILTERS]
        if unknown:
            raise BadRequest(f"{', '.join(sorted(unknown))} is invalid attribute for filtering")
        stmt = select(m.agents).order_by(m.agents.c.host, m.agents.c.agent_type)
        for key, values in filters.items():
            if key in ("alive", "admin_state_up"):
                continue
            stmt = stmt.where(m.agents.c[key].in_(values))
        at = now()
        items = [self.to_api(dict(r._mapping), at) for r in conn.execute(stmt)]
        for key in ("alive", "admin_state_up"):
            if key in filters:
                wanted = {_boolean(v, key) for v in filters[key]}
                items = [i for i in items if i[key] in wanted]
        for key, ascending in reversed(sorts):  # stable sorts, last key first
            items.sort(key=lambda i: (i[key] is not None, i[key]), reverse=not ascending)
        return items

    def get(self, conn: Connection, agent_id: str) -> dict[str, Any]:
        row = conn.execute(select(m.agents).where(m.agents.c.id == agent_id)).first()
        if row is None:
            raise AgentNotFound(f"Agent {agent_id} could not be found.")
        return dict(row._mapping)

    def update(self, conn: Connection, agent_id: str, changes: dict[str, Any]) -> None:
        self.get(conn, agent_id)
        bad = [k for k in changes if k not in UPDATABLE]
        if bad:
            raise BadRequest(f"Cannot update read-only attribute(s) {', '.join(sorted(bad))}")
        values: dict[str, Any] = {}
        if "admin_state_up" in changes:
            if not isinstance(changes["admin_state_up"], bool):
                raise BadRequest(f"Invalid input for admin_state_up. Reason: '{changes['admin_state_up']}' "
                                 "is not a valid boolean value.")
            values["admin_state_up"] = changes["admin_state_up"]
        if "description" in changes:
            desc = changes["description"]
            if not isinstance(desc, str) or len(desc) > 255:
                raise BadRequest("Invalid input for description. Reason: not a string of at most 255 "
                                 "characters.")
            values["description"] = desc
        if values:
            conn.execute(update(m.agents).where(m.agents.c.id == agent_id).values(**values))

    def delete(self, conn: Connection, agent_id: str) -> None:
        self.get(conn, agent_id)
        fip_status.agent_gone(conn, agent_id)  # its router bindings go with it (ON DELETE CASCADE)
        conn.execute(delete(m.network_dhcp_agents).where(m.network_dhcp_agents.c.dhcp_agent_id == agent_id))
        conn.execute(delete(m.agents).where(m.agents.c.id == agent_id))

    def liveness(self, conn: Connection) -> list[AgentSample]:
        """Every agent's liveness now (for /metrics)."""
        a = m.agents.c
        at = now()
        return [AgentSample(t, h, self.alive(hb, at), max(0.0, (at - hb).total_seconds()))
                for t, h, hb in conn.execute(select(a.agent_type, a.host, a.heartbeat_timestamp))]

    def ids_alive(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        return [r["id"] for r in rows if self.alive(r["heartbeat_timestamp"]) and r["admin_state_up"]]

    def cutoff(self) -> datetime:
        """Agents whose last heartbeat is older than this are dead."""
        return now() - timedelta(seconds=self.down_time)

    def still_dead(self, conn: Connection, agent_id: str) -> dict[str, Any] | None:
        """The agent's row when it is enabled and dead, locked until commit so that a heartbeat arriving
        meanwhile waits and a failover step never takes work from an agent that just came back; None when it
        is alive, disabled or gone. SQLite has one writer at a time anyway."""
        stmt = select(m.agents).where(m.agents.c.id == agent_id)
        if conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None or not row.admin_state_up or self.alive(row.heartbeat_timestamp):
            return None
        return dict(row._mapping)


def _zone(report: StateReport) -> str:
    return report.availability_zone or "nova"


def _boolean(value: str, key: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise BadRequest(f"Invalid input for {key}. Reason: '{value}' is not a valid boolean value.")
