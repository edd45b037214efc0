"""QoS in the agents' views: each port's effective policy (its own, else its network's; ports the network
owns, router and DHCP ports, take only their own, as in Neutron), each floating IP's and router gateway's.
Batched: one read for the policies of a view's objects, one per rule table."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, select

from fermion.db import models as m
from fermion.rpc.contracts import BandwidthLimit, L2Port, QosRules, Router
from fermion.services.query import chunks


def load(conn: Connection, policy_ids: Iterable[str | None]) -> dict[str, QosRules]:
    """What each policy enforces here: its bandwidth limits and DSCP mark (minimum bandwidth is not enforced)."""
    wanted = sorted({p for p in policy_ids if p})
    limits: dict[str, dict[str, BandwidthLimit]] = {p: {} for p in wanted}
    marks: dict[str, int] = {}
    b, d = m.qos_bandwidth_limit_rules.c, m.qos_dscp_marking_rules.c
    for part in chunks(wanted):
        for pid, direction, kbps, burst in conn.execute(select(b.qos_policy_id, b.direction, b.max_kbps,
                                                               b.max_burst_kbps).where(b.qos_policy_id.in_(part))):
            limits[pid][direction] = BandwidthLimit(max_kbps=kbps, max_burst_kbps=burst)
        marks.update(conn.execute(select(d.qos_policy_id, d.dscp_mark).where(d.qos_policy_id.in_(part))).all())
    return {p: QosRules(policy_id=p, egress=limits[p].get("egress"), ingress=limits[p].get("ingress"),
                        dscp_mark=marks.get(p)) for p in wanted}


def l2_ports(conn: Connection, ports: list[L2Port]) -> list[L2Port]:
    """The ports of an L2 view with their effective QoS."""
    if not ports:
        return ports
    p, n = m.ports.c, m.networks.c
    effective: dict[str, str | None] = {}
    for part in chunks([x.id for x in ports]):
        for pid, own, owner, inherited in conn.execute(
                select(p.id, p.qos_policy_id, p.device_owner, n.qos_policy_id)
                .join(m.networks, n.id == p.network_id).where(p.id.in_(part))):
            effective[pid] = own or (None if owner.startswith("network:") else inherited)
    rules = load(conn, effective.values())
    return [dataclasses.replace(x, qos=rules.get(effective.get(x.id) or "")) if effective.get(x.id) else x
            for x in ports]


def l3_routers(conn: Connection, routers: Sequence[Router]) -> list[Router]:
    """The routers of an L3 view with their gateway's and floating IPs' QoS (qos-gateway-ip, qos-fip)."""
    if not routers:
        return list(routers)
    r, f = m.routers.c, m.floatingips.c
    ids = [x.id for x in routers]
    gateways: dict[str, str | None] = {}
    fips: dict[str, str | None] = {}
    for part in chunks(ids):
        gateways.update(conn.execute(select(r.id, r.gw_qos_policy_id).where(r.id.in_(part))).all())
        fips.update(conn.execute(select(f.id, f.qos_policy_id).where(f.router_id.in_(part),
                                                                     f.qos_policy_id.is_not(None))).all())
    rules = load(conn, [*gateways.values(), *fips.values()])
    if not rules:
        return list(routers)
    out = []
    for router in routers:
        gw = rules.get(gateways.get(router.id) or "") if router.gateway is not None else None
        floating = [dataclasses.replace(x, qos=rules.get(fips.get(x.id) or "")) for x in router.floating_ips]
        out.append(dataclasses.replace(router, gateway_qos=gw, floating_ips=floating))
    return out
