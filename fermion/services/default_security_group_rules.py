"""Default security-group rule templates (security-groups-default-rules): the rules every new group starts with.

Admin-managed. A project's default group takes the templates used_in_default_sg, any other group those
used_in_non_default_sg; a template's remote group PARENT is the group being created. Equal templates (same
normalized content) may not share a use: each use keeps the content's digest in its own unique column, so a
duplicate is refused even when created concurrently, and one template per use can be equal to another one
used only elsewhere, as in Neutron.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, or_, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import Conflict, NeutronError
from fermion.resources.security_group import DEFAULT_SECURITY_GROUP_RULE, PARENT
from fermion.services.query import Collection
from fermion.services.security_group_rules import (
    _IPV6_ONLY,
    _check_ports,
    _invalid,
    canonical_protocol,
    check_remotes,
    normalized_cidr,
    protocol_number,
    rule_row,
)

LOG = logging.getLogger(__name__)
_t = m.default_security_group_rules.c
_FULL_RANGE = (1, 65535)
_PORT_PROTOCOLS = {6, 17, 33, 132, 136}


def fingerprint(t: dict[str, Any]) -> str:
    """A digest of what makes two templates the same rule (the migration seeds Neutron's with the same)."""
    number = protocol_number(t["protocol"])
    prefix = t["remote_ip_prefix"]
    key = [t["direction"], t["ethertype"], number, t["port_range_min"], t["port_range_max"], t["remote_group_id"],
           t["remote_address_group_id"], None if prefix in (None, "0.0.0.0/0", "::/0") else normalized_cidr(prefix)]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def validated(item: dict[str, Any]) -> dict[str, Any]:
    """The template's row values, checked as a rule's are (in Neutron's order)."""
    ethertype = item["ethertype"]
    protocol = canonical_protocol(item["protocol"], ethertype)
    lo, hi = item["port_range_min"], item["port_range_max"]
    _check_ports(protocol, lo, hi)
    if protocol_number(protocol) in _PORT_PROTOCOLS and (lo, hi) == _FULL_RANGE:
        lo = hi = None  # every port: stored as no range, as Neutron does
    prefix = item["remote_ip_prefix"]
    if prefix is not None and f"IPv{4 if ':' not in prefix else 6}" != ethertype:
        raise _invalid(f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                       "SecurityGroupRuleParameterConflict")
    if ethertype == "IPv4" and protocol in _IPV6_ONLY:
        raise _invalid(f"Invalid ethertype {ethertype} for protocol {protocol}.",
                       "SecurityGroupEthertypeConflictWithProtocol")
    check_remotes(prefix, item["remote_group_id"], item["remote_address_group_id"])
    row = {"direction": item["direction"], "ethertype": ethertype, "protocol": protocol, "port_range_min": lo,
           "port_range_max": hi, "remote_ip_prefix": prefix, "remote_group_id": item["remote_group_id"],
           "remote_address_group_id": item["remote_address_group_id"], "description": item["description"],
           "used_in_default_sg": item["used_in_default_sg"],
           "used_in_non_default_sg": item["used_in_non_default_sg"]}
    digest = fingerprint(row)
    row["fingerprint_default"] = digest if row["used_in_default_sg"] else None
    row["fingerprint_non_default"] = digest if row["used_in_non_default_sg"] else None
    return row


class DefaultSecurityGroupRuleCollection(Collection):
    """Templates have no project, tags, timestamps or revision: plain rows."""

    def __init__(self) -> None:
        super().__init__(DEFAULT_SECURITY_GROUP_RULE, m.default_security_group_rules)
        self.columns.pop("tenant_id", None)

    def policy_column(self, attr: str) -> Any:
        return self.columns.get(attr)

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        names = [a.name for a in self.resource.attributes if a.visible]
        columns = list(self.table.c.keys())
        out = []
        for r in rows:
            values = dict(zip(columns, tuple(r), strict=True))
            out.append({n: values[n] for n in names})
        return out

    def fresh(self, conn: Connection, inserted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [a.name for a in self.resource.attributes if a.visible]
        return [{n: row[n] for n in names} for row in inserted]


class DefaultSecurityGroupRuleService:
    def __init__(self) -> None:
        self.collection = DefaultSecurityGroupRuleCollection()

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        seen: set[str] = set()
        for item in items:
            row = {"id": new_id(), **validated(item)}
            for digest in (row["fingerprint_default"], row["fingerprint_non_default"]):
                if digest is not None and digest in seen:
                    raise Conflict("Duplicate Default Security Group Rule in POST.",
                                   type="DuplicateDefaultSgRuleInPost")
            seen.update(d for d in (row["fingerprint_default"], row["fingerprint_non_default"]) if d)
            if not insert_if_absent(conn, m.default_security_group_rules, row):
                same = [col == row[col.name] for col in (_t.fingerprint_default, _t.fingerprint_non_default)
                        if row[col.name] is not None]  # (never "IS NULL": that would match any other use)
                existing = conn.execute(select(_t.id).where(or_(*same))).scalar() if same else None
                if existing is None:  # the equal template was deleted meanwhile: start over
                    raise RetryRequest("default security group rule deleted concurrently")
                raise Conflict(f"Default Security group rule already exists. Rule id is {existing}.",
                               type="DefaultSecurityGroupRuleExists")
            rows.append(row)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        raise NeutronError("The method PUT is not allowed on a default_security_group_rule",
                           type="HTTPMethodNotAllowed", status=405)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        conn.execute(delete(m.default_security_group_rules).where(_t.id == orig["id"]))


def rules_from_templates(conn: Connection, project_id: str, group_id: str, default: bool) -> list[dict[str, Any]]:
    """The rule rows a new group starts with (default: the project's default group)."""
    used = _t.used_in_default_sg if default else _t.used_in_non_default_sg
    templates = conn.execute(select(m.default_security_group_rules).where(used.is_(True))
                             .order_by(_t.direction, _t.ethertype, _t.id)).all()
    groups = {x.remote_group_id for x in templates if x.remote_group_id not in (None, PARENT)}
    address_groups = {x.remote_address_group_id for x in templates if x.remote_address_group_id}
    existing = set(conn.execute(select(m.securitygroups.c.id).where(m.securitygroups.c.id.in_(groups)))
                   .scalars()) if groups else set()
    existing |= set(conn.execute(select(m.address_groups.c.id).where(m.address_groups.c.id.in_(address_groups)))
                    .scalars()) if address_groups else set()
    out = []
    for x in templates:
        remote = group_id if x.remote_group_id == PARENT else x.remote_group_id
        if (remote not in (None, group_id) and remote not in existing) or (
                x.remote_address_group_id and x.remote_address_group_id not in existing):
            LOG.warning("default security group rule %s names a group that does not exist; not applied", x.id)
            continue
        out.append(rule_row({"project_id": project_id, "security_group_id": group_id, "direction": x.direction,
                             "ethertype": x.ethertype, "protocol": x.protocol, "port_range_min": x.port_range_min,
                             "port_range_max": x.port_range_max, "remote_ip_prefix": x.remote_ip_prefix,
                             "remote_group_id": remote, "remote_address_group_id": x.remote_address_group_id}))
    return out
