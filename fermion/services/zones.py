"""Availability zones: the zones agents report, per resource (DHCP agents serve networks, L3 agents routers),
zone hints on networks and routers, and the zones that host them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import Connection, Table, select

from fermion.db import models as m
from fermion.errors import BadRequest, NotFound
from fermion.services.agents import DHCP_AGENT, L3_AGENT

RESOURCE_AGENT = {"network": DHCP_AGENT, "router": L3_AGENT}
AGENT_RESOURCE = {agent: resource for resource, agent in RESOURCE_AGENT.items()}
FILTERS = ("name", "resource", "state")
HINTS_LENGTH = 255  # Neutron keeps the hints as one JSON string of at most this length


class AvailabilityZoneNotFound(NotFound):
    type = "AvailabilityZoneNotFound"


def check_hints(hints: list[str]) -> list[str]:
    """The hints' total size as Neutron bounds it (its validator already made them unique strings)."""
    if len(orjson.dumps(hints)) > HINTS_LENGTH:
        raise BadRequest("Invalid input for operation: Too many availability_zone_hints specified.",
                         type="InvalidInput")
    return hints


def list_zones(conn: Connection, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One zone per (name, resource): available when any of its agents is administratively up (Neutron does
    not look at liveness here)."""
    unknown = sorted(k for k in filters if k not in FILTERS)
    if unknown:
        raise BadRequest(f"{', '.join(unknown)} is invalid attribute for filtering", type="HTTPBadRequest")
    a = m.agents.c
    up: dict[tuple[str, str], bool] = {}
    for agent_type, zone, admin_up in conn.execute(
            select(a.agent_type, a.availability_zone, a.admin_state_up)
            .where(a.agent_type.in_(list(AGENT_RESOURCE))).distinct()):
        if zone:
            where = (zone, AGENT_RESOURCE[agent_type])
            up[where] = up.get(where, False) or bool(admin_up)
    items = [{"name": name, "resource": resource, "state": "available" if ok else "unavailable"}
             for (name, resource), ok in sorted(up.items())]
    for key, values in filters.items():
        items = [i for i in items if i[key] in values]
    return items


def validate_hints(conn: Connection, resource: str, hints: list[str]) -> None:
    """Every hinted zone has an agent serving the resource (Neutron's AvailabilityZoneNotFound otherwise)."""
    if not hints:
        return
    a = m.agents.c
    found = {r[0] for r in conn.execute(select(a.availability_zone).where(
        a.agent_type == RESOURCE_AGENT[resource], a.availability_zone.in_(hints)).distinct())}
    missing = [h for h in hints if h not in found]
    if missing:
        raise AvailabilityZoneNotFound(f"AvailabilityZone {missing[0]} could not be found.")


def hosting_zones(conn: Connection, resource: str, ids: list[str]) -> dict[str, list[str]]:
    """The zones of the agents that host each network (DHCP) or router (L3)."""
    if not ids:
        return {}
    table: Table = m.network_dhcp_agents if resource == "network" else m.router_l3_agents
    key = table.c.network_id if resource == "network" else table.c.router_id
    agent = table.c.dhcp_agent_id if resource == "network" else table.c.l3_agent_id
    stmt = select(key, m.agents.c.availability_zone).join(m.agents, m.agents.c.id == agent).distinct()
    if len(ids) <= 500:
        stmt = stmt.where(key.in_(ids))
    out: dict[str, set[str]] = defaultdict(set)
    for ident, zone in conn.execute(stmt):
        if zone:
            out[ident].add(zone)
    return {ident: sorted(zones) for ident, zones in out.items()}


def in_hinted_zones(candidates: list[dict[str, Any]], hints: list[str] | None) -> list[dict[str, Any]]:
    """The agents a resource with these hints may be scheduled to: all without hints, else those in them."""
    if not hints:
        return candidates
    return [c for c in candidates if c["availability_zone"] in hints]
