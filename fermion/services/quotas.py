"""Quotas: Neutron's defaults, per-project overrides, and race-free enforcement at create."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Integer, bindparam, delete, func, insert, or_, select, update

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import OverQuota

DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
            "security_group": 10, "security_group_rule": 100, "rbac_policy": 10}
TABLES = {"network": m.networks, "subnet": m.subnets, "port": m.ports, "router": m.routers,
          "floatingip": m.floatingips, "security_group": m.securitygroups,
          "security_group_rule": m.securitygrouprules, "rbac_policy": m.rbac_policies}

# built once (see db/writes.py); the limit is the project's override, else the default passed in
_u, _q = m.quota_usages.c, m.quotas.c
_LIMIT = func.coalesce(select(_q.limit).where(_q.project_id == bindparam("b_project"),
                                              _q.resource == bindparam("b_resource")).scalar_subquery(),
                       bindparam("b_default", type_=Integer))
_CHARGE = Prepared(update(m.quota_usages)
                   .where(_u.project_id == bindparam("b_project"), _u.resource == bindparam("b_resource"),
                          or_(_LIMIT < 0, _u.in_use + bindparam("b_count", type_=Integer) <= _LIMIT))
                   .values(in_use=_u.in_use + bindparam("b_count", type_=Integer)))


class QuotaService:
    def __init__(self, defaults: dict[str, int] | None = None) -> None:
        self.defaults = dict(DEFAULTS)
        if defaults:
            self.defaults.update(defaults)

    def limits(self, conn: Connection, project_id: str) -> dict[str, int]:
        out = dict(self.defaults)
        for res, lim in conn.execute(select(m.quotas.c.resource, m.quotas.c.limit)
                                     .where(m.quotas.c.project_id == project_id)):
            if res in out:
                out[res] = lim
        return out

    def projects_with_overrides(self, conn: Connection) -> list[str]:
        return [r[0] for r in conn.execute(select(m.quotas.c.project_id).distinct())]

    def set_limits(self, conn: Connection, project_id: str, values: dict[str, int]) -> None:
        for res, lim in values.items():
            done = conn.execute(update(m.quotas).where(m.quotas.c.project_id == project_id,
                                                       m.quotas.c.resource == res).values(limit=lim))
            if done.rowcount == 0:
                conn.execute(insert(m.quotas).values(project_id=project_id, resource=res, limit=lim))
            # the usage row is recomputed from the resources on next use
            conn.execute(delete(m.quota_usages).where(m.quota_usages.c.project_id == project_id,
                                                      m.quota_usages.c.resource == res))

    def reset(self, conn: Connection, project_id: str) -> None:
        conn.execute(delete(m.quotas).where(m.quotas.c.project_id == project_id))
        conn.execute(delete(m.quota_usages).where(m.quota_usages.c.project_id == project_id))

    def used(self, conn: Connection, project_id: str) -> dict[str, int]:
        return {res: conn.execute(select(func.count()).select_from(t).where(t.c.project_id == project_id))
                .scalar_one() for res, t in TABLES.items()}

    def details(self, conn: Connection, project_id: str) -> dict[str, Any]:
        limits, used = self.limits(conn, project_id), self.used(conn, project_id)
        return {res: {"limit": limits[res], "used": used[res], "reserved": 0} for res in limits}

    def charge(self, conn: Connection, project_id: str, resource: str, count: int) -> None:
        """Call after inserting `count` rows, inside the same transaction, as late as possible.

        One conditional UPDATE of the usage row checks the limit and counts the new rows; it holds that row's
        lock until commit, so concurrent creates for one project cannot both take the last free unit.
        """
        if not project_id:
            return  # what the service owns for no project (floating IP and gateway ports) counts nowhere
        u = m.quota_usages.c
        done = _CHARGE.run(conn, {"b_project": project_id, "b_resource": resource, "b_count": count,
                                  "b_default": self.defaults[resource]})
        if done == 1:
            return
        # no usage row yet (first create, or limits changed), or over the limit
        cap = self.limits(conn, project_id)[resource]
        exists = conn.execute(select(u.in_use).where(u.project_id == project_id, u.resource == resource)).first()
        if exists is not None:
            if cap < 0 or exists.in_use + count <= cap:
                # the row was committed by another create after our UPDATE looked: run again
                raise RetryRequest("quota usage row appeared concurrently")
            raise OverQuota(resource)
        table = TABLES[resource]
        in_use = conn.execute(select(func.count()).select_from(table)
                              .where(table.c.project_id == project_id)).scalar_one()
        if 0 <= cap < in_use:
            raise OverQuota(resource)
        if not insert_if_absent(conn, m.quota_usages, {"project_id": project_id, "resource": resource,
                                                       "in_use": in_use}):
            raise RetryRequest("quota usage row created concurrently")

    def release(self, conn: Connection, project_id: str, resource: str, count: int = 1) -> None:
        if not project_id:
            return
        u = m.quota_usages.c
        conn.execute(update(m.quota_usages).where(u.project_id == project_id, u.resource == resource)
                     .values(in_use=u.in_use - count))
