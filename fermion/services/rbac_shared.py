"""Collections whose ``shared`` reads per caller: shared with the caller's project or with every project
through RBAC access_as_shared grants (address scopes, subnet pools, address groups)."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Connection, Table

from fermion.resources.base import Resource
from fermion.services import rbac_access
from fermion.services.query import Collection


class RbacSharedCollection(Collection):
    def __init__(self, resource: Resource, table: Table, object_type: str) -> None:
        super().__init__(resource, table)
        self.object_type = object_type

    def policy_condition(self, attr: str, value: object, creds: dict[str, Any]) -> Any:
        if attr == "shared":  # rule shared_<collection>: shared with the caller through RBAC
            return rbac_access.shared_condition(self.table.c.id, self.object_type, value, creds.get("project_id"))
        return super().policy_condition(attr, value, creds)

    def for_caller(self, conn: Connection, items: list[dict[str, Any]], project_id: str | None) -> None:
        rbac_access.mark_shared(conn, items, self.object_type, project_id)

    def where(self, q: Any) -> list[Any]:
        flags = q.filters.get("shared")
        if flags is None:
            return super().where(q)
        conds = super().where(dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k != "shared"}))
        wanted = set(flags)
        if len(wanted) == 1:  # the shared filter: shared as the caller sees it
            conds.append(rbac_access.shared_condition(self.table.c.id, self.object_type, wanted.pop(),
                                                      q.project_id))
        return conds
