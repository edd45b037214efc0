"""Security groups, and each project's default group (created on first use, race-free)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, insert, or_, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.engine import Database, RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import Conflict, NotFound
from fermion.resources.security_group import SECURITY_GROUP
from fermion.rpc.contracts import Hint
from fermion.services import common, rbac_access
from fermion.services.default_security_group_rules import rules_from_templates
from fermion.services.query import Collection, ListQuery
from fermion.services.quotas import QuotaService
from fermion.services.rbac import revoke_all
from fermion.services.security_group_rules import (
    SecurityGroupRuleCollection,
    insert_rules,
    release_rules,
    touch_groups,
)

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"

# built once: building a statement costs more than running it on the port create path
_d, _g = m.default_security_groups.c, m.securitygroups.c
_DEFAULT_ID = select(_d.security_group_id).where(_d.project_id == bindparam("b_project"))
_DEFAULT_GROUP = (select(_g.id, _g.revision_number)
                  .join_from(m.default_security_groups, m.securitygroups, _g.id == _d.security_group_id)
                  .where(_d.project_id == bindparam("b_project")))
_GROUPS = (select(_g.id, _g.project_id, _g.revision_number, _g.stateful)
           .where(_g.id.in_(bindparam("b_ids", expanding=True))))
_PLAIN = {stmt: Prepared(stmt) for stmt in (_DEFAULT_GROUP, _GROUPS)}
_SHARE_LOCKED = {stmt: Prepared(stmt.with_for_update(read=True)) for stmt in (_DEFAULT_GROUP, _GROUPS)}


class SecurityGroupCollection(Collection):
    def __init__(self) -> None:
        super().__init__(SECURITY_GROUP, m.securitygroups)
        self.rules = SecurityGroupRuleCollection()

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        ids = [i["id"] for i in items]
        rules = self.rules.of_groups(conn, ids) if items else {}
        for item in items:
            item["shared"] = False  # until for_caller: shared is what the caller's project is granted
            item["security_group_rules"] = rules.get(item["id"], [])

    def policy_condition(self, attr: str, value: object, creds: dict[str, Any]) -> Any:
        if attr == "shared":  # rule shared_security_group: shared with the caller through RBAC
            return rbac_access.shared_condition(m.securitygroups.c.id, "security_group", value,
                                                creds.get("project_id"))
        return super().policy_condition(attr, value, creds)

    def for_caller(self, conn: Connection, items: list[dict[str, Any]], project_id: str | None) -> None:
        rbac_access.mark_shared(conn, items, "security_group", project_id)

    def where(self, q: Any) -> list[Any]:
        flags = q.filters.get("shared")
        if flags is None:
            return super().where(q)
        conds = super().where(dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k != "shared"}))
        wanted = set(flags)
        if len(wanted) == 1:  # security-groups-shared-filtering: shared as the caller sees it
            conds.append(rbac_access.shared_condition(self.table.c.id, "security_group", wanted.pop(), q.project_id))
        return conds


def default_group_id(conn: Connection, project_id: str) -> str | None:
    found: str | None = conn.execute(_DEFAULT_ID, {"b_project": project_id}).scalar()
    return found


def _count_unlimited(conn: Connection, quotas: QuotaService, project_id: str, resource: str, count: int) -> None:
    """Count rows in the project's usage without enforcing its limit (the default group is not refused)."""
    quotas.release(conn, project_id, resource, -count)


def ensure_default_group(conn: Connection, project_id: str, quotas: QuotaService) -> tuple[str, int]:
    """The project's default group and its revision, created with Neutron's four rules if it has none yet.

    The group is share-locked until commit (see _locked_groups). Race-free: the default_security_groups
    primary key admits one group per project; a creator that loses the insert drops its own group and
    uses the winner's.
    """
    found = _locking(conn, _DEFAULT_GROUP).first(conn, {"b_project": project_id})
    if found is not None:
        return found[0], found[1]
    if default_group_id(conn, project_id) is not None:  # deleted by an admin meanwhile: start over
        raise RetryRequest("default security group deleted concurrently")
    row = common.standard_row({"project_id": project_id, "name": DEFAULT_NAME, "description": DEFAULT_DESCRIPTION})
    row["stateful"] = True
    conn.execute(insert(m.securitygroups).values(**row))
    if not insert_if_absent(conn, m.default_security_groups,
                            {"project_id": project_id, "security_group_id": row["id"]}):
        conn.execute(delete(m.securitygroups).where(m.securitygroups.c.id == row["id"]))
        winner = _locking(conn, _DEFAULT_GROUP).first(conn, {"b_project": project_id})
        if winner is None:  # the winner's group went away meanwhile: start over
            raise RetryRequest("default security group deleted concurrently")
        return winner[0], winner[1]
    rules = rules_from_templates(conn, project_id, row["id"], default=True)
    insert_rules(conn, rules)
    _count_unlimited(conn, quotas, project_id, "security_group", 1)
    _count_unlimited(conn, quotas, project_id, "security_group_rule", len(rules))
    return str(row["id"]), 1


