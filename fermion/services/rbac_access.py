"""Reading and writing RBAC grants: the small core every service consults ("may project P use object O?").

A grant is a row of ``rbac_policies``: (object_type, object_id, action, target_project), the target being a
project id or ``*`` for every project. The API side of policies (validation, in-use checks) is services/rbac.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, delete, exists, not_, select

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.writes import insert_if_absent, new_id

SHARED = "access_as_shared"
EXTERNAL = "access_as_external"
WILDCARD = "*"

_r = m.rbac_policies.c
_HAS_ACCESS = Prepared(select(_r.id).where(
    _r.object_type == bindparam("b_type"), _r.object_id == bindparam("b_id"),
    _r.action.in_(bindparam("b_actions", expanding=True)),
    _r.target_project.in_(bindparam("b_targets", expanding=True))).limit(1))
_TARGETED = Prepared(select(_r.object_id).where(
    _r.object_type == bindparam("b_type"), _r.action == bindparam("b_action"),
    _r.target_project.in_(bindparam("b_targets", expanding=True)),
    _r.object_id.in_(bindparam("b_ids", expanding=True))))
_ALL_TARGETED = Prepared(select(_r.object_id).where(
    _r.object_type == bindparam("b_type"), _r.action == bindparam("b_action"),
    _r.target_project.in_(bindparam("b_targets", expanding=True))))


_n = m.networks.c
# a network's project, its shared flag and whether access_as_shared is granted to b_targets, in one read
_NETWORK_SHARING = Prepared(select(_n.project_id, _n.shared, exists().where(
    _r.object_type == "network", _r.object_id == _n.id, _r.action == SHARED,
    _r.target_project.in_(bindparam("b_targets", expanding=True))).label("granted")).where(_n.id == bindparam("b_id")))


def _targets(project_id: str | None) -> list[str]:
    return [WILDCARD] if not project_id else [WILDCARD, project_id]


def granted(object_type: str, action: str, project_id: str | None) -> Select[Any]:
    """The ids of the objects of a type that ``action`` is granted on to the project (or to every project):
    one uncorrelated subquery, so a list filters with one semi-join instead of a probe per row."""
    return select(_r.object_id).where(_r.object_type == object_type, _r.action == action,
                                      _r.target_project.in_(_targets(project_id)))


def shared_condition(id_column: ColumnElement[Any], object_type: str, value: object,
                     project_id: str | None) -> ColumnElement[bool]:
    """SQL for a collection's ``shared == value`` as the caller sees it (the policy rule ``field:...:shared``
    and the ``shared`` filter): shared with the caller's project or with every project."""
    cond = id_column.in_(granted(object_type, SHARED, project_id))
    return cond if value is True else not_(cond)


def mark_shared(conn: Connection, items: list[dict[str, Any]], object_type: str, project_id: str | None) -> None:
    """Set ``shared`` on a page of items as the caller sees it (True when shared with it or with all)."""
    todo = [i["id"] for i in items if not i.get("shared")]
    shared = shared_with(conn, object_type, todo, project_id) if todo else set()
    for item in items:
        item["shared"] = bool(item.get("shared")) or item["id"] in shared


def has_access(conn: Connection, object_type: str, object_id: str, project_id: str | None,
               actions: Sequence[str] = (SHARED,)) -> bool:
    """True when one of ``actions`` on the object is granted to the project or to every project."""
    found = _HAS_ACCESS.first(conn, {"b_type": object_type, "b_id": object_id, "b_actions": list(actions),
                                     "b_targets": _targets(project_id)})
    return found is not None


def network_sharing(conn: Connection, network_id: str, project_id: str | None) -> tuple[str, bool] | None:
    """A network's project and whether it is shared as the project sees it (with every project, or granted
    to this one; without a project, the flag only), or None when there is no such network."""
    row = _NETWORK_SHARING.first(conn, {"b_id": network_id, "b_targets": _targets(project_id)})
    if row is None:
        return None
    owner, shared, granted = row
    return owner, bool(shared) or (bool(project_id) and bool(granted))


def shared_with(conn: Connection, object_type: str, ids: Sequence[str], project_id: str | None,
                action: str = SHARED) -> set[str]:
    """Which of the objects are shared with the project, or with every project (the ``shared`` attribute)."""
    if not ids:
        return set()
    params: dict[str, Any] = {"b_type": object_type, "b_action": action, "b_targets": _targets(project_id)}
    if len(ids) > 2000:  # large pages: the grants to one project are few, the parameters would be many
        wanted = set(ids)
        return {r[0] for r in _ALL_TARGETED.rows(conn, params) if r[0] in wanted}
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        out.update(r[0] for r in _TARGETED.rows(conn, {**params, "b_ids": list(ids[i:i + 500])}))
    return out


def grant(conn: Connection, project_id: str, object_type: str, object_id: str, action: str,
          target: str = WILDCARD) -> str | None:
    """Insert a grant; its id, or None when the same grant exists already."""
    ident = new_id()
    row = {"id": ident, "project_id": project_id, "object_type": object_type, "object_id": object_id,
           "action": action, "target_project": target}
    return ident if insert_if_absent(conn, m.rbac_policies, row) else None


def revoke(conn: Connection, object_type: str, object_id: str, actions: Iterable[str] | None = None,
           target: str | None = None) -> list[str]:
    """Delete an object's grants (of some actions, to one target); the owning project of each one deleted
    (for the quota usage)."""
    cond = [_r.object_type == object_type, _r.object_id == object_id]
    if actions is not None:
        cond.append(_r.action.in_(list(actions)))
    if target is not None:
        cond.append(_r.target_project == target)
    rows = conn.execute(select(_r.id, _r.project_id).where(*cond)).all()
    if rows:
        conn.execute(delete(m.rbac_policies).where(_r.id.in_([r.id for r in rows])))
    return [r.project_id for r in rows]
