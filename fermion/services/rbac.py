"""RBAC policies (/v2.0/rbac-policies): validation, in-use checks and their effect on the shared objects.

Object types are a registry: one ``ObjectType`` declaration names the table, the valid actions and the
projects that depend on a grant (its "bound" projects). Adding another type (QoS policies, ...)
is one more entry in ``OBJECT_TYPES`` (see the docstring of ``ObjectType``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.errors import BadRequest, Conflict, InvalidInput
from fermion.resources.rbac_policy import RBAC_POLICY
from fermion.rpc.contracts import Hint
from fermion.services import common, qos_bindings
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.rbac_access import EXTERNAL, SHARED, WILDCARD, grant, has_access, revoke

Policy = dict[str, Any]
# (conn, policy, targets granted after the change besides the object's other grants) -> reason or None
InUse = Callable[[Connection, Policy, frozenset[str]], "str | None"]


@dataclass(frozen=True)
class ObjectType:
    """What RBAC may share and how.

    name: the API's object_type; table: the objects' table (id, project_id); actions: valid actions, in
    the order Neutron lists them; label: how messages name the object ("network").
    bound_projects(conn, object_id): the projects whose resources use the object (ports in a security
    group, subnets from a pool, ...): the generic in-use check keeps a sharing grant one of them depends on.
    in_use(conn, policy, keeps): replaces the generic check (networks: ports and router gateways); returns
    the reason the policy's target still needs the grant, or None. keeps: the new target of a retargeted
    policy, which keeps its access.
    changed(conn, object_id): after a grant was added, retargeted or removed (networks: flags, revision).
    refusal(conn, object_id, target, ctx): why a new grant to target may not be made (subnet pools: the
    target cannot use the pool's address scope), or None.
    """

    name: str
    table: Table
    actions: tuple[str, ...]
    label: str
    bound_projects: Callable[[Connection, str], set[str]] | None = None
    in_use: InUse | None = None
    changed: Callable[[Connection, str], None] | None = None
    refusal: Callable[[Connection, str, str, Context | None], str | None] | None = None


_r = m.rbac_policies.c


def _other_targets(conn: Connection, policy: Policy, keeps: frozenset[str]) -> set[str]:
    """Targets of the object's other grants of the same action, and those the change keeps."""
    rows = conn.execute(select(_r.target_project).where(
        _r.object_type == policy["object_type"], _r.object_id == policy["object_id"],
        _r.action == policy["action"], _r.id != policy["id"]))
    return {r[0] for r in rows} | keeps


def _owner(conn: Connection, table: Table, object_id: str) -> str | None:
    found: str | None = conn.execute(select(table.c.project_id).where(table.c.id == object_id)).scalar()
    return found


def generic_in_use(otype: ObjectType, conn: Connection, policy: Policy, keeps: frozenset[str]) -> str | None:
    """Neutron's check for a sharing grant: the target (or, for '*', any bound project not covered by another
    grant) still uses the object. The owner needs no grant."""
    if policy["action"] != SHARED or otype.bound_projects is None:
        return None
    owner = _owner(conn, otype.table, policy["object_id"])
    bound = otype.bound_projects(conn, policy["object_id"]) - {owner, ""}
    others = _other_targets(conn, policy, keeps)
    target = policy["target_tenant"]
    if target != WILDCARD:
        return f"project_id={target}" if WILDCARD not in others and target in bound else None
    return None if bound <= others else f"project_id={target}"


# ------------------------------------------------------------------------------------------ networks

def _network_in_use(conn: Connection, policy: Policy, keeps: frozenset[str]) -> str | None:
    net_id, target = policy["object_id"], policy["target_tenant"]
    owner = _owner(conn, m.networks, net_id)
    others = _other_targets(conn, policy, keeps)
    if policy["action"] == SHARED:
        if target == owner:  # self-sharing grants nothing the owner lacks
            return None
        p = m.ports.c
        users = select(p.id).where(p.network_id == net_id, p.project_id != "")
        if target == WILDCARD:
            users = users.where(p.project_id.not_in(sorted((others - {WILDCARD}) | {owner or ""})))
        elif WILDCARD in others:
            return None
        else:
            users = users.where(p.project_id == target)
        if conn.execute(users.limit(1)).first() is not None:
            return (f"Unable to reconfigure sharing settings for network {net_id}. "
                    "Multiple tenants are using it.")
        return None
    # access_as_external: the default external network keeps its wildcard (auto-allocated topologies use it),
    # and routers whose gateway is on the network keep their access
    if target == WILDCARD and WILDCARD not in keeps and conn.execute(
            select(m.networks.c.id).where(m.networks.c.id == net_id, m.networks.c.is_default.is_(True))).first():
        return "The default external network must stay external to every project."
    rt, p = m.routers.c, m.ports.c
    users = select(rt.id).join_from(m.routers, m.ports, p.id == rt.gw_port_id).where(p.network_id == net_id)
    if target == WILDCARD:
        users = users.where(rt.project_id.not_in(sorted(others - {WILDCARD}) or [""]))
    elif WILDCARD in others:
        return None
    else:
        users = users.where(rt.project_id == target)
    if conn.execute(users.limit(1)).first() is not None:
        return "There are routers attached to this network that depend on this policy for access."
    return None


def sync_network(conn: Connection, net_id: str) -> None:
    """A network's flags follow its grants: shared is a wildcard access_as_shared grant, router:external
    any access_as_external grant. Any grant change bumps the network's revision, as in Neutron."""
    rows = conn.execute(select(_r.action, _r.target_project).where(
        _r.object_type == "network", _r.object_id == net_id)).all()
    shared = any(a == SHARED and t == WILDCARD for a, t in rows)
    external = any(a == EXTERNAL for a, _ in rows)
    n = m.networks.c
    rev = conn.execute(select(n.revision_number).where(n.id == net_id)).scalar()
    if rev is None:
        return
    common.bump(conn, m.networks, net_id, {"shared": shared, "router_external": external})
    common.emit(conn, Hint("network", net_id, rev + 1, net_id))


def _sg_bound_projects(conn: Connection, group_id: str) -> set[str]:
    b, p = m.port_security_groups.c, m.ports.c
    rows = conn.execute(select(p.project_id).distinct()
                        .join_from(m.port_security_groups, m.ports, p.id == b.port_id)
                        .where(b.security_group_id == group_id))
    return {r[0] for r in rows}


def _pool_bound_projects(conn: Connection, pool_id: str) -> set[str]:
    s = m.subnets.c
    return set(conn.execute(select(s.project_id).distinct().where(s.subnetpool_id == pool_id)).scalars())


def _scope_bound_projects(conn: Connection, scope_id: str) -> set[str]:
    sp = m.subnetpools.c
    return set(conn.execute(select(sp.project_id).distinct().where(sp.address_scope_id == scope_id)).scalars())


def _address_group_bound_projects(conn: Connection, group_id: str) -> set[str]:
    r = m.securitygrouprules.c
    return set(conn.execute(select(r.project_id).distinct().where(r.remote_address_group_id == group_id)).scalars())


def pool_scope_refusal(conn: Connection, pool_id: str, target: str, ctx: Context | None) -> str | None:
    """A pool in an address scope is shared only with a project the scope is shared with, or with all, by a
    grant the caller can see: any for an admin, its own project's otherwise (Neutron queries the scope's
    grants with the caller's context, so a non-admin does not count a grant an admin made)."""
    scope_id = conn.execute(select(m.subnetpools.c.address_scope_id)
                            .where(m.subnetpools.c.id == pool_id)).scalar()
    if not scope_id:
        return None
    grants = select(_r.id).where(_r.object_type == "address_scope", _r.object_id == scope_id,
                                 _r.target_project.in_(sorted({WILDCARD, target})))
    if ctx is not None and not (ctx.is_admin or "service" in ctx.roles):
        grants = grants.where(_r.project_id == ctx.project_id)
    if conn.execute(grants.limit(1)).first() is None:
        return "target project doesn't have access to associated address scope"
    return None


def refused(object_id: str, reason: str) -> InvalidInput:
    return InvalidInput(f"Failed to create RBAC policy on object {object_id} because {reason}.")


def _sync_shared_flag(table: Table, object_type: str) -> Callable[[Connection, str], None]:
    """A stored ``shared`` flag (address scopes, subnet pools) follows the wildcard access_as_shared grant,
    whether the flag or a policy made it."""
    def changed(conn: Connection, object_id: str) -> None:
        wildcard = conn.execute(select(_r.id).where(
            _r.object_type == object_type, _r.object_id == object_id, _r.action == SHARED,
            _r.target_project == WILDCARD).limit(1)).first() is not None
        current = conn.execute(select(table.c.shared).where(table.c.id == object_id)).scalar()
        if current is not None and bool(current) != wildcard:
            common.bump(conn, table, object_id, {"shared": wildcard})
    return changed


OBJECT_TYPES: dict[str, ObjectType] = {t.name: t for t in (
    ObjectType("network", m.networks, (EXTERNAL, SHARED), "network", in_use=_network_in_use, changed=sync_network),
    ObjectType("security_group", m.securitygroups, (SHARED,), "security group", bound_projects=_sg_bound_projects),
    ObjectType("address_scope", m.address_scopes, (SHARED,), "address scope", bound_projects=_scope_bound_projects,
               changed=_sync_shared_flag(m.address_scopes, "address_scope")),
    ObjectType("subnetpool", m.subnetpools, (SHARED,), "subnet pool", bound_projects=_pool_bound_projects,
               changed=_sync_shared_flag(m.subnetpools, "subnetpool"), refusal=pool_scope_refusal),
    ObjectType("address_group", m.address_groups, (SHARED,), "address group",
               bound_projects=_address_group_bound_projects),
    ObjectType("qos_policy", m.qos_policies, (SHARED,), "QoS policy", in_use=qos_bindings.rbac_in_use,
               changed=_sync_shared_flag(m.qos_policies, "qos_policy")),
)}


# ------------------------------------------------------------------------------------------ the API

class RbacCollection(Collection):
    """Not a standard-attribute resource: no timestamps, revision or tags."""

    def __init__(self) -> None:
        super().__init__(RBAC_POLICY, m.rbac_policies)
        self.columns["target_tenant"] = m.rbac_policies.c.target_project
        c = m.rbac_policies.c
        self.plain = [("id", c.id), ("project_id", c.project_id), ("object_type", c.object_type),
                      ("object_id", c.object_id), ("action", c.action), ("target_tenant", c.target_project)]

    def to_dicts(self, conn: Connection, rows: Any, tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        names = [(name, self._index[col.name]) for name, col in self.plain]
        project = self._index["project_id"]
        out = []
        for r in rows:
            d = {name: r[i] for name, i in names}
            d["tenant_id"] = r[project]
            out.append(d)
        return out

    def fresh(self, conn: Connection, inserted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keys = list(m.rbac_policies.c.keys())
        return self.to_dicts(conn, [tuple(r[k] for k in keys) for r in inserted])


def in_use_error(object_id: str, details: str) -> Conflict:
    return Conflict(f"RBAC policy on object {object_id} cannot be removed because other objects depend on it.\n"
                    f"Details: {details}", type="RbacPolicyInUse")


class RbacService:
    def __init__(self, quotas: QuotaService, types: dict[str, ObjectType] | None = None) -> None:
        self.collection = RbacCollection()
        self.quotas = quotas
        self.types = OBJECT_TYPES if types is None else types

    def object_type(self, name: str) -> ObjectType:
        otype = self.types.get(name.strip().lower()) if isinstance(name, str) else None
        if otype is None:
            raise InvalidInput(f"'{name}' is not a valid RBAC object type.")
        return otype

    def _check_object(self, conn: Connection, otype: ObjectType, object_id: str, ctx: Context | None) -> None:
        """The object exists and the caller owns it (an admin may share anything)."""
        owner = _owner(conn, otype.table, object_id)
        if owner is None:
            raise InvalidInput(f"{otype.label.capitalize()} {object_id} could not be found.")
        if ctx is None or ctx.is_admin or owner == ctx.project_id:
            return
        # what the caller cannot see is reported as absent, as Neutron's own lookup does
        if not has_access(conn, otype.name, object_id, ctx.project_id, otype.actions):
            raise InvalidInput(f"{otype.label.capitalize()} {object_id} could not be found.")
        what = "networks" if otype.name == "network" else "objects"
        raise InvalidInput(f"Only admins can manipulate policies on {what} they do not own.")

    def _in_use(self, conn: Connection, otype: ObjectType, policy: Policy,
                keeps: frozenset[str] = frozenset()) -> str | None:
        if otype.in_use is not None:
            return otype.in_use(conn, policy, keeps)
        return generic_in_use(otype, conn, policy, keeps)

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            otype = self.object_type(item["object_type"])
            action = item["action"]
            if action not in otype.actions:
                raise BadRequest(f"Invalid action '{action}' for object type '{otype.name}'. "
                                 f"Valid actions: {otype.actions!r}", type="InvalidActionForType")
            self._check_object(conn, otype, item["object_id"], ctx)
            if otype.refusal is not None:
                reason = otype.refusal(conn, item["object_id"], item["target_tenant"], ctx)
                if reason is not None:
                    raise refused(item["object_id"], reason)
            ident = grant(conn, item["project_id"], otype.name, item["object_id"], action, item["target_tenant"])
            if ident is None:
                raise Conflict("An RBAC policy already exists with those values.", type="DuplicateRbacPolicy")
            rows.append({"id": ident, "project_id": item["project_id"], "object_type": otype.name,
                         "object_id": item["object_id"], "action": action,
                         "target_project": item["target_tenant"]})
            if otype.changed is not None:
                otype.changed(conn, item["object_id"])
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "rbac_policy", count)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        target = changes.get("target_tenant", orig["target_tenant"])
        if target == orig["target_tenant"]:
            return
        otype = self.types.get(orig["object_type"])  # a type no longer declared: nothing depends on it
        reason = self._in_use(conn, otype, orig, frozenset({target})) if otype is not None else None
        if reason is not None:
            raise in_use_error(orig["object_id"], reason)
        taken = conn.execute(select(_r.id).where(
            _r.object_type == orig["object_type"], _r.object_id == orig["object_id"],
            _r.action == orig["action"], _r.target_project == target)).first()
        if taken is not None:
            raise Conflict("An RBAC policy already exists with those values.", type="DuplicateRbacPolicy")
        conn.execute(update(m.rbac_policies).where(_r.id == orig["id"]).values(target_project=target))
        if otype is not None and otype.changed is not None:
            otype.changed(conn, orig["object_id"])

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        otype = self.types.get(orig["object_type"])
        if otype is not None:
            reason = self._in_use(conn, otype, orig)
            if reason is not None:
                raise in_use_error(orig["object_id"], reason)
        revoke(conn, orig["object_type"], orig["object_id"], [orig["action"]], orig["target_tenant"])
        self.quotas.release(conn, orig["project_id"], "rbac_policy")
        if otype is not None and otype.changed is not None:
            otype.changed(conn, orig["object_id"])


def count_unlimited(conn: Connection, quotas: QuotaService, project_id: str, count: int = 1) -> None:
    """Grants made by a network's shared/router:external flags count in usage but are never refused."""
    quotas.release(conn, project_id, "rbac_policy", -count)


def revoke_all(conn: Connection, quotas: QuotaService, object_type: str, object_id: str,
               actions: list[str] | None = None, target: str | None = None) -> int:
    """Remove an object's grants (it is deleted, or a flag was cleared), releasing their quota usage."""
    owners = revoke(conn, object_type, object_id, actions, target)
    for project in owners:
        quotas.release(conn, project, "rbac_policy")
    return len(owners)

