"""Network IP availability (network-ip-availability): used and total addresses per subnet and network,
read in one grouped query however many ports there are."""

from __future__ import annotations

import socket
from typing import Any

import netaddr
from sqlalchemy import ColumnElement, Connection, and_, func, select

from fermion.db import models as m

FILTERS = ("network_id", "network_name", "project_id", "tenant_id", "ip_version")
_n, _s, _a = m.networks.c, m.subnets.c, m.ip_allocations.c


def _int(ip: str) -> int:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return int.from_bytes(socket.inet_pton(family, ip), "big")


def pool_size(pools: list[dict[str, str]]) -> int:
    """How many addresses the allocation pools hold (Neutron's total_ips)."""
    return sum(_int(p["end"]) - _int(p["start"]) + 1 for p in pools)


def availabilities(conn: Connection, filters: dict[str, list[Any]], visible: ColumnElement[bool] | None,
                   network_id: str | None = None) -> list[dict[str, Any]]:
    """One entry per network (those without subnets too), its subnets' used and total counts inside."""
    counted = select(_a.subnet_id, func.count().label("used")).group_by(_a.subnet_id)
    wanted = [network_id] if network_id is not None else filters.get("network_id")
    if wanted:  # count only those networks' addresses (the primary key leads with network_id)
        counted = counted.where(_a.network_id.in_(wanted))
    used = counted.subquery()
    on_subnet = _s.network_id == _n.id
    versions = filters.get("ip_version")
    if versions:
        on_subnet = and_(on_subnet, _s.ip_version.in_(versions))
    stmt = (select(_n.id, _n.name, _n.project_id, _s.id, _s.name, _s.cidr, _s.ip_version, _s.allocation_pools,
                   func.coalesce(used.c.used, 0))
            .select_from(m.networks.outerjoin(m.subnets, on_subnet).outerjoin(used, used.c.subnet_id == _s.id))
            .order_by(_n.id, _s.created_at, _s.id))
    conds: list[ColumnElement[bool]] = []
    if network_id is not None:
        conds.append(_n.id == network_id)
    for key, col in (("network_id", _n.id), ("network_name", _n.name), ("project_id", _n.project_id),
                     ("tenant_id", _n.project_id)):
        if filters.get(key):
            conds.append(col.in_(filters[key]))
    if visible is not None:
        conds.append(visible)
    if conds:
        stmt = stmt.where(and_(*conds))
    out: dict[str, dict[str, Any]] = {}
    for net_id, net_name, project, sub_id, sub_name, cidr, version, pools, count in conn.execute(stmt):
        net = out.get(net_id)
        if net is None:
            net = out[net_id] = {"network_id": net_id, "network_name": net_name, "project_id": project,
                                 "tenant_id": project, "total_ips": 0, "used_ips": 0, "subnet_ip_availability": []}
        if sub_id is None:
            continue
        total = pool_size(pools) if pools else netaddr.IPNetwork(cidr).size  # no pools: the whole CIDR
        net["total_ips"] += total
        net["used_ips"] += int(count)
        net["subnet_ip_availability"].append({"subnet_id": sub_id, "subnet_name": sub_name, "cidr": cidr,
                                              "ip_version": version, "total_ips": total, "used_ips": int(count)})
    if versions:  # as Neutron: an IP version filter keeps only networks with such subnets
        return [n for n in out.values() if n["subnet_ip_availability"]]
    return list(out.values())
