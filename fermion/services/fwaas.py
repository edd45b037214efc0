"""Firewall-as-a-service v2: rules, policies (ordered rules) and groups (router ports, a policy per direction),
with neutron-fwaas's validation, errors and statuses.

Statuses as neutron-fwaas's agent driver: a group on no port or without any policy is INACTIVE; otherwise a
create is PENDING_CREATE and a change that matters to the data plane (its ports, policies, admin state, or a
rule or policy it uses) PENDING_UPDATE, until the L3 agent serving its routers reports it ACTIVE (or DOWN when
administratively down, ERROR when it failed: fwaas_status.apply). A group in a PENDING state refuses changes
(FirewallGroupInPendingState), as in Neutron. Every change hints the routers of the group's ports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.db.engine import Database, RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources import fwaas as res
from fermion.services import common
from fermion.services.query import Collection, ListQuery, chunks
from fermion.services.routers import RouterService

ACTIVE, INACTIVE, DOWN, ERROR = "ACTIVE", "INACTIVE", "DOWN", "ERROR"
PENDING_CREATE, PENDING_UPDATE, PENDING_DELETE = "PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE"
PENDING = (PENDING_CREATE, PENDING_UPDATE, PENDING_DELETE)

_r, _p, _pr = m.firewall_rules_v2.c, m.firewall_policies_v2.c, m.firewall_policy_rules_v2.c
_g, _gp, _d = m.firewall_groups_v2.c, m.firewall_group_ports_v2.c, m.default_firewall_groups.c


# ---------------------------------------------------------------- reading
def policy_rules(conn: Connection, policy_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each policy's rule ids in order."""
    out: dict[str, list[str]] = defaultdict(list)
    for part in chunks(list(policy_ids)):
        for pid, rid in conn.execute(select(_pr.firewall_policy_id, _pr.firewall_rule_id)
                                     .where(_pr.firewall_policy_id.in_(part)).order_by(_pr.position)):
            out[pid].append(rid)
    return out