def usable_groups(conn: Connection, group_ids: Sequence[str], project_id: str) -> dict[str, int]:
    """The groups a port of the project may join, with their revisions: they must exist and belong to the
    project or be shared with it (RBAC access_as_shared), and be all stateful or all stateless (as Neutron)."""
    wanted = sorted(set(group_ids))
    rows = _locked_groups(conn, wanted)  # (id, project, revision, stateful)
    theirs = [r[0] for r in rows if r[1] != project_id]
    shared = rbac_access.shared_with(conn, "security_group", theirs, project_id) if theirs else set()
    rows = [r for r in rows if r[1] == project_id or r[0] in shared]
    found = {r[0]: r[2] for r in rows}
    missing = [gid for gid in wanted if gid not in found]
    if missing:
        raise NotFound(f"Security group {', '.join(missing)} does not exist", type="SecurityGroupNotFound")
    if len({r[3] for r in rows}) > 1:
        raise Conflict("Error Cannot apply both stateful and stateless security groups on the same port at the "
                       "same time while attempting the operation.", type="SecurityGroupConflict")
    return {gid: found[gid] for gid in wanted}


def _locked_groups(conn: Connection, group_ids: Sequence[str]) -> list[Any]:
    """(id, project_id, revision_number) of the groups that exist, share-locked until commit so that a
    concurrent delete (which locks the group for update first) either waits for a port joining it or is
    seen as done."""
    if not group_ids:
        return []
    return _locking(conn, _GROUPS).rows(conn, {"b_ids": list(group_ids)})


def _locking(conn: Connection, stmt: Select[Any]) -> Prepared:
    return _PLAIN[stmt] if conn.dialect.name == "sqlite" else _SHARE_LOCKED[stmt]


def in_use(conn: Connection, group_id: str) -> bool:
    b = m.port_security_groups.c
    return conn.execute(select(b.port_id).where(b.security_group_id == group_id).limit(1)).first() is not None


def _check_name(name: str) -> None:
    if name.lower() == DEFAULT_NAME:
        raise Conflict("Default security group already exists.", type="SecurityGroupDefaultAlreadyExists")


class SecurityGroupService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = SecurityGroupCollection()
        self.quotas = quotas

    def before_list(self, db: Database, ctx: Context, q: ListQuery) -> None:
        """Listing groups creates a default group on first use, as Neutron: the caller's, or that of the
        project the list is filtered by (when the caller is an admin or that project)."""
        project = ctx.project_id
        if not project:
            return
        wanted = q.filters.get("project_id")
        if wanted and isinstance(wanted[0], str) and wanted[0] and (ctx.is_admin or wanted[0] == project):
            project = wanted[0]
        with db.read() as conn:
            if default_group_id(conn, project) is not None:
                return
        db.write(lambda conn: ensure_default_group(conn, project, self.quotas))

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        """Insert the groups with their egress rules; return the inserted rows."""
        rows = []
        n_rules: dict[str, int] = defaultdict(int)
        for item in items:
            _check_name(item["name"])
            ensure_default_group(conn, item["project_id"], self.quotas)
            row = common.standard_row(item)
            row["stateful"] = item["stateful"]
            conn.execute(insert(m.securitygroups).values(**row))
            rules = rules_from_templates(conn, row["project_id"], row["id"], default=False)
            insert_rules(conn, rules)
            n_rules[row["project_id"]] += len(rules)
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "security_group", count)
            self.quotas.charge(conn, project, "security_group_rule", n_rules[project])
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        gid = orig["id"]
        if "name" in changes:
            _check_name(changes["name"])
            if orig["name"] == DEFAULT_NAME:
                raise Conflict("Updating default security group not allowed.",
                               type="SecurityGroupCannotUpdateDefault")
        stateful_changed = "stateful" in changes and changes["stateful"] != orig["stateful"]
        if stateful_changed and in_use(conn, gid):
            raise Conflict(f"Security Group {gid} in use.", type="SecurityGroupInUse")
        common.bump(conn, m.securitygroups, gid, changes, expect_revision)
        if stateful_changed:
            common.emit(conn, Hint("security_group", gid, orig["revision_number"] + 1, None, None))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        gid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.securitygroups, gid, {}, expect_revision)
        if in_use(conn, gid):
            raise Conflict(f"Security Group {gid} in use.", type="SecurityGroupInUse")
        if orig["name"] == DEFAULT_NAME and not (ctx is not None and ctx.is_admin):
            raise Conflict("Insufficient rights for removing default security group.",
                           type="SecurityGroupCannotRemoveDefault")
        r = m.securitygrouprules.c
        # its own rules, and other groups' rules that name it as their remote group
        theirs = or_(r.security_group_id == gid, r.remote_group_id == gid)
        doomed = conn.execute(select(r.id, r.project_id, r.security_group_id).where(theirs)).all()
        conn.execute(delete(m.securitygrouprules).where(theirs))
        release_rules(conn, self.quotas, [(d.id, d.project_id) for d in doomed])
        touch_groups(conn, _others(doomed, gid))
        conn.execute(delete(m.default_security_groups).where(m.default_security_groups.c.security_group_id == gid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == gid))
        revoke_all(conn, self.quotas, "security_group", gid)
        conn.execute(delete(m.securitygroups).where(m.securitygroups.c.id == gid))
        self.quotas.release(conn, orig["project_id"], "security_group")


def _others(rules: Iterable[Any], group_id: str) -> set[str]:
    return {r.security_group_id for r in rules if r.security_group_id != group_id}
