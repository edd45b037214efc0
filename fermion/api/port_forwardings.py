"""/v2.0/floatingips/{floatingip_id}/port_forwardings[/{id}] (floating-ip-port-forwarding).

The floating IP is looked up as its own API would (invisible -> FloatingIPNotFound); the forwarding rules then
target the floating IP as the parent (`ext_parent:project_id`), as Neutron's sub-resource policies do. The
internal port must be one the caller may see (else PortNotFound)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fermion.api import body as bodies
from fermion.api import params
from fermion.api.controller import Controller
from fermion.api.subresource import SubResourceController
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.resources.port_forwarding import PORT_FORWARDING as RES
from fermion.services.floatingips import _sees_port
from fermion.services.registry import Services

VISIBLE = ("id", "internal_port_id", "internal_ip_address", "internal_port", "external_port", "internal_port_range",
           "external_port_range", "protocol", "description")


class PortForwardingController(SubResourceController):
    member, collection, visible = "port_forwarding", "port_forwardings", VISIBLE

    def __init__(self, services: Services, enforcer: Enforcer, floatingips: Controller) -> None:
        self.services = services
        self.service = services.port_forwardings
        self.enforcer = enforcer
        self.floatingips = floatingips
        self.db = services.db

    def _fip(self, conn: Connection, ctx: Context, fip_id: str, for_update: bool) -> dict[str, Any]:
        fip = self._parent(self.floatingips, conn, ctx, fip_id, for_update)
        if fip is None:
            raise NotFound(f"Floating IP {fip_id} could not be found.", type="FloatingIPNotFound")
        return fip

    def _port(self, conn: Connection, ctx: Context, port_id: str | None) -> dict[str, Any] | None:
        port = self.services.ports.collection.get(conn, port_id) if port_id else None
        if port is not None and not ctx.is_admin and not _sees_port(conn, port, ctx):
            return None
        return port

    def _allowed(self, action: str, fip: dict[str, Any], item: dict[str, Any], ctx: Context) -> bool:
        target = {**item, "ext_parent:project_id": fip["project_id"], "ext_parent:tenant_id": fip["project_id"],
                  "ext_parent_floatingip_id": fip["id"]}
        target["project_id"] = target["tenant_id"] = fip["project_id"]
        return self.enforcer.check(action, target, ctx)

    def _not_found(self, ident: str) -> NotFound:
        return NotFound(f"Port Forwarding {ident} could not be found.", type="PortForwardingNotFound")

    def _list(self, req: Request, ctx: Context, fip_id: str) -> Response:
        q = params.parse_list(RES, req.query, tags=False)
        fields = params.parse_fields(req.query)
        with self.db.read() as conn:
            fip = self._fip(conn, ctx, fip_id, False)
            items: list[dict[str, Any]] = []
            if self._allowed("get_floatingip_port_forwarding", fip, {}, ctx):
                items, _ = self.service.list(conn, fip_id, q)
        body: dict[str, Any] = {"port_forwardings": [self._shape(i, fields) for i in items]}
        if q.limit:
            body["port_forwardings_links"] = params.links(req.base_url, f"floatingips/{fip_id}/port_forwardings",
                                                          req.query, items, q)
        return Response(200, body)

    def _show(self, req: Request, ctx: Context, fip_id: str, ident: str) -> Response:
        with self.db.read() as conn:
            fip = self._fip(conn, ctx, fip_id, False)
            item = self.service.get(conn, fip_id, ident)
            if not self._allowed("get_floatingip_port_forwarding", fip, item, ctx):
                raise self._not_found(ident)
        return Response(200, {"port_forwarding": self._shape(item, params.parse_fields(req.query))})

    def _create(self, req: Request, ctx: Context, fip_id: str) -> Response:
        item = bodies.for_create(RES, self._member(req.json()), ctx)

        def work(conn: Connection) -> dict[str, Any]:
            fip = self._fip(conn, ctx, fip_id, True)
            if not self._allowed("create_floatingip_port_forwarding", fip, item, ctx):
                raise PolicyNotAuthorized("create_floatingip_port_forwarding")
            return self.service.create(conn, fip, item, self._port(conn, ctx, item["internal_port_id"]))

        return Response(201, {"port_forwarding": self._shape(self.db.write(work), None)})

    def _write(self, req: Request, ctx: Context, fip_id: str, ident: str) -> Response:
        changes = bodies.for_update(RES, self._member(req.json())) if req.method == "PUT" else {}
        action = "update_floatingip_port_forwarding" if req.method == "PUT" else "delete_floatingip_port_forwarding"

        def work(conn: Connection) -> dict[str, Any] | None:
            fip = self._fip(conn, ctx, fip_id, True)
            orig = self.service.get(conn, fip_id, ident, for_update=True)
            if not self._allowed("get_floatingip_port_forwarding", fip, orig, ctx):
                raise self._not_found(ident)
            if not self._allowed(action, fip, orig, ctx):
                raise PolicyNotAuthorized(action)
            if req.method == "DELETE":
                self.service.delete(conn, fip, orig)
                return None
            port = self._port(conn, ctx, changes.get("internal_port_id", orig["internal_port_id"]))
            return self.service.update(conn, fip, orig, changes, port)

        out = self.db.write(work)
        if out is None:
            return Response(204)
        return Response(200, {"port_forwarding": self._shape(out, None)})
