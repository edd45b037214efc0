"""QoS policies and their rules (qos, qos-default, qos-bw-limit-direction).

A policy is shared the way networks are: ``shared`` is the wildcard access_as_shared grant (object type
qos_policy). Rules belong to one policy: one bandwidth limit per direction, one DSCP mark, one minimum
bandwidth per direction (unique keys), and a minimum may not exceed the limit of its direction. Whatever
changes what a policy enforces hints the agents of what uses it (services/qos_bindings.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import Conflict, NotFound
from fermion.resources.qos import (
    BANDWIDTH_LIMIT,
    MINIMUM_BANDWIDTH,
    QOS_POLICY,
    RULE_TYPES,
    RuleType,
)
from fermion.services import common, rbac_access
from fermion.services.qos_bindings import in_use, policy_changed, rbac_in_use
from fermion.services.query import Collection, ListQuery, chunks
from fermion.services.quotas import QuotaService
from fermion.services.rbac import count_unlimited, in_use_error, revoke_all
from fermion.services.rbac_shared import RbacSharedCollection

TABLES: dict[str, Table] = {"bandwidth_limit": m.qos_bandwidth_limit_rules, "dscp_marking": m.qos_dscp_marking_rules,
                            "minimum_bandwidth": m.qos_minimum_bandwidth_rules}
_d = m.qos_policies_default.c


def load_rules(conn: Connection, policy_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each policy's rules as the policy shows them: with their type and policy id, by type then id."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, table in TABLES.items():
        for part in chunks(list(policy_ids)):
            for row in conn.execute(select(table).where(table.c.qos_policy_id.in_(part)).order_by(table.c.id)):
                # column keys are str subclasses (quoted_name): plain str, as orjson wants
                out[row.qos_policy_id].append({**{str(k): v for k, v in zip(table.c.keys(), row, strict=True)},
                                               "type": name})
    return out


class PolicyCollection(RbacSharedCollection):
    """rules, and is_default (a row of qos_policies_default), are not columns of the policy."""

    def __init__(self) -> None:
        super().__init__(QOS_POLICY, m.qos_policies, "qos_policy")
        self.columns["is_default"] = m.qos_policies.c.id.in_(select(_d.qos_policy_id))

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        ids = [i["id"] for i in items]
        rules = load_rules(conn, ids) if ids else {}
        defaults: set[str] = set()
        for part in chunks(ids):
            defaults.update(conn.execute(select(_d.qos_policy_id).where(_d.qos_policy_id.in_(part))).scalars())
        for item in items:
            item["rules"] = rules.get(item["id"], [])
            item["is_default"] = item["id"] in defaults

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        for item, row in zip(items, inserted, strict=True):
            item["rules"] = []
            item["is_default"] = row["is_default"]


class RuleCollection(Collection):
    """A rule type's rows: no standard attributes (no timestamps, revision, tags or project)."""

    def __init__(self, rtype: RuleType) -> None:
        super().__init__(rtype.resource, TABLES[rtype.name])
        self.rtype = rtype
        self.columns["qos_policy_id"] = self.table.c.qos_policy_id
        self.names = [a.name for a in rtype.resource.attributes]

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        return [{name: r._mapping[name] for name in self.names} for r in rows]


def policy_not_found(policy_id: str) -> NotFound:
    return NotFound(f"QoS policy {policy_id} could not be found.", type="QosPolicyNotFound")


def rule_not_found(rule_id: str, policy_id: str) -> NotFound:
    return NotFound(f"QoS rule {rule_id} for policy {policy_id} could not be found.", type="QosRuleNotFound")