def group_ports(conn: Connection, group_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for part in chunks(list(group_ids)):
        for gid, port in conn.execute(select(_gp.firewall_group_id, _gp.port_id)
                                      .where(_gp.firewall_group_id.in_(part)).order_by(_gp.port_id)):
            out[gid].append(port)
    return out


class RuleCollection(Collection):
    def __init__(self) -> None:
        super().__init__(res.FIREWALL_RULE, m.firewall_rules_v2)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        idx = self._index
        policies: dict[str, list[str]] = defaultdict(list)
        for part in chunks([i["id"] for i in items]):
            for rid, pid in conn.execute(select(_pr.firewall_rule_id, _pr.firewall_policy_id)
                                         .where(_pr.firewall_rule_id.in_(part)).order_by(_pr.firewall_policy_id)):
                policies[rid].append(pid)
        for row, item in zip(rows, items, strict=True):
            item["source_port"] = res.range_text(row[idx["source_port_range_min"]], row[idx["source_port_range_max"]])
            item["destination_port"] = res.range_text(row[idx["destination_port_range_min"]],
                                                      row[idx["destination_port_range_max"]])
            item["firewall_policy_id"] = policies.get(item["id"]) or None


class PolicyCollection(Collection):
    def __init__(self) -> None:
        super().__init__(res.FIREWALL_POLICY, m.firewall_policies_v2)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        rules = policy_rules(conn, [i["id"] for i in items]) if items else {}
        for item in items:
            item["firewall_rules"] = rules.get(item["id"], [])


class GroupCollection(Collection):
    def __init__(self) -> None:
        super().__init__(res.FIREWALL_GROUP, m.firewall_groups_v2)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        ports = group_ports(conn, [i["id"] for i in items]) if items else {}
        for item in items:
            item["ports"] = ports.get(item["id"], [])


# ---------------------------------------------------------------- errors (neutron_lib.exceptions.firewall_v2)
def _reserved(name: str, kind: str) -> Conflict:
    return Conflict(f"Operation cannot be performed since '{name}' is a reserved name for {kind}.",
                    type="FirewallDefaultParameterExists")


def _restricted(ident: str) -> Conflict:
    # neutron-fwaas names the type "Firewall Group" for default policies too
    return Conflict(f"Operation cannot be performed on default object '{ident}' of type Firewall Group.",
                    type="FirewallDefaultObjectUpdateRestricted")


def _rule_not_found(ident: str) -> NotFound:
    return NotFound(f"Firewall rule {ident} could not be found.", type="FirewallRuleNotFound")


def _policy_not_found(ident: str) -> NotFound:
    return NotFound(f"Firewall policy {ident} could not be found.", type="FirewallPolicyNotFound")


def _invalid(message: str, kind: str) -> BadRequest:
    return BadRequest(message, type=kind)


# ---------------------------------------------------------------- rules
def _check_rule(rule: dict[str, Any]) -> None:
    """neutron-fwaas's checks of a rule's fields, taken together (a create, or an update merged)."""
    proto, sport, dport = rule.get("protocol"), rule.get("source_port"), rule.get("destination_port")
    if proto and proto not in ("tcp", "udp") and (sport or dport):
        raise _invalid("Source, destination port are not allowed when protocol is set to ICMP.",
                       "FirewallRuleInvalidICMPParameter")
    if not proto and (sport or dport):
        raise _invalid("Source/destination port requires a protocol.", "FirewallRuleWithPortWithoutProtocolInvalid")
    for key in ("source_ip_address", "destination_ip_address"):
        version = res.address_version(rule.get(key))
        if version is not None and version != rule.get("ip_version"):
            raise _invalid("Invalid input - IP addresses do not agree with IP Version.", "FirewallIpAddressConflict")
    for key in ("source_port", "destination_port"):
        low, high = res.ports_of_range(rule.get(key))
        if low is not None and high is not None and low > high:
            raise _invalid(f"Invalid value for port {rule[key]}.", "FirewallRuleInvalidPortValue")


def _rule_columns(rule: dict[str, Any]) -> dict[str, Any]:
    keys = ("shared", "protocol", "ip_version", "source_ip_address", "destination_ip_address", "action", "enabled",
            "name", "description")
    out: dict[str, Any] = {k: rule[k] for k in keys if k in rule}
    for key in ("source_port", "destination_port"):
        if key in rule:
            out[f"{key}_range_min"], out[f"{key}_range_max"] = res.ports_of_range(rule[key])
    return out


class FirewallService:
    """The three collections' writes; ``collection`` is the groups' (see by_collection for the others)."""

    def __init__(self, routers: RouterService) -> None:
        self.routers = routers
        self.rules = FirewallRuleService(self)
        self.policies = FirewallPolicyService(self)
        self.groups = FirewallGroupService(self)

    # -- what a change touches
    def groups_using_policies(self, conn: Connection, policy_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(policy_ids)
        if not ids:
            return []
        rows = conn.execute(select(_g.id, _g.status, _g.project_id).where(
            or_(_g.ingress_firewall_policy_id.in_(ids), _g.egress_firewall_policy_id.in_(ids)))).all()
        return [dict(r._mapping) for r in rows]

    def ensure_not_pending(self, groups: Iterable[dict[str, Any]]) -> None:
        for g in groups:
            if g["status"] in PENDING:
                raise Conflict(f"Operation cannot be performed since associated firewall group {g['id']} is in "
                               f"{g['status']}.", type="FirewallGroupInPendingState")

    def hint_routers(self, conn: Connection, port_ids: Iterable[str]) -> None:
        ports = sorted(set(port_ids))
        if not ports:
            return
        rp = m.router_ports.c
        for router_id in sorted(set(conn.scalars(select(rp.router_id).where(rp.port_id.in_(ports))))):
            self.routers.changed(conn, router_id)

    def refresh(self, conn: Connection, group_ids: Iterable[str]) -> None:
        """Groups whose rules changed: PENDING_UPDATE where they are on ports (and bumped, so a status report
        from before is told apart), and a hint to their routers."""
        ids = sorted(set(group_ids))
        if not ids:
            return
        ports = group_ports(conn, ids)
        for gid in ids:
            if ports.get(gid):
                common.bump(conn, m.firewall_groups_v2, gid, {"status": PENDING_UPDATE})
        self.hint_routers(conn, [p for v in ports.values() for p in v])

    # -- the project's default group
    def default_group_id(self, conn: Connection, project_id: str) -> str | None:
        return conn.execute(select(_d.firewall_group_id).where(_d.project_id == project_id)).scalar()

    def ensure_default(self, conn: Connection, project_id: str) -> str:
        """The project's default group, made as neutron-fwaas makes it (deny all in, allow all out, for IPv4
        and IPv6) when it has none. Race-free: default_firewall_groups admits one group per project; a creator
        that loses drops its own group and uses the winner's."""
        found = self.default_group_id(conn, project_id)
        if found is not None:
            return found
        group = {**common.standard_row({"project_id": project_id, "name": res.DEFAULT_GROUP,
                                        "description": "Default firewall group"}),
                 "shared": False, "admin_state_up": True, "status": INACTIVE}
        conn.execute(insert(m.firewall_groups_v2).values(**group))
        if not insert_if_absent(conn, m.default_firewall_groups,
                                {"project_id": project_id, "firewall_group_id": group["id"]}):
            conn.execute(delete(m.firewall_groups_v2).where(_g.id == group["id"]))
            winner = self.default_group_id(conn, project_id)
            if winner is None:
                raise RetryRequest("default firewall group deleted concurrently")
            return winner
        policies = {}
        for direction, action in (("ingress", "deny"), ("egress", "allow")):
            rule_ids = []
            for version in (4, 6):
                rule = {**common.standard_row({
                    "project_id": project_id, "name": f"default {direction} ipv{version}",
                    "description": f"default {direction} rule for IPv{version}"}),
                    **_rule_columns({"shared": False, "protocol": None, "ip_version": version, "action": action,
                                     "enabled": True, "source_port": None, "destination_port": None,
                                     "source_ip_address": None, "destination_ip_address": None})}
                conn.execute(insert(m.firewall_rules_v2).values(**rule))
                rule_ids.append(rule["id"])
            policy = {**common.standard_row({"project_id": project_id, "name": f"default {direction}",
                                             "description": f"{direction.capitalize()} firewall policy"}),
                      "shared": False, "audited": False}
            conn.execute(insert(m.firewall_policies_v2).values(**policy))
            _set_rules(conn, policy["id"], rule_ids)
            policies[direction] = policy["id"]
        conn.execute(update(m.firewall_groups_v2).where(_g.id == group["id"]).values(
            ingress_firewall_policy_id=policies["ingress"], egress_firewall_policy_id=policies["egress"]))
        return str(group["id"])


def _set_rules(conn: Connection, policy_id: str, rule_ids: Sequence[str]) -> None:
    conn.execute(delete(m.firewall_policy_rules_v2).where(_pr.firewall_policy_id == policy_id))
    if rule_ids:
        conn.execute(insert(m.firewall_policy_rules_v2), [
            {"firewall_policy_id": policy_id, "firewall_rule_id": rid, "position": i + 1}
            for i, rid in enumerate(rule_ids)])


class FirewallRuleService:
    def __init__(self, fw: FirewallService) -> None:
        self.fw = fw
        self.collection = RuleCollection()

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            _check_rule(item)
            row = {**common.standard_row(item), **_rule_columns(item)}
            row["name"], row["description"] = item.get("name", ""), item.get("description", "")
            conn.execute(insert(m.firewall_rules_v2).values(**row))
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        rid = orig["id"]
        policies = list(orig.get("firewall_policy_id") or [])
        groups = self.fw.groups_using_policies(conn, policies)
        self.fw.ensure_not_pending(groups)
        _check_rule({**orig, **changes})
        common.bump(conn, m.firewall_rules_v2, rid, _rule_columns(changes), expect_revision)
        if policies:  # a policy whose rule changed is no longer audited
            conn.execute(update(m.firewall_policies_v2).where(_p.id.in_(policies)).values(audited=False))
            self.fw.refresh(conn, [g["id"] for g in groups])

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        rid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.firewall_rules_v2, rid, {}, expect_revision)
        if conn.execute(select(_pr.firewall_policy_id).where(_pr.firewall_rule_id == rid).limit(1)).first():
            raise Conflict(f"Firewall rule {rid} is being used.", type="FirewallRuleInUse")
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == rid))
        conn.execute(delete(m.firewall_rules_v2).where(_r.id == rid))


