"""/v2.0/floatingip_pools (floatingip-pools): the subnets floating IPs can come from.

As Neutron: every IPv4 subnet of every external network, whoever owns it (external networks are usable by
all), reported with the caller's project as project_id; filters are ignored, `fields` is honoured."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fermion.api import params
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.db import models as m
from fermion.errors import NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.resources.floatingip_pool import FIELDS
from fermion.services.registry import Services


class FloatingIpPoolController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.db = services.db
        self.enforcer = enforcer

    def handle(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        if rest or req.method != "GET":
            raise NotFound("The resource could not be found.")
        target = {"project_id": ctx.project_id, "tenant_id": ctx.project_id}
        if not self.enforcer.check("get_floatingip_pool", target, ctx):
            raise PolicyNotAuthorized("get_floatingip_pool")
        s, n = m.subnets.c, m.networks.c
        with self.db.read() as conn:
            rows = conn.execute(select(s.id, s.name, s.network_id, s.cidr)
                                .join(m.networks, n.id == s.network_id)
                                .where(n.router_external.is_(True), s.ip_version == 4).order_by(s.id)).all()
        fields = [f for f in params.parse_fields(req.query) or FIELDS if f in FIELDS]
        pools: list[dict[str, Any]] = []
        for r in rows:
            pool = {"subnet_id": r.id, "subnet_name": r.name, "network_id": r.network_id, "cidr": r.cidr,
                    "project_id": ctx.project_id, "tenant_id": ctx.project_id}
            pools.append({k: pool[k] for k in fields})
        return Response(200, {"floatingip_pools": pools})
