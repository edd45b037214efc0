"""Address scopes: which subnet pools' prefixes share one routing domain (routers do not NAT inside one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.address_scope import ADDRESS_SCOPE
from fermion.services import common
from fermion.services.query import Collection


class SharedCollection(Collection):
    """A collection whose rows carry Neutron's `shared` flag.

    Sharing is the row's own column for now: policy rules `field:<collection>:shared=True` become
    `shared IS TRUE` in SQL. When the RBAC registry (rbac-policies, access_as_shared) lands, this
    `policy_column("shared")` is the one place to replace with its EXISTS subquery (target '*' or the
    caller's project), and `accessible` below with the same rule in Python."""

    def policy_column(self, attr: str) -> ColumnElement[Any] | None:
        return super().policy_column(attr)


def accessible(row: dict[str, Any], ctx: Context | None) -> bool:
    """May the caller use (not only see) a scope or pool: its own, shared, or admin. RBAC replaces this."""
    if ctx is None or ctx.is_admin:
        return True
    return bool(row["shared"]) or row["project_id"] == ctx.project_id


class AddressScopeService:
    def __init__(self) -> None:
        self.collection = SharedCollection(ADDRESS_SCOPE, m.address_scopes)

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = common.standard_row(item)
            row.update(shared=item["shared"], ip_version=item["ip_version"])
            conn.execute(insert(m.address_scopes).values(**row))
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        if orig["shared"] and changes.get("shared") is False:
            raise BadRequest(f"Unable to update address scope {orig['id']} : Shared address scope can't be "
                             "unshared.", type="AddressScopeUpdateError")
        common.bump(conn, m.address_scopes, orig["id"], changes, expect_revision)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        sid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.address_scopes, sid, {}, expect_revision)
        used = conn.execute(select(m.subnetpools.c.id).where(m.subnetpools.c.address_scope_id == sid)
                            .limit(1)).first()
        if used is not None:
            raise Conflict(f"Unable to complete operation on address scope {sid}. There are one or more subnet "
                           "pools in use on the address scope.", type="AddressScopeInUse")
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == sid))
        conn.execute(delete(m.address_scopes).where(m.address_scopes.c.id == sid))


def load_scope(conn: Connection, scope_id: str, ctx: Context | None) -> dict[str, Any]:
    """The scope a pool names, if the caller may use it (else 404 as Neutron's)."""
    row = conn.execute(select(m.address_scopes).where(m.address_scopes.c.id == scope_id)).first()
    if row is None or not accessible(dict(row._mapping), ctx):
        raise NotFound(f"Address scope {scope_id} could not be found.", type="AddressScopeNotFound")
    return dict(row._mapping)
