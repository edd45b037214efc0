"""/v2.0/quotas: limits per project, defaults and usage details."""

from __future__ import annotations

from typing import Any

from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.services.registry import Services
from fermion.validation import InvalidValue, boolean


class QuotaController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.services = services
        self.quotas = services.quotas
        self.enforcer = enforcer

    def _enforce(self, action: str, project_id: str, ctx: Context) -> None:
        if not self.enforcer.check(action, {"project_id": project_id, "tenant_id": project_id}, ctx):
            raise PolicyNotAuthorized(action)

    def handle(self, req: Request, ctx: Context, parts: list[str]) -> Response:
        db = self.services.db
        if not parts:
            if req.method != "GET":
                raise NotFound("The resource could not be found.")
            if not ctx.is_admin:
                raise PolicyNotAuthorized("get_quota")
            with db.read() as conn:
                out = []
                for project in self.quotas.projects_with_overrides(conn):
                    out.append({**self.quotas.limits(conn, project), "project_id": project, "tenant_id": project})
            return Response(200, {"quotas": out})
        project = parts[0]
        if project in ("tenant", "project") and len(parts) == 1 and req.method == "GET":
            return Response(200, {project: {f"{project}_id": ctx.project_id}})
        sub = parts[1] if len(parts) > 1 else None
        if len(parts) > 2 or sub not in (None, "default", "details"):
            raise NotFound("The resource could not be found.")
        if req.method == "GET":
            self._enforce("get_quota", project, ctx)
            with db.read() as conn:
                if sub == "default":
                    return Response(200, {"quota": dict(self.quotas.defaults)})
                if sub == "details":
                    return Response(200, {"quota": self.quotas.details(conn, project)})
                return Response(200, {"quota": self.quotas.limits(conn, project)})
        if sub is not None:
            raise NotFound("The resource could not be found.")
        if req.method == "PUT":
            self._enforce("update_quota", project, ctx)
            values, check = self._parse(req.json())
            return Response(200, {"quota": db.write(lambda conn: self._set(conn, project, values, check))})
        if req.method == "DELETE":
            self._enforce("delete_quota", project, ctx)
            db.write(lambda conn: self.quotas.reset(conn, project))
            return Response(204)
        raise NotFound("The resource could not be found.")

    def _set(self, conn: Any, project: str, values: dict[str, int], check: bool) -> dict[str, int]:
        if check:  # quota-check-limit: a limit below what the project already uses is refused
            used = self.quotas.used(conn, project)
            for key, limit in values.items():
                if 0 <= limit < used[key]:
                    raise BadRequest(f"Quota limit {limit} for {key} must be greater than or equal to already "
                                     f"used {used[key]}")
        self.quotas.set_limits(conn, project, values)
        return self.quotas.limits(conn, project)

    def _parse(self, body: Any) -> tuple[dict[str, int], bool]:
        """The limits and whether to check them against usage. As Neutron's quota-check-limit: "check_limit"
        asks for the check; "force" (no check, also the default) is accepted."""
        if not isinstance(body, dict) or not isinstance(body.get("quota"), dict):
            raise BadRequest("Unable to find 'quota' in request body")
        flags = {}
        for flag in ("force", "check_limit"):
            if flag in body["quota"]:
                try:
                    flags[flag] = boolean(body["quota"][flag])
                except InvalidValue as err:
                    raise BadRequest(f"Invalid input for {flag}. Reason: {err}.") from None
        out = {}
        for key, value in body["quota"].items():
            if key in flags:
                continue
            if key not in self.quotas.defaults:
                raise BadRequest(f"Unrecognized attribute(s) '{key}'")
            if isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < -1 or value > 2**31 - 1:
                raise BadRequest(f"Invalid input for {key}. Reason: '{value}' must be an integer -1 or greater.")
            out[key] = value
        return out, flags.get("check_limit", False)
