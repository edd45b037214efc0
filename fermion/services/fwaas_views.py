"""FWaaS on the L3 agents' side of the server: the firewall groups in each router's view (Router.firewall_groups)
and the statuses the agents report (FirewallReport).

A report counts only when made from the group's current revision (every change that matters to the data plane
bumps it, fwaas.py); one from an older view changes nothing, and the group's routers get a hint so the agent
reports again from a fresh view. A group being deleted (PENDING_DELETE) keeps its status."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, bindparam, select, update

from fermion.db import models as m
from fermion.resources import fwaas as res
from fermion.rpc.contracts import FirewallGroup, FirewallRule, FirewallStatus, Router
from fermion.services.fwaas import PENDING_DELETE, policy_rules
from fermion.services.query import chunks

IANA = {"tcp": 6, "udp": 17, "icmp": 1}
REPORTED = ("ACTIVE", "INACTIVE", "DOWN", "ERROR")  # what an agent may set (anything else reads ERROR)


def rule_view(row: dict[str, Any]) -> FirewallRule:
    """A firewall rule row as the L3 agents get it."""
    proto = IANA[str(row["protocol"])] if row["protocol"] else None
    if proto == 1 and row["ip_version"] == 6:
        proto = 58  # icmp in an IPv6 rule means ICMPv6

    def cidr(value: Any) -> str | None:
        return str(netaddr.IPNetwork(str(value)).cidr) if value else None

    return FirewallRule(action=str(row["action"]), ip_version=int(str(row["ip_version"])), protocol=proto,
                        source_ip=cidr(row["source_ip_address"]), destination_ip=cidr(row["destination_ip_address"]),
                        source_port=res.range_text(row["source_port_range_min"], row["source_port_range_max"]),
                        destination_port=res.range_text(row["destination_port_range_min"],
                                                        row["destination_port_range_max"]))


def fill(conn: Connection, routers: Sequence[Router]) -> list[Router]:
    """The routers with the firewall groups on their interfaces (five queries whatever their number)."""
    by_router: dict[str, str] = {}
    for r in routers:
        for port in r.interfaces:
            by_router[port.id] = r.id
    if not by_router:
        return list(routers)
    gp, g = m.firewall_group_ports_v2.c, m.firewall_groups_v2.c
    placed: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))  # router -> group -> ports
    for part in chunks(sorted(by_router)):
        for gid, port_id in conn.execute(select(gp.firewall_group_id, gp.port_id).where(gp.port_id.in_(part))):
            placed[by_router[port_id]][gid].append(port_id)
    group_ids = sorted({gid for groups in placed.values() for gid in groups})
    if not group_ids:
        return list(routers)
    groups = {}
    for part in chunks(group_ids):
        for row in conn.execute(select(g.id, g.revision_number, g.admin_state_up, g.status,
                                       g.ingress_firewall_policy_id, g.egress_firewall_policy_id)
                                .where(g.id.in_(part))):
            groups[row.id] = row
    policy_ids = sorted({p for row in groups.values()
                         for p in (row.ingress_firewall_policy_id, row.egress_firewall_policy_id) if p})
    ordered = policy_rules(conn, policy_ids) if policy_ids else {}
    rule_ids = sorted({rid for ids in ordered.values() for rid in ids})
    fr = m.firewall_rules_v2.c
    rules: dict[str, FirewallRule] = {}
    for part in chunks(rule_ids):
        for row in conn.execute(select(m.firewall_rules_v2).where(fr.id.in_(part), fr.enabled.is_(True))):
            rules[row.id] = rule_view(dict(row._mapping))

    def direction(policy_id: str | None) -> list[FirewallRule] | None:
        if not policy_id:
            return None
        return [rules[rid] for rid in ordered.get(policy_id, []) if rid in rules]

    out = []
    for router in routers:
        mine = [FirewallGroup(id=gid, revision=groups[gid].revision_number, ports=sorted(ports),
                              ingress=direction(groups[gid].ingress_firewall_policy_id),
                              egress=direction(groups[gid].egress_firewall_policy_id),
                              admin_state_up=groups[gid].admin_state_up, status=groups[gid].status)
                for gid, ports in sorted(placed.get(router.id, {}).items()) if gid in groups]
        out.append(dataclasses.replace(router, firewall_groups=mine) if mine else router)
    return out


def apply(conn: Connection, statuses: Mapping[str, FirewallStatus]) -> tuple[int, list[str]]:
    """The statuses an L3 agent reports, where made from the group's current revision. Returns how many
    changed, and the ports of the groups reported from an older revision (their routers get a hint)."""
    g = m.firewall_groups_v2.c
    changed = 0
    for status in {s.status for s in statuses.values()}:
        value = status if status in REPORTED else "ERROR"
        rows = [{"b_id": k, "b_rev": v.revision} for k, v in statuses.items() if v.status == status]
        stmt = (update(m.firewall_groups_v2)
                .where(g.id == bindparam("b_id"), g.revision_number == bindparam("b_rev"), g.status != value,
                       g.status != PENDING_DELETE)
                .values(status=value))
        changed += conn.execute(stmt, rows).rowcount or 0
    stale = []
    if statuses:
        for gid, revision in conn.execute(select(g.id, g.revision_number).where(g.id.in_(list(statuses)))):
            if revision > statuses[gid].revision:
                stale.append(gid)
    gp = m.firewall_group_ports_v2.c
    ports = sorted(conn.scalars(select(gp.port_id).where(gp.firewall_group_id.in_(stale)))) if stale else []
    return changed, ports
