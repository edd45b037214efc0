"""The parts of flavors and service-type that are not plain collections: a flavor's service profile bindings
(/flavors/{id}/service_profiles[/{profile_id}]), its next provider (/flavors/{id}/next_providers) and the
service providers (/service-providers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fermion.api import params
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.services.flavors import flavor_not_found, service_providers
from fermion.services.registry import Services
from fermion.validation import InvalidValue, uuid_str

PROVIDER_FILTERS = ("service_type", "name", "default")


class FlavorController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.db = services.db
        self.flavors = services.flavors
        self.enforcer = enforcer

    def _enforce(self, action: str, ctx: Context) -> None:
        if not self.enforcer.check(action, {"project_id": ctx.project_id, "tenant_id": ctx.project_id}, ctx):
            raise PolicyNotAuthorized(action)

    def _flavor(self, conn: Connection, flavor_id: str) -> None:
        if self.flavors.collection.get(conn, flavor_id) is None:
            raise flavor_not_found(flavor_id)

    def handle(self, req: Request, ctx: Context, flavor_id: str, rest: list[str]) -> Response:
        """rest: ["service_profiles"], ["service_profiles", profile_id] or ["next_providers"]."""
        method = req.method
        if rest == ["next_providers"] and method == "GET":
            self._enforce("get_flavor_next_provider", ctx)
            with self.db.read() as conn:
                return Response(200, {"next_providers": self.flavors.next_providers(conn, flavor_id)})
        if not rest or rest[0] != "service_profiles" or len(rest) > 2:
            raise NotFound("The resource could not be found.")
        if len(rest) == 1 and method == "POST":
            self._enforce("create_flavor_service_profile", ctx)
            profile_id = _profile_id(req.json())

            def bind(conn: Connection) -> None:
                self._flavor(conn, flavor_id)
                self.flavors.bind(conn, flavor_id, profile_id)

            self.db.write(bind)
            return Response(201, {"service_profile": {"id": profile_id}})
        if len(rest) == 2 and method == "GET":
            self._enforce("get_flavor_service_profile", ctx)
            with self.db.read() as conn:
                self._flavor(conn, flavor_id)
                return Response(200, {"service_profile": self.flavors.binding(conn, flavor_id, rest[1])})
        if len(rest) == 2 and method == "DELETE":
            self._enforce("delete_flavor_service_profile", ctx)

            def unbind(conn: Connection) -> None:
                self._flavor(conn, flavor_id)
                self.flavors.unbind(conn, flavor_id, rest[1])

            self.db.write(unbind)
            return Response(204)
        raise NotFound("The resource could not be found.")

    def providers(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        if rest or req.method != "GET":
            raise NotFound("The resource could not be found.")
        self._enforce("get_service_provider", ctx)
        wanted: dict[str, list[str]] = {}
        for key, value in req.query:
            if key in PROVIDER_FILTERS:
                wanted.setdefault(key, []).append(value.lower() if key == "default" else value)
        fields = params.parse_fields(req.query)
        out = []
        for provider in service_providers():
            text = {k: str(v).lower() if k == "default" else str(v) for k, v in provider.items()}
            if all(text[k] in values for k, values in wanted.items()):
                out.append({k: v for k, v in provider.items() if not fields or k in fields})
        return Response(200, {"service_providers": out})


def _profile_id(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("service_profile"), dict) \
            or "id" not in body["service_profile"]:
        raise BadRequest("Unable to find 'service_profile' in request body")
    try:
        return uuid_str(body["service_profile"]["id"])
    except InvalidValue as err:
        raise BadRequest(f"Invalid input for id. Reason: {err}.") from None
