"""/v2.0/routers/{router_id}/conntrack_helpers[/{id}] (l3-conntrack-helper).

The router is looked up as its own API would (invisible -> RouterNotFound); the helper rules then target the
router as the parent (`ext_parent:project_id`), as Neutron's sub-resource policies do."""

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
from fermion.resources.conntrack_helper import CONNTRACK_HELPER as RES
from fermion.services.registry import Services

VISIBLE = ("id", "protocol", "port", "helper")


class ConntrackHelperController(SubResourceController):
    member, collection, visible = "conntrack_helper", "conntrack_helpers", VISIBLE

    def __init__(self, services: Services, enforcer: Enforcer, routers: Controller) -> None:
        self.services = services
        self.service = services.conntrack_helpers
        self.enforcer = enforcer
        self.routers = routers
        self.db = services.db

    def _router(self, conn: Connection, ctx: Context, router_id: str, for_update: bool) -> dict[str, Any]:
        router = self._parent(self.routers, conn, ctx, router_id, for_update)
        if router is None:
            raise NotFound(f"Router {router_id} could not be found.", type="RouterNotFound")
        return router

    def _allowed(self, action: str, router: dict[str, Any], item: dict[str, Any], ctx: Context) -> bool:
        target = {**item, "ext_parent:project_id": router["project_id"],
                  "ext_parent:tenant_id": router["project_id"], "ext_parent_router_id": router["id"]}
        target.setdefault("project_id", router["project_id"])
        target.setdefault("tenant_id", target["project_id"])
        return self.enforcer.check(action, target, ctx)

    def _list(self, req: Request, ctx: Context, router_id: str) -> Response:
        q = params.parse_list(RES, req.query, tags=False)
        fields = params.parse_fields(req.query)
        with self.db.read() as conn:
            router = self._router(conn, ctx, router_id, False)
            items: list[dict[str, Any]] = []
            more = False
            if self._allowed("get_router_conntrack_helper", router, {}, ctx):
                items, more = self.service.list(conn, router_id, q)
        body: dict[str, Any] = {"conntrack_helpers": [self._shape(i, fields) for i in items]}
        if q.limit:
            body["conntrack_helpers_links"] = params.links(req.base_url, f"routers/{router_id}/conntrack_helpers",
                                                           req.query, items, q)
        return Response(200, body)

    def _show(self, req: Request, ctx: Context, router_id: str, ident: str) -> Response:
        with self.db.read() as conn:
            router = self._router(conn, ctx, router_id, False)
            item = self.service.get(conn, router_id, ident)
            if not self._allowed("get_router_conntrack_helper", router, item, ctx):
                raise NotFound(f"Conntrack Helper {ident} could not be found.", type="ConntrackHelperNotFound")
        return Response(200, {"conntrack_helper": self._shape(item, params.parse_fields(req.query))})

    def _create(self, req: Request, ctx: Context, router_id: str) -> Response:
        raw = self._member(req.json())
        item = bodies.for_create(RES, raw, ctx)

        def work(conn: Connection) -> dict[str, Any]:
            router = self._router(conn, ctx, router_id, True)
            if not self._allowed("create_router_conntrack_helper", router, item, ctx):
                raise PolicyNotAuthorized("create_router_conntrack_helper")
            return self.service.create(conn, router, item)

        return Response(201, {"conntrack_helper": self._shape(self.db.write(work), None)})

    def _write(self, req: Request, ctx: Context, router_id: str, ident: str) -> Response:
        changes = bodies.for_update(RES, self._member(req.json())) if req.method == "PUT" else {}
        action = "update_router_conntrack_helper" if req.method == "PUT" else "delete_router_conntrack_helper"

        def work(conn: Connection) -> dict[str, Any] | None:
            router = self._router(conn, ctx, router_id, True)
            orig = self.service.get(conn, router_id, ident, for_update=True)
            if not self._allowed("get_router_conntrack_helper", router, orig, ctx):
                raise NotFound(f"Conntrack Helper {ident} could not be found.", type="ConntrackHelperNotFound")
            if not self._allowed(action, router, orig, ctx):
                raise PolicyNotAuthorized(action)
            if req.method == "DELETE":
                self.service.delete(conn, router, orig)
                return None
            return self.service.update(conn, router, orig, changes)

        out = self.db.write(work)
        if out is None:
            return Response(204)
        return Response(200, {"conntrack_helper": self._shape(out, None)})
