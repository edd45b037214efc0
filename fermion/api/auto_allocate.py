"""/v2.0/auto-allocated-topology/{project_id} (auto-allocated-topology): GET builds (or finds) the project's
topology, `?fields=dry-run` only checks that it could; DELETE tears it down. `None` names the caller's
project, as Neutron accepts from clients that send no project."""

from __future__ import annotations

from sqlalchemy import Connection

from fermion.api import params
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.services.auto_allocate import DRY_RUN
from fermion.services.registry import Services


class AutoAllocateController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.db = services.db
        self.allocator = services.auto_allocator
        self.enforcer = enforcer

    def handle(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        if len(rest) != 1 or req.method not in ("GET", "DELETE"):
            raise NotFound("The resource could not be found.")
        project = rest[0]
        if project == "None":
            project = ctx.project_id or ""
        action = "get_auto_allocated_topology" if req.method == "GET" else "delete_auto_allocated_topology"
        if not self.enforcer.check(action, {"project_id": project, "tenant_id": project}, ctx):
            raise PolicyNotAuthorized(action)
        if req.method == "DELETE":
            self.db.write(lambda conn: self.allocator.tear_down(conn, project, ctx))
            return Response(204)
        fields = params.parse_fields(req.query) or []
        if DRY_RUN in fields:
            with self.db.read() as conn:
                return Response(200, {"auto_allocated_topology": self.allocator.check(conn, project)})
        if fields:
            raise BadRequest("Bad auto_allocate request: Unrecognized field.", type="BadRequest")

        def work(conn: Connection) -> dict[str, str]:
            return self.allocator.get_or_build(conn, project, ctx)

        return Response(200, {"auto_allocated_topology": self.db.write(work)})