class FirewallPolicyService:
    def __init__(self, fw: FirewallService) -> None:
        self.fw = fw
        self.collection = PolicyCollection()

    def _check_rules(self, conn: Connection, policy: dict[str, Any], rule_ids: Sequence[str],
                     ctx: Context | None) -> None:
        """Every rule exists for the caller; a shared policy takes shared rules only, a private one its own
        project's rules or shared ones (neutron-fwaas's _check_rules_for_policy_is_valid)."""
        found = {r.id: r for r in conn.execute(select(_r.id, _r.project_id, _r.shared)
                                               .where(_r.id.in_(list(rule_ids))))} if rule_ids else {}
        for rid in rule_ids:
            rule = found.get(rid)
            if rule is None or not (ctx is None or ctx.is_admin or rule.shared or rule.project_id == ctx.project_id):
                raise _rule_not_found(rid)
            if policy["shared"] and not rule.shared:
                raise NotFound(f"Operation cannot be performed since firewall policy {policy['id']} could not find "
                               f"the firewall rule {rid}. Please confirm if the firewall rule exists and is shared.",
                               type="FirewallRuleSharingConflict")
            if not rule.shared and rule.project_id != policy["project_id"]:
                raise Conflict(f"Operation cannot be performed since firewall rule {rid} is not shared and "
                               f"belongs to another project {rule.project_id}.", type="FirewallRuleConflict")

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            if item.get("name") in (res.DEFAULT_INGRESS, res.DEFAULT_EGRESS):
                raise _reserved(item["name"], "Firewall Policy")
            row = {**common.standard_row(item), "shared": item.get("shared", False),
                   "audited": item.get("audited", False)}
            rules = item.get("firewall_rules") or []
            self._check_rules(conn, row, rules, ctx)
            conn.execute(insert(m.firewall_policies_v2).values(**row))
            _set_rules(conn, row["id"], rules)
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        pid = orig["id"]
        if orig["name"] in (res.DEFAULT_INGRESS, res.DEFAULT_EGRESS):
            raise _restricted(pid)
        groups = self.fw.groups_using_policies(conn, [pid])
        self.fw.ensure_not_pending(groups)
        if changes.get("shared") is False and any(g["project_id"] != orig["project_id"] for g in groups):
            raise Conflict(f"Firewall policy {pid} is being used.", type="FirewallPolicyInUse")
        merged = {**orig, **changes}
        if "firewall_rules" in changes:
            self._check_rules(conn, merged, changes["firewall_rules"], ctx)
        elif changes.get("shared"):
            shared = dict(conn.execute(select(_r.id, _r.shared).where(_r.id.in_(orig["firewall_rules"]))).all())
            for rid in orig["firewall_rules"]:
                if not shared.get(rid):
                    raise Conflict(f"Operation cannot be performed. Before sharing firewall policy {pid}, share "
                                   f"associated firewall rule {rid}.", type="FirewallPolicySharingConflict")
        values: dict[str, Any] = {k: changes[k] for k in ("name", "description", "shared", "audited") if k in changes}
        values.setdefault("audited", False)  # any change not setting it says the policy is not audited now
        common.bump(conn, m.firewall_policies_v2, pid, values, expect_revision)
        if "firewall_rules" in changes:
            _set_rules(conn, pid, changes["firewall_rules"])
            self.fw.refresh(conn, [g["id"] for g in groups])

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        pid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.firewall_policies_v2, pid, {}, expect_revision)
        if self.fw.groups_using_policies(conn, [pid]):
            raise Conflict(f"Firewall policy {pid} is being used.", type="FirewallPolicyInUse")
        conn.execute(delete(m.firewall_policy_rules_v2).where(_pr.firewall_policy_id == pid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == pid))
        conn.execute(delete(m.firewall_policies_v2).where(_p.id == pid))

    # -- PUT .../insert_rule and .../remove_rule
    def _rule_info(self, body: Any) -> str:
        if not isinstance(body, dict) or "firewall_rule_id" not in body:
            raise _invalid("Missing rule info argument for insert/remove rule operation.", "FirewallRuleInfoMissing")
        rid = body["firewall_rule_id"]
        try:
            return res.v.uuid_str(rid)
        except res.v.InvalidValue:
            raise _rule_not_found(rid) from None

    def _visible_rule(self, conn: Connection, rid: str, ctx: Context | None) -> Any:
        rule = conn.execute(select(_r.id, _r.project_id, _r.shared).where(_r.id == rid)).first()
        if rule is None or not (ctx is None or ctx.is_admin or rule.shared or rule.project_id == ctx.project_id):
            raise _rule_not_found(rid)
        return rule

    def _changed(self, conn: Connection, orig: dict[str, Any], rules: list[str]) -> None:
        pid = orig["id"]
        _set_rules(conn, pid, rules)
        common.bump(conn, m.firewall_policies_v2, pid, {"audited": False})
        self.fw.refresh(conn, [g["id"] for g in self.fw.groups_using_policies(conn, [pid])])

    def insert_rule(self, conn: Connection, orig: dict[str, Any], body: Any, ctx: Context | None) -> None:
        pid = orig["id"]
        rid = self._rule_info(body)
        self.fw.ensure_not_pending(self.fw.groups_using_policies(conn, [pid]))
        rules = list(orig["firewall_rules"])
        if rid in rules:
            raise Conflict(f"Operation cannot be performed since firewall rule {rid} is already associated with "
                           f"firewall policy {pid}.", type="FirewallRuleAlreadyAssociated")
        rule = self._visible_rule(conn, rid, ctx)
        if not rule.shared and rule.project_id != orig["project_id"]:
            raise Conflict(f"Operation cannot be performed since firewall rule {rid} is not shared and belongs to "
                           f"another project {rule.project_id}.", type="FirewallRuleConflict")
        # insert_before wins over insert_after; with neither, the rule goes first
        ref, after = body.get("insert_before"), False
        if not ref:
            ref, after = body.get("insert_after"), True
        position = 0
        if ref:
            if ref not in rules:
                raise _invalid(f"Firewall rule {ref} is not associated with firewall policy {pid}.",
                               "FirewallRuleNotAssociatedWithPolicy")
            position = rules.index(ref) + (1 if after else 0)
        rules.insert(position, rid)
        self._changed(conn, orig, rules)

    def remove_rule(self, conn: Connection, orig: dict[str, Any], body: Any, ctx: Context | None) -> None:
        pid = orig["id"]
        rid = self._rule_info(body)
        self.fw.ensure_not_pending(self.fw.groups_using_policies(conn, [pid]))
        self._visible_rule(conn, rid, ctx)
        rules = list(orig["firewall_rules"])
        if rid not in rules:
            raise _invalid(f"Firewall rule {rid} is not associated with firewall policy {pid}.",
                           "FirewallRuleNotAssociatedWithPolicy")
        rules.remove(rid)
        self._changed(conn, orig, rules)


