"""Address scopes: which subnet pools' prefixes share one routing domain (routers do not NAT inside one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.address_scope import ADDRESS_SCOPE
from fermion.services import common, rbac_access
from fermion.services.quotas import QuotaService
from fermion.services.rbac import count_unlimited, revoke_all
from fermion.services.rbac_shared import RbacSharedCollection


def accessible(conn: Connection, object_type: str, row: dict[str, Any], ctx: Context | None) -> bool:
    """May the caller use (not only see) a scope or pool: its own, shared with its project or with all
    (RBAC access_as_shared), or admin."""
    if ctx is None or ctx.is_admin or row["project_id"] == ctx.project_id:
        return True
    return rbac_access.has_access(conn, object_type, row["id"], ctx.project_id)


def share(conn: Connection, quotas: QuotaService, object_type: str, object_id: str, owner: str) -> None:
    """shared=True stands for a wildcard access_as_shared grant, as for networks (counted, never refused)."""
    if rbac_access.grant(conn, owner, object_type, object_id, rbac_access.SHARED) is not None:
        count_unlimited(conn, quotas, owner)


class AddressScopeService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = RbacSharedCollection(ADDRESS_SCOPE, m.address_scopes, "address_scope")
        self.quotas = quotas

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = common.standard_row(item)
            row.update(shared=item["shared"], ip_version=item["ip_version"])
            conn.execute(insert(m.address_scopes).values(**row))
            if row["shared"]:
                share(conn, self.quotas, "address_scope", row["id"], row["project_id"])
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        if orig["shared"] and changes.get("shared") is False:
            raise BadRequest(f"Unable to update address scope {orig['id']} : Shared address scope can't be "
                             "unshared.", type="AddressScopeUpdateError")
        common.bump(conn, m.address_scopes, orig["id"], changes, expect_revision)
        if changes.get("shared"):
            share(conn, self.quotas, "address_scope", orig["id"], orig["project_id"])

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
        revoke_all(conn, self.quotas, "address_scope", sid)
        conn.execute(delete(m.address_scopes).where(m.address_scopes.c.id == sid))


def load_scope(conn: Connection, scope_id: str, ctx: Context | None) -> dict[str, Any]:
    """The scope a pool names, if the caller may use it (else 404 as Neutron's)."""
    row = conn.execute(select(m.address_scopes).where(m.address_scopes.c.id == scope_id)).first()
    if row is None or not accessible(conn, "address_scope", dict(row._mapping), ctx):
        raise NotFound(f"Address scope {scope_id} could not be found.", type="AddressScopeNotFound")
    return dict(row._mapping)
