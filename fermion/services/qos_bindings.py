"""What uses a QoS policy: ports and networks (qos), floating IPs (qos-fip) and router gateways
(qos-gateway-ip), each through a ``qos_policy_id`` column of its own row.

Who may name a policy: its project, a project it is shared with (RBAC), or an admin; anyone else is told
it does not exist, as Neutron does. A change of what a policy enforces hints the L2 agents of the networks
whose ports use it and the L3 agents of the routers whose floating IPs or gateway use it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from fermion.context import Context
from fermion.db import models as m
from fermion.errors import NotFound
from fermion.rpc.contracts import Hint
from fermion.services import common, rbac_access

_q = m.qos_policies.c
# (what Neutron calls the user, its table, the column naming the policy)
USERS = (("network", m.networks, "qos_policy_id"), ("port", m.ports, "qos_policy_id"),
         ("floatingip", m.floatingips, "qos_policy_id"), ("router", m.routers, "gw_qos_policy_id"))


def usable(conn: Connection, policy_id: str | None, ctx: Context | None, project_id: str | None = None) -> None:
    """The policy exists and the caller may use it (else QosPolicyNotFound, 404)."""
    if policy_id is None:
        return
    owner = conn.execute(select(_q.project_id).where(_q.id == policy_id)).scalar()
    if owner is not None and (ctx is None or ctx.is_admin or owner in (ctx.project_id, project_id)
                              or rbac_access.has_access(conn, "qos_policy", policy_id, ctx.project_id)):
        return
    raise NotFound(f"QoS policy {policy_id} could not be found.", type="QosPolicyNotFound")


def for_new_network(conn: Connection, item: dict[str, Any], ctx: Context | None) -> str | None:
    """A new network's policy: the one asked for, else its project's default (qos-default)."""
    asked = item.get("qos_policy_id")
    if asked is not None:
        usable(conn, asked, ctx)
        return str(asked)
    d = m.qos_policies_default.c
    found: str | None = conn.execute(select(d.qos_policy_id).where(d.project_id == item["project_id"])).scalar()
    return found


def check_change(conn: Connection, changes: dict[str, Any], ctx: Context | None) -> None:
    """An update naming a policy: the caller may use it."""
    if changes.get("qos_policy_id") is not None:
        usable(conn, changes["qos_policy_id"], ctx)


def in_use(conn: Connection, policy_id: str) -> tuple[str, str] | None:
    """(object type, id) of something using the policy, or None."""
    for kind, table, column in USERS:
        found = conn.execute(select(table.c.id).where(table.c[column] == policy_id).limit(1)).scalar()
        if found is not None:
            return kind, found
    return None


def bound_projects(conn: Connection, policy_id: str) -> set[str]:
    """The projects whose ports, networks, floating IPs or routers use the policy (RBAC in-use checks)."""
    out: set[str] = set()
    for _, table, column in USERS:
        out.update(conn.execute(select(table.c.project_id).distinct().where(table.c[column] == policy_id)).scalars())
    return out


def rbac_in_use(conn: Connection, grant: dict[str, Any], keeps: frozenset[str] = frozenset()) -> str | None:
    """Neutron's check for a QoS policy's sharing grant going (or being retargeted: the new target does not
    count): a project target still used by that project, unless a wildcard grant stays; the wildcard, when
    a project using the policy (its owner too) has no grant of its own."""
    if grant["action"] != rbac_access.SHARED:
        return None
    pid, target = grant["object_id"], grant["target_tenant"]
    if conn.execute(select(_q.project_id).where(_q.id == pid)).scalar() == target:
        return None
    r = m.rbac_policies.c
    others = set(conn.execute(select(r.target_project).where(
        r.object_type == "qos_policy", r.object_id == pid, r.action == rbac_access.SHARED,
        r.id != grant["id"])).scalars())
    bound = bound_projects(conn, pid)
    if target != rbac_access.WILDCARD:
        return f"project_id={target}" if rbac_access.WILDCARD not in others and target in bound else None
    return None if bound <= others else f"project_id={target}"


def policy_changed(conn: Connection, policy_id: str) -> None:
    """Hint the agents enforcing the policy: one hint per network whose ports use it (their own or the
    network's), one per router whose gateway or floating IPs use it."""
    p, n, f, r = m.ports.c, m.networks.c, m.floatingips.c, m.routers.c
    networks = set(conn.execute(select(n.id).where(n.qos_policy_id == policy_id)).scalars())
    networks.update(conn.execute(select(p.network_id).distinct().where(p.qos_policy_id == policy_id)).scalars())
    for net_id in sorted(networks):
        common.emit(conn, Hint("qos_policy", policy_id, 0, net_id))
    routers = set(conn.execute(select(r.id).where(r.gw_qos_policy_id == policy_id)).scalars())
    routers.update(conn.execute(select(f.router_id).distinct().where(
        f.qos_policy_id == policy_id, f.router_id.is_not(None), f.fixed_port_id.is_not(None))).scalars())
    for router_id in sorted(routers):
        router_changed(conn, router_id)


def router_changed(conn: Connection, router_id: str) -> None:
    """A router's QoS changed: a hint to the L3 agents carrying it (every one when none does)."""
    b, a = m.router_l3_agents.c, m.agents.c
    hosts = sorted(conn.execute(select(a.host).join(m.router_l3_agents, b.l3_agent_id == a.id)
                                .where(b.router_id == router_id)).scalars())
    for host in hosts or [None]:
        common.emit(conn, Hint("router", router_id, 0, None, host))


def fip_updated(conn: Connection, orig: dict[str, Any], changes: dict[str, Any], ctx: Context | None) -> None:
    """A floating IP's qos_policy_id changed: store it and tell its router."""
    if "qos_policy_id" not in changes or changes["qos_policy_id"] == orig.get("qos_policy_id"):
        return
    usable(conn, changes["qos_policy_id"], ctx)
    f = m.floatingips.c
    conn.execute(m.floatingips.update().where(f.id == orig["id"]).values(qos_policy_id=changes["qos_policy_id"]))
    router_id = conn.execute(select(f.router_id).where(f.id == orig["id"])).scalar()
    if router_id:
        router_changed(conn, router_id)


def gateway_policy(conn: Connection, router: dict[str, Any], info: dict[str, Any], ctx: Context | None) -> None:
    """external_gateway_info.qos_policy_id (qos-gateway-ip): set when given, kept otherwise."""
    if "qos_policy_id" not in info:
        return
    usable(conn, info["qos_policy_id"], ctx, router.get("project_id"))
    conn.execute(m.routers.update().where(m.routers.c.id == router["id"])
                 .values(gw_qos_policy_id=info["qos_policy_id"]))

