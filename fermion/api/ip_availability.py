"""/v2.0/network-ip-availabilities[/{network_id}] (network-ip-availability; admin only by default:
others get an empty list and 404s, as Neutron's)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NotFound
from fermion.policy import Enforcer
from fermion.policy import predicates as p
from fermion.services import ip_availability as ipa
from fermion.services.registry import Services
from fermion.validation import InvalidValue, integer

ACTION = "get_network_ip_availability"


def _encode(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # an IPv6 total beyond 64 bits: JSON numbers have no such limit
        return json.dumps(body, separators=(",", ":")).encode()


class IpAvailabilityController:
    def __init__(self, services: Services, enforcer: Enforcer) -> None:
        self.services = services
        self.enforcer = enforcer
        self.networks = services.networks.collection  # the rule is evaluated on the network, in SQL

    def _visible(self, ctx: Context) -> Any:
        pred = self.enforcer.residual(ACTION, ctx.roles)
        if isinstance(pred, p.Const):
            return None if pred.value else False
        sql = self.networks.visibility(pred, ctx.credentials())
        return False if sql is None else sql

    def handle(self, req: Request, ctx: Context, parts: list[str]) -> Response:
        if req.method != "GET":
            raise NotFound("The resource could not be found.")
        if len(parts) > 1:
            raise NotFound("The resource could not be found.")
        filters: dict[str, list[Any]] = {}
        fields = [v for k, v in req.query if k == "fields" and v]
        for key, value in req.query:
            if key == "fields":
                continue
            if key not in ipa.FILTERS:
                raise BadRequest(f"[{key}] is invalid attribute for filtering")
            if key == "ip_version":
                try:
                    filters.setdefault(key, []).append(integer()(value))
                except InvalidValue as err:
                    raise BadRequest(f"Invalid input for ip_version. Reason: {err}.") from None
            else:
                filters.setdefault(key, []).append(value)
        visible = self._visible(ctx)
        items: list[dict[str, Any]] = []
        if visible is not False:
            with self.services.db.read() as conn:
                items = ipa.availabilities(conn, filters, visible, parts[0] if parts else None)
        if fields:
            items = [{k: v for k, v in i.items() if k in fields} for i in items]
        if parts:
            if not items:
                raise NotFound(f"Network {parts[0]} could not be found.", type="NetworkNotFound")
            return Response(200, payload=_encode({"network_ip_availability": items[0]}))
        return Response(200, payload=_encode({"network_ip_availabilities": items}))
