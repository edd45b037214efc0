"""Security group rules: Neutron's validation, race-free duplicate detection, and group revisions.

A rule is never updated. Its normalized content (protocol by number, the all-addresses prefix as none,
host bits cleared) is digested into the unique ``fingerprint`` column, so two equal rules cannot both be
inserted, even by concurrent requests; the loser answers 409 with the winner's id, as Neutron does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import netaddr
from sqlalchemy import ColumnElement, Connection, delete, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import BadRequest, Conflict, NeutronError, NotFound
from fermion.resources.security_group import SECURITY_GROUP_RULE
from fermion.rpc.contracts import Hint
from fermion.services import common, rbac_access
from fermion.services.query import Collection, chunks
from fermion.services.quotas import QuotaService

# Neutron's protocol names (neutron_lib.constants, plus "any") and their numbers.
PROTOCOLS = {
    "any": 0, "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "icmpv6": 58, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
    "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136,
    "vrrp": 112,
}
PORT_PROTOCOLS = ("dccp", "sctp", "tcp", "udp", "udplite")  # those with port ranges
_PORT_NUMBERS = {PROTOCOLS[p] for p in PORT_PROTOCOLS}
_ICMP_NUMBERS = {1, 58}
# only meaningful over IPv6: refused with ethertype IPv4
_IPV6_ONLY = {"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
              "41", "44", "58", "59", "60", "43"}
_ALL_ADDRESSES = ("0.0.0.0/0", "::/0")


def _invalid(message: str, type: str) -> BadRequest:
    return BadRequest(message, type=type)


def canonical_protocol(value: Any, ethertype: str) -> str | None:
    """The protocol as Neutron stores it: a lower-case name or a number as a string; with IPv6 the legacy
    ICMP spellings (icmp, icmpv6, 1) become ipv6-icmp (or 58)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        number = int(text)
    except ValueError:
        if text not in PROTOCOLS:
            raise _invalid(f"Security group rule protocol {value} not supported. Only protocol values "
                           f"{[None, *sorted(PROTOCOLS)]} and integer representations [0 to 255] are supported.",
                           "SecurityGroupRuleInvalidProtocol") from None
        name = text
    else:
        if not 0 <= number <= 255:
            raise _invalid(f"Security group rule protocol {value} not supported. Only protocol values "
                           f"{[None, *sorted(PROTOCOLS)]} and integer representations [0 to 255] are supported.",
                           "SecurityGroupRuleInvalidProtocol")
        name = str(number)
    if ethertype == "IPv6":
        if name in ("icmp", "icmpv6"):
            return "ipv6-icmp"
        if name == "1":
            return "58"
    return name


def protocol_number(protocol: str | None) -> int | None:
    """The IP protocol number; None for "any protocol"."""
    if protocol is None:
        return None
    number = PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)
    return number or None