class QosService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = PolicyCollection()
        self.quotas = quotas
        self.rules = {name: RuleCollection(rtype) for name, rtype in RULE_TYPES.items()}

    # ---------------------------------------------------------------- policies
    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = common.standard_row(item)
            row["shared"] = item["shared"]
            conn.execute(insert(m.qos_policies).values(**row))
            if row["shared"]:
                self._share(conn, row["id"], row["project_id"])
            if item["is_default"]:
                self._set_default(conn, row["id"], row["project_id"])
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or [])), "is_default": item["is_default"]})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        pid = orig["id"]
        values: dict[str, Any] = {k: changes[k] for k in ("name", "description", "shared") if k in changes}
        if changes.get("shared") is False and orig["shared"]:
            self._unshare(conn, orig)
        common.bump(conn, m.qos_policies, pid, values, expect_revision)
        if changes.get("shared") and not orig["shared"]:
            self._share(conn, pid, orig["project_id"])
        if "is_default" in changes and changes["is_default"] != orig["is_default"]:
            if changes["is_default"]:
                self._set_default(conn, pid, orig["project_id"])
            else:
                conn.execute(delete(m.qos_policies_default).where(_d.qos_policy_id == pid))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        pid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.qos_policies, pid, {}, expect_revision)
        user = in_use(conn, pid)
        if user is not None:
            raise Conflict(f"QoS Policy {pid} is used by {user[0]} {user[1]}.", type="QosPolicyInUse")
        for table in (*TABLES.values(), m.qos_policies_default):
            conn.execute(delete(table).where(table.c.qos_policy_id == pid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == pid))
        revoke_all(conn, self.quotas, "qos_policy", pid)
        conn.execute(delete(m.qos_policies).where(m.qos_policies.c.id == pid))

    def _share(self, conn: Connection, policy_id: str, owner: str) -> None:
        """shared=True stands for a wildcard access_as_shared grant (counted in usage, never refused)."""
        if rbac_access.grant(conn, owner, "qos_policy", policy_id, rbac_access.SHARED) is not None:
            count_unlimited(conn, self.quotas, owner)

    def _unshare(self, conn: Connection, orig: dict[str, Any]) -> None:
        """shared=False removes the wildcard grant, unless another project uses the policy through it."""
        r = m.rbac_policies.c
        grant = conn.execute(select(r.id).where(r.object_type == "qos_policy", r.object_id == orig["id"],
                                                r.action == rbac_access.SHARED,
                                                r.target_project == rbac_access.WILDCARD)).first()
        if grant is None:
            return
        policy = {"id": grant.id, "object_type": "qos_policy", "object_id": orig["id"],
                  "action": rbac_access.SHARED, "target_tenant": rbac_access.WILDCARD}
        reason = rbac_in_use(conn, policy)
        if reason is not None:
            raise in_use_error(orig["id"], reason)
        revoke_all(conn, self.quotas, "qos_policy", orig["id"], [rbac_access.SHARED], rbac_access.WILDCARD)

    @staticmethod
    def _set_default(conn: Connection, policy_id: str, project_id: str) -> None:
        if not insert_if_absent(conn, m.qos_policies_default, {"project_id": project_id, "qos_policy_id": policy_id}):
            raise Conflict(f"A default QoS policy exists for project {project_id}.",
                           type="QoSPolicyDefaultAlreadyExists")

    # ---------------------------------------------------------------- rules
    def list_rules(self, conn: Connection, rtype: RuleType, policy_id: str,
                   q: ListQuery) -> tuple[list[dict[str, Any]], bool]:
        q.filters["qos_policy_id"] = [policy_id]
        return self.rules[rtype.name].page(conn, q, None)

    def get_rule(self, conn: Connection, rtype: RuleType, policy_id: str, rule_id: str,
                 for_update: bool = False) -> dict[str, Any]:
        coll = self.rules[rtype.name]
        item = coll.get(conn, rule_id, coll.table.c.qos_policy_id == policy_id, for_update=for_update)
        if item is None:
            raise rule_not_found(rule_id, policy_id)
        return item

    def create_rule(self, conn: Connection, rtype: RuleType, policy: dict[str, Any],
                    item: dict[str, Any]) -> dict[str, Any]:
        values = {k: item[k] for k in self.rules[rtype.name].names if k != "id"}
        self._check_rule(conn, rtype, policy["id"], values, None)
        row = {"id": new_id(), "qos_policy_id": policy["id"], **values}
        if not insert_if_absent(conn, TABLES[rtype.name], row):  # the same direction, made concurrently
            raise _rules_conflict(rtype, "", policy["id"])
        self._changed(conn, policy["id"])
        return {k: row[k] for k in self.rules[rtype.name].names}

    def update_rule(self, conn: Connection, rtype: RuleType, policy: dict[str, Any], orig: dict[str, Any],
                    changes: dict[str, Any]) -> dict[str, Any]:
        new = {**orig, **changes}
        self._check_rule(conn, rtype, policy["id"], new, orig["id"])
        if changes:
            table = TABLES[rtype.name]
            conn.execute(update(table).where(table.c.id == orig["id"]).values(**changes))
            self._changed(conn, policy["id"])
        return new

    def delete_rule(self, conn: Connection, rtype: RuleType, policy: dict[str, Any], orig: dict[str, Any]) -> None:
        table = TABLES[rtype.name]
        conn.execute(delete(table).where(table.c.id == orig["id"]))
        self._changed(conn, policy["id"])

    @staticmethod
    def _check_rule(conn: Connection, rtype: RuleType, policy_id: str, values: dict[str, Any],
                    skip: str | None) -> None:
        """One rule of a type per direction (DSCP: one); a minimum at most the limit of its direction."""
        table = TABLES[rtype.name]
        same = select(table.c.id).where(table.c.qos_policy_id == policy_id)
        if "direction" in table.c:
            same = same.where(table.c.direction == values["direction"])
        if skip is not None:
            same = same.where(table.c.id != skip)
        clash = conn.execute(same.limit(1)).scalar()
        if clash is not None:
            raise _rules_conflict(rtype, clash, policy_id)
        direction = values.get("direction")
        if rtype is MINIMUM_BANDWIDTH:
            b = m.qos_bandwidth_limit_rules.c
            limit = conn.execute(select(b.max_kbps).where(b.qos_policy_id == policy_id,
                                                          b.direction == direction)).scalar()
            if limit is not None and values["min_kbps"] > limit:
                raise _parameter_conflict(values["min_kbps"], policy_id, BANDWIDTH_LIMIT.name, limit)
        elif rtype is BANDWIDTH_LIMIT:
            n = m.qos_minimum_bandwidth_rules.c
            least = conn.execute(select(n.min_kbps).where(n.qos_policy_id == policy_id,
                                                          n.direction == direction)).scalar()
            if least is not None and values["max_kbps"] < least:
                raise _parameter_conflict(values["max_kbps"], policy_id, MINIMUM_BANDWIDTH.name, least)

    @staticmethod
    def _changed(conn: Connection, policy_id: str) -> None:
        """The policy's rules changed: a new revision (as Neutron's), and the agents enforcing it look again."""
        common.bump(conn, m.qos_policies, policy_id, {})
        policy_changed(conn, policy_id)


def _rules_conflict(rtype: RuleType, rule_id: str, policy_id: str) -> Conflict:
    return Conflict(f"Rule {rtype.name} conflicts with rule {rule_id} which already exists in QoS Policy "
                    f"{policy_id}.", type="QoSRulesConflict")


def _parameter_conflict(value: int, policy_id: str, existing: str, existing_value: int) -> Conflict:
    return Conflict(f"Unable to add the rule with value {value} to the policy {policy_id} as the existing rule of "
                    f"type {existing} has value {existing_value}.", type="QoSRuleParameterConflict")
