"""Helpers shared by the aggregate services."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, update
from sqlalchemy.sql.elements import ClauseElement

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.writes import new_id
from fermion.errors import PreconditionFailed
from fermion.resources.base import AUTO, UNSET, Resource


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None)


def standard_row(item: dict[str, Any]) -> dict[str, Any]:
    ts = now()
    return {
        "id": item.get("id") or new_id(),
        "project_id": item["project_id"],
        "name": item.get("name", ""),
        "description": item.get("description", ""),
        "created_at": ts,
        "updated_at": ts,
        "revision_number": 1,  # as Neutron: a new resource is at revision 1
    }


def set_tags(conn: Connection, resource_id: str, tags: list[str], fresh: bool = False) -> None:
    """Replace a resource's tags; fresh: the resource was just created and has none."""
    if not fresh:
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == resource_id))
    add_tags(conn, [(resource_id, tags)])


def add_tags(conn: Connection, tags: list[tuple[str, list[str]]]) -> None:
    """Tag resources that have none yet (just created), given (resource id, tags) pairs, in one statement."""
    rows = [{"resource_id": rid, "tag": t} for rid, names in tags for t in sorted(set(names))]
    if rows:
        conn.execute(insert(m.tags), rows)


def bump(conn: Connection, table: Table, ident: str, values: dict[str, Any],
         expect_revision: int | None = None) -> None:
    """Update a row and its revision; with expect_revision, only if the revision still matches."""
    if any(isinstance(v, ClauseElement) for v in values.values()):  # an SQL expression: built each time
        stmt = update(table).where(table.c.id == ident)
        if expect_revision is not None:
            stmt = stmt.where(table.c.revision_number == expect_revision)
        count = conn.execute(stmt.values(**values, updated_at=now(),
                                         revision_number=table.c.revision_number + 1)).rowcount
    else:
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(b_id=ident, b_now=now())
        if expect_revision is not None:
            params["b_revision"] = expect_revision
        count = _bump_statement(table, tuple(values), expect_revision is not None).run(conn, params)
    if count == 0 and expect_revision is not None:
        raise PreconditionFailed(
            f"Constrained to revision number {expect_revision} but the resource has changed.")


_BUMPS: dict[tuple[str, tuple[str, ...], bool], Prepared] = {}


def _bump_statement(table: Table, columns: tuple[str, ...], expect: bool) -> Prepared:
    """bump's UPDATE for these columns, built once (SQLAlchemy's per-call statement building and caching
    cost more than running it)."""
    key = (table.name, columns, expect)
    found = _BUMPS.get(key)
    if found is None:
        c = table.c
        stmt = update(table).where(c.id == bindparam("b_id"))
        if expect:
            stmt = stmt.where(c.revision_number == bindparam("b_revision"))
        stmt = stmt.values({c[k]: bindparam(f"v_{k}", type_=c[k].type) for k in columns})
        found = Prepared(stmt.values(updated_at=bindparam("b_now", type_=c.updated_at.type),
                                     revision_number=c.revision_number + 1))
        if len(_BUMPS) < 512:  # the columns callers change come in a bounded number of shapes
            _BUMPS[key] = found
    return found


def emit(conn: Connection, event: Any) -> None:
    """Queue an event (an rpc.contracts.Hint) to be published once this write transaction commits."""
    events = conn.info.get("fermion.events")
    if events is not None:
        events.append(event)


def count_by_project(items: list[dict[str, Any]]) -> dict[str, int]:
    """How many of the items each project creates (what quotas charge)."""
    out: dict[str, int] = {}
    for item in items:
        out[item["project_id"]] = out.get(item["project_id"], 0) + 1
    return out


def create_item(res: Resource, raw: dict[str, Any], project: str) -> dict[str, Any]:
    """A create item as the API would make it from raw: every creatable attribute, defaults filled in (for
    what a service builds itself: auto-allocated topologies, HA networks)."""
    out: dict[str, Any] = {}
    for attr in res.attributes:
        if not attr.post:
            continue
        if attr.name in raw:
            out[attr.name] = raw[attr.name]
        elif attr.default is UNSET or attr.default is AUTO:  # e.g. a subnet's cidr: the pool chooses it
            out[attr.name] = AUTO
        else:
            out[attr.name] = copy.deepcopy(attr.default)
    out["project_id"] = out["tenant_id"] = project
    return out