def _check_ports(protocol: str | None, lo: int | None, hi: int | None) -> None:
    if lo is None and hi is None:
        return
    if protocol is None:
        raise _invalid("Must also specify protocol if port range is given.",
                       "SecurityGroupProtocolRequiredWithPorts")
    number = protocol_number(protocol)
    if number in _PORT_NUMBERS:
        if lo == 0 or hi == 0:
            raise _invalid("Invalid value for port 0", "SecurityGroupInvalidPortValue")
        if lo is None or hi is None or lo > hi:
            raise _invalid("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                           "SecurityGroupInvalidPortRange")
    elif number in _ICMP_NUMBERS:
        for value, field, attr in ((lo, "type", "port_range_min"), (hi, "code", "port_range_max")):
            if value is not None and not 0 <= value <= 255:
                raise _invalid(f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.",
                               "SecurityGroupInvalidIcmpValue")
        if lo is None:
            raise _invalid(f"ICMP code (port-range-max) {hi} is provided but ICMP type (port-range-min) is "
                           "missing.", "SecurityGroupMissingIcmpType")
    else:
        names = ", ".join(p.upper() for p in PORT_PROTOCOLS)
        raise _invalid(f"Invalid protocol {number or 0} for port range, only supported for {names} protocols.",
                       "SecurityGroupInvalidProtocolForPort")


def normalized_cidr(prefix: str | None) -> str | None:
    return None if prefix is None else str(netaddr.IPNetwork(prefix).cidr)


def fingerprint(rule: dict[str, Any]) -> str:
    """A digest of what makes two rules of a group the same rule (Neutron's duplicate check)."""
    number = protocol_number(rule["protocol"])
    prefix = rule["remote_ip_prefix"]
    key = [rule["security_group_id"], rule["direction"], rule["ethertype"],
           None if number is None else number, rule["port_range_min"], rule["port_range_max"],
           rule["remote_group_id"], None if prefix in (None, *_ALL_ADDRESSES) else normalized_cidr(prefix)]
    if rule.get("remote_address_group_id"):  # appended only when set: older rules keep their digests
        key.append(rule["remote_address_group_id"])
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def check_remotes(prefix: str | None, group: str | None, address_group: str | None) -> None:
    """A rule has at most one remote: a prefix, a security group or an address group."""
    if address_group is not None and (prefix is not None or group is not None):
        raise _invalid("Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be "
                       "provided.", "SecurityGroupMultipleRemoteEntites")
    if prefix is not None and group is not None:
        raise _invalid("Only remote_ip_prefix or remote_group_id may be provided.",
                       "SecurityGroupRemoteGroupAndRemoteIpPrefix")


def validated(item: dict[str, Any]) -> dict[str, Any]:
    """The rule's row values (without id and timestamps), checked in Neutron's order."""
    ethertype = item["ethertype"]
    protocol = canonical_protocol(item["protocol"], ethertype)
    lo, hi = item["port_range_min"], item["port_range_max"]
    _check_ports(protocol, lo, hi)
    prefix = item["remote_ip_prefix"]
    if prefix is not None and f"IPv{netaddr.IPNetwork(prefix).version}" != ethertype:
        raise _invalid(f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                       "SecurityGroupRuleParameterConflict")
    if ethertype == "IPv4" and protocol in _IPV6_ONLY:
        raise _invalid(f"Invalid ethertype {ethertype} for protocol {protocol}.",
                       "SecurityGroupEthertypeConflictWithProtocol")
    check_remotes(prefix, item["remote_group_id"], item.get("remote_address_group_id"))
    row = {
        "project_id": item["project_id"], "security_group_id": item["security_group_id"],
        "remote_group_id": item["remote_group_id"], "direction": item["direction"], "ethertype": ethertype,
        "protocol": protocol, "port_range_min": lo, "port_range_max": hi, "remote_ip_prefix": prefix,
        "description": item.get("description", ""),
        "remote_address_group_id": item.get("remote_address_group_id"), "normalized_cidr": normalized_cidr(prefix),
    }
    row["fingerprint"] = fingerprint(row)
    return row


def rule_row(values: dict[str, Any]) -> dict[str, Any]:
    """A complete row for the rules table from validated values."""
    ts = common.now()
    row = {"id": new_id(), "created_at": ts, "updated_at": ts, "revision_number": 1, "description": "",
           "protocol": None, "port_range_min": None, "port_range_max": None, "remote_ip_prefix": None,
           "remote_group_id": None, "remote_address_group_id": None, **values}
    row["normalized_cidr"] = normalized_cidr(row["remote_ip_prefix"])
    if "fingerprint" not in row:
        row["fingerprint"] = fingerprint(row)
    return row


def insert_rule(conn: Connection, row: dict[str, Any]) -> None:
    """Insert a rule; 409 SecurityGroupRuleExists when the group already has an equal one."""
    if insert_if_absent(conn, m.securitygrouprules, row):
        return
    r = m.securitygrouprules.c
    existing = conn.execute(select(r.id).where(r.fingerprint == row["fingerprint"])).scalar()
    if existing is None:  # the equal rule was deleted meanwhile: start over
        raise RetryRequest("security group rule deleted concurrently")
    raise Conflict(f"Security group rule already exists. Rule id is {existing}.", type="SecurityGroupRuleExists")


def emit_group_hints(conn: Connection, group_ids: Iterable[str]) -> None:
    """Tell the agents that these groups' rules or members changed (level-triggered: ids and revisions)."""
    ids = sorted(set(group_ids))
    g = m.securitygroups.c
    for part in chunks(ids):
        for gid, revision in conn.execute(select(g.id, g.revision_number).where(g.id.in_(part))):
            common.emit(conn, Hint("security_group", gid, revision, None, None))


def touch_groups(conn: Connection, group_ids: Iterable[str]) -> None:
    """The groups' rules changed: bump their revisions (as Neutron does) and hint the agents."""
    ids = sorted(set(group_ids))
    for gid in ids:
        common.bump(conn, m.securitygroups, gid, {})
    emit_group_hints(conn, ids)


def release_rules(conn: Connection, quotas: QuotaService, rows: Sequence[Any]) -> None:
    """Give back the rule quota of deleted rules, given (id, project_id) rows."""
    per_project: dict[str, int] = defaultdict(int)
    for _, project in rows:
        per_project[project] += 1
    for project, count in per_project.items():
        quotas.release(conn, project, "security_group_rule", count)


class SecurityGroupRuleCollection(Collection):
    def __init__(self) -> None:
        super().__init__(SECURITY_GROUP_RULE, m.securitygrouprules)

    def policy_column(self, attr: str) -> ColumnElement[Any] | None:
        if attr == "security_group:project_id":  # rule sg_owner: the owner of the rule's group
            g = m.securitygroups.c
            return select(g.project_id).where(g.id == self.table.c.security_group_id).scalar_subquery()
        return super().policy_column(attr)

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        return super().to_dicts(conn, rows, tags if tags is not None else {}, complete)  # rules have no tags

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        groups = sorted({i["security_group_id"] for i in items})
        d = m.default_security_groups.c
        defaults: set[str] = set()
        for part in chunks(groups):
            defaults.update(conn.execute(select(d.security_group_id).where(d.security_group_id.in_(part)))
                            .scalars())
        for item in items:
            item.pop("tags", None)
            item["belongs_to_default_sg"] = item["security_group_id"] in defaults

    def where(self, q: Any) -> list[Any]:
        flags = q.filters.get("belongs_to_default_sg")
        if flags is None:
            return super().where(q)
        conds = super().where(dataclasses.replace(q, filters={k: v for k, v in q.filters.items()
                                                              if k != "belongs_to_default_sg"}))
        in_default = self.table.c.security_group_id.in_(select(m.default_security_groups.c.security_group_id))
        wanted = set(flags)
        if wanted == {True}:
            conds.append(in_default)
        elif wanted == {False}:
            conds.append(~in_default)
        return conds

    def of_groups(self, conn: Connection, group_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The rules of these groups, as API dicts, by group."""
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        r = m.securitygrouprules.c
        for part in chunks(group_ids):
            rows = conn.execute(self.select_rows().where(r.security_group_id.in_(part))
                                .order_by(r.created_at, r.id)).all()
            for item in self.to_dicts(conn, rows):
                out[item["security_group_id"]].append(item)
        return out


class SecurityGroupRuleService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = SecurityGroupRuleCollection()
        self.quotas = quotas

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        """Insert the rules; return the inserted rows (to answer without reading them back)."""
        checked = [validated(item) for item in items]
        owners = self._lock_groups(conn, checked)
        address_owners = _lock_address_groups(conn, checked)
        rows = []
        seen: set[str] = set()
        for values in checked:
            if values["remote_group_id"] is not None:
                _check_owner(owners, values["remote_group_id"], values["project_id"], ctx)
            if values["remote_address_group_id"] is not None:
                _check_address_group(conn, address_owners, values["remote_address_group_id"], values["project_id"],
                                     ctx)
            _check_owner(owners, values["security_group_id"], values["project_id"], ctx)
            if values["fingerprint"] in seen:
                raise Conflict("Duplicate Security Group Rule in POST.", type="DuplicateSecurityGroupRuleInPost")
            seen.add(values["fingerprint"])
            row = rule_row(values)
            insert_rule(conn, row)
            rows.append({**row, "tags": []})
        per_project: dict[str, int] = defaultdict(int)
        for row in rows:
            per_project[row["project_id"]] += 1
        for project, count in per_project.items():
            self.quotas.charge(conn, project, "security_group_rule", count)
        touch_groups(conn, (r["security_group_id"] for r in rows))
        return rows

    @staticmethod
    def _lock_groups(conn: Connection, rules: list[dict[str, Any]]) -> dict[str, str]:
        """The owners of the groups that exist among those the rules name.

        Each group is locked once until commit, in id order, so that concurrent creates wait for each
        other instead of deadlocking: for update when rules join it (its revision is bumped later, and
        taking a share lock first would need an upgrade), for share when it is only a remote group (a
        concurrent delete of it waits or is seen as done)."""
        own = {r["security_group_id"] for r in rules}
        remote = {r["remote_group_id"] for r in rules if r["remote_group_id"] is not None}
        owners = {}
        for gid in sorted(own | remote):
            stmt = select(m.securitygroups.c.project_id).where(m.securitygroups.c.id == gid)
            if conn.dialect.name != "sqlite":
                stmt = stmt.with_for_update(read=gid not in own)
            owner = conn.execute(stmt).scalar()
            if owner is not None:
                owners[gid] = owner
        return owners

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        # Neutron has no update for rules: delete and create instead
        raise NeutronError("The method PUT is not allowed on a security_group_rule", type="HTTPMethodNotAllowed",
                           status=405)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        rid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.securitygrouprules, rid, {}, expect_revision)
        conn.execute(delete(m.securitygrouprules).where(m.securitygrouprules.c.id == rid))
        self.quotas.release(conn, orig["project_id"], "security_group_rule")
        touch_groups(conn, [orig["security_group_id"]])


def _check_owner(owners: dict[str, str], group_id: str, project_id: str, ctx: Context | None) -> None:
    """The group exists and the rule's project may use it (any group for an admin)."""
    owner = owners.get(group_id)
    if owner is None or not (owner == project_id or (ctx is not None and ctx.is_admin)):
        raise NotFound(f"Security group {group_id} does not exist", type="SecurityGroupNotFound")


def _lock_address_groups(conn: Connection, rules: list[dict[str, Any]]) -> dict[str, str]:
    """The owners of the address groups the rules name, share-locked until commit (a concurrent delete of
    one waits, then sees the rule and refuses)."""
    owners = {}
    for agid in sorted({r["remote_address_group_id"] for r in rules if r["remote_address_group_id"]}):
        stmt = select(m.address_groups.c.project_id).where(m.address_groups.c.id == agid)
        if conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update(read=True)
        owner = conn.execute(stmt).scalar()
        if owner is not None:
            owners[agid] = owner
    return owners


def _check_address_group(conn: Connection, owners: dict[str, str], group_id: str, project_id: str,
                         ctx: Context | None) -> None:
    """A rule may name an address group of its project, one shared with it (rbac-address-group), or any
    when an admin asks."""
    owner = owners.get(group_id)
    if owner is not None and (owner == project_id or (ctx is not None and ctx.is_admin)
                              or rbac_access.has_access(conn, "address_group", group_id, project_id)):
        return
    raise NotFound(f"Address group {group_id} could not be found.", type="AddressGroupNotFound")


def insert_rules(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert rules known to be distinct (a new group's initial rules)."""
    if rows:
        conn.execute(insert(m.securitygrouprules), rows)