class FirewallGroupService:
    def __init__(self, fw: FirewallService) -> None:
        self.fw = fw
        self.collection = GroupCollection()

    def before_list(self, db: Database, ctx: Context, q: ListQuery) -> None:
        """Listing groups makes the project's default group on first use, as neutron-fwaas: the caller's, or
        that of the project the list is filtered by."""
        project = ctx.project_id
        if not project:
            return
        wanted = q.filters.get("project_id") or q.filters.get("tenant_id")
        if wanted and isinstance(wanted[0], str) and wanted[0] and (ctx.is_admin or wanted[0] == project):
            project = wanted[0]
        with db.read() as conn:
            if self.fw.default_group_id(conn, project) is not None:
                return
        db.write(lambda conn: self.fw.ensure_default(conn, project))

    def _check_policies(self, conn: Connection, group: dict[str, Any], ctx: Context | None) -> None:
        for key in ("ingress_firewall_policy_id", "egress_firewall_policy_id"):
            pid = group.get(key)
            if not pid:
                continue
            policy = conn.execute(select(_p.project_id, _p.shared).where(_p.id == pid)).first()
            if policy is None or not (ctx is None or ctx.is_admin or policy.shared
                                      or policy.project_id == ctx.project_id):
                raise _policy_not_found(pid)
            if policy.project_id != group["project_id"] and not policy.shared:
                raise NotFound(f"Operation cannot be performed since firewall policy {pid} for your project could "
                               "not be found. Please confirm if the firewall policy exists and is shared.",
                               type="FirewallPolicyConflict")

    def _check_ports(self, conn: Connection, group: dict[str, Any], ports: Sequence[str], ctx: Context | None) -> None:
        """Router ports of the group's project (centralized routers), in no other group."""
        if not ports:
            return
        p = m.ports.c
        found = {r.id: r for r in conn.execute(select(p.id, p.project_id, p.device_owner).where(p.id.in_(list(ports))))}
        for port_id in ports:
            port = found.get(port_id)
            if port is None or not (ctx is None or ctx.is_admin or port.project_id == ctx.project_id):
                raise NotFound(f"Port {port_id} could not be found.", type="PortNotFound")
            if port.project_id != group["project_id"]:
                raise Conflict(f"Operation cannot be performed as port {port_id} is in an invalid project "
                               f"{port.project_id}.", type="FirewallGroupPortInvalidProject")
            owner = port.device_owner or ""
            if owner.startswith("compute:") or owner == "network:router_interface_distributed":
                raise Conflict(f"Port {port_id} is not supported by firewall driver 'fermion-l3'.",
                               type="FirewallGroupPortNotSupported")
            if owner not in res.ROUTER_PORT_OWNERS:
                raise Conflict(f"Port {port_id} of firewall group is invalid.", type="FirewallGroupPortInvalid")
        taken = sorted(conn.scalars(select(_gp.port_id).where(_gp.port_id.in_(list(ports)),
                                                              _gp.firewall_group_id != group["id"])))
        if taken:
            raise Conflict(f"Port(s) {taken} provided already associated with other firewall group(s).",
                           type="FirewallGroupPortInUse")

    @staticmethod
    def _status(group: dict[str, Any], ports: Sequence[str], pending: str) -> str:
        if not ports or not (group.get("ingress_firewall_policy_id") or group.get("egress_firewall_policy_id")):
            return INACTIVE
        return pending

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            if item.get("name") == res.DEFAULT_GROUP:
                raise _reserved(res.DEFAULT_GROUP, "Firewall Group")
            row = {**common.standard_row(item), "shared": item.get("shared", False),
                   "admin_state_up": item.get("admin_state_up", True),
                   "ingress_firewall_policy_id": item.get("ingress_firewall_policy_id"),
                   "egress_firewall_policy_id": item.get("egress_firewall_policy_id")}
            ports = item.get("ports") or []
            self._check_policies(conn, row, ctx)
            self._check_ports(conn, row, ports, ctx)
            self.fw.ensure_default(conn, row["project_id"])
            row["status"] = self._status(row, ports, PENDING_CREATE)
            conn.execute(insert(m.firewall_groups_v2).values(**row))
            if ports:
                conn.execute(insert(m.firewall_group_ports_v2),
                             [{"firewall_group_id": row["id"], "port_id": p} for p in ports])
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            self.fw.hint_routers(conn, ports)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        gid = orig["id"]
        self.fw.ensure_not_pending([orig])
        if changes.get("name") == res.DEFAULT_GROUP and orig["name"] != res.DEFAULT_GROUP:
            raise _reserved(res.DEFAULT_GROUP, "Firewall Group")
        if orig["name"] == res.DEFAULT_GROUP:
            locked = ["name"] if ctx is not None and ctx.is_admin else [
                "name", "description", "admin_state_up", "ingress_firewall_policy_id", "egress_firewall_policy_id"]
            if any(k in changes for k in locked):
                raise _restricted(gid)
        merged = {**orig, **changes}
        self._check_policies(conn, {k: changes.get(k) for k in ("ingress_firewall_policy_id",
                                                                "egress_firewall_policy_id")}
                             | {"project_id": orig["project_id"]}, ctx)
        ports = changes.get("ports", orig["ports"])
        if "ports" in changes:
            self._check_ports(conn, orig, ports, ctx)
        moved = set(ports) != set(orig["ports"])
        keys = ("ingress_firewall_policy_id", "egress_firewall_policy_id", "admin_state_up")
        touched = moved or any(merged[k] != orig[k] for k in keys)
        values = {k: changes[k] for k in ("name", "description", "shared", *keys) if k in changes}
        if touched:
            values["status"] = self._status(merged, ports, PENDING_UPDATE)
        common.bump(conn, m.firewall_groups_v2, gid, values, expect_revision)
        if "ports" in changes:
            conn.execute(delete(m.firewall_group_ports_v2).where(_gp.firewall_group_id == gid))
            if ports:
                conn.execute(insert(m.firewall_group_ports_v2),
                             [{"firewall_group_id": gid, "port_id": p} for p in ports])
        if touched:
            self.fw.hint_routers(conn, [*orig["ports"], *ports])

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        gid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.firewall_groups_v2, gid, {}, expect_revision)
        if orig["ports"]:
            raise Conflict(f"Firewall group {gid} is still active.", type="FirewallGroupInUse")
        default = orig["name"] == res.DEFAULT_GROUP
        if default and not (ctx is not None and ctx.is_admin):
            raise Conflict("Deleting default firewall group not allowed.", type="FirewallGroupCannotRemoveDefault")
        conn.execute(delete(m.default_firewall_groups).where(_d.firewall_group_id == gid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == gid))
        conn.execute(delete(m.firewall_groups_v2).where(_g.id == gid))
        if default:  # an admin deleting a default group deletes its policies too (their rules stay)
            for pid in {orig["ingress_firewall_policy_id"], orig["egress_firewall_policy_id"]} - {None}:
                if not self.fw.groups_using_policies(conn, [pid]):
                    conn.execute(delete(m.firewall_policy_rules_v2).where(_pr.firewall_policy_id == pid))
                    conn.execute(delete(m.tags).where(m.tags.c.resource_id == pid))
                    conn.execute(delete(m.firewall_policies_v2).where(_p.id == pid))
