"""/v2.0/ports/{port_id}/bindings (binding-extended): list, show, create, update, activate and delete a port's
bindings, validated against fermion/resources/port_binding.py.

Policy as Neutron's: every action is for admins (and the service user, Nova); a caller the policy refuses
sees an empty list, and a missing binding, when it may not even read them.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import Connection

from fermion.api.controller import Controller
from fermion.api.params import parse_fields
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NeutronError, NotFound
from fermion.policy import PolicyNotAuthorized
from fermion.resources import port_binding as pb
from fermion.resources.base import UNSET
from fermion.validation import InvalidValue

_PAGING = ("fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse")


def _body(req: Request, action: str) -> dict[str, Any]:
    """The binding's attributes of a POST or PUT body, converted; for a POST, with the defaults."""
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get(pb.MEMBER), dict):
        raise BadRequest(f"Unable to find '{pb.MEMBER}' in request body")
    raw = body[pb.MEMBER]
    unknown = sorted(k for k in raw if k not in pb.BY_NAME)
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    out: dict[str, Any] = {}
    for attr in pb.ATTRIBUTES:
        # host may be sent on an update too (Neutron's definition allows it); the URL names the binding
        writable = attr.post if action == "POST" else attr.put or attr.name == "host"
        if attr.name in raw and not writable:
            raise BadRequest(f"Attribute '{attr.name}' not allowed in {action}")
        if attr.name in raw:
            try:
                out[attr.name] = attr.convert(raw[attr.name]) if attr.convert else raw[attr.name]
            except InvalidValue as err:
                raise BadRequest(f"Invalid input for {attr.name}. Reason: {err}.") from None
        elif action == "POST" and attr.post:
            if attr.default is UNSET:
                raise BadRequest(f"Failed to parse request. Required attribute '{attr.name}' not specified")
            out[attr.name] = copy.deepcopy(attr.default)
    return out


class BindingController:
    def __init__(self, ports: Controller) -> None:
        self.ports = ports  # the ports' controller: port visibility and the policy enforcer
        self.service = ports.services.port_bindings
        self.db = ports.services.db

    def handle(self, req: Request, ctx: Context, port_id: str, rest: list[str]) -> Response:
        """rest: what follows /ports/{id}/bindings."""
        method = req.method
        if not rest:
            if method == "GET":
                return self.list(req, ctx, port_id)
            if method == "POST":
                return self.create(req, ctx, port_id)
        elif len(rest) == 1:
            if method == "GET":
                return self.show(req, ctx, port_id, rest[0])
            if method == "DELETE":
                return self.delete(ctx, port_id, rest[0])
            if method == "PUT":
                return self.update(req, ctx, port_id, rest[0])
        elif len(rest) == 2 and rest[1] == "activate":
            if method == "PUT":
                return self.activate(ctx, port_id, rest[0])
        else:
            raise NotFound("The resource could not be found.")
        raise NeutronError(f"The method {method} is not allowed on port bindings", type="HTTPMethodNotAllowed",
                           status=405)

    # ---------------------------------------------------------------- helpers
    def _port(self, conn: Connection, ctx: Context, port_id: str, write: bool = False) -> dict[str, Any]:
        if write:
            return self.ports._load_for_write(conn, ctx, port_id)
        visible, pred = self.ports._visible(ctx)
        port = self.ports.coll.get(conn, port_id, visible)
        if port is not None and visible is None and not pred.evaluate(port, ctx.credentials()):
            port = None
        if port is None:
            raise self.ports._not_found(port_id)
        return port

    def _allowed(self, action: str, port: dict[str, Any], ctx: Context) -> bool:
        target = {"project_id": port["project_id"], "tenant_id": port["project_id"]}
        return self.ports.enforcer.check(action, target, ctx)

    # ---------------------------------------------------------------- handlers
    def list(self, req: Request, ctx: Context, port_id: str) -> Response:
        filters: dict[str, list[str]] = {}
        for key, value in req.query:
            if key in pb.FILTERS:
                filters.setdefault(key, []).append(value)
            elif key not in _PAGING:
                raise BadRequest(f"[{key}] is invalid attribute for filtering")
        with self.db.read() as conn:
            port = self._port(conn, ctx, port_id)
            items = self.service.list(conn, port)
        if not self._allowed("get_port_binding", port, ctx):
            items = []
        items = [b for b in items if all(b[k] in v for k, v in filters.items())]
        fields = parse_fields(req.query)
        if fields:
            items = [{k: b[k] for k in fields if k in b} for b in items]
        return Response(200, {"bindings": items})

    def show(self, req: Request, ctx: Context, port_id: str, host: str) -> Response:
        with self.db.read() as conn:
            port = self._port(conn, ctx, port_id)
            item = self.service.show(conn, port, host)
        if not self._allowed("get_port_binding", port, ctx):
            raise NotFound("The resource could not be found.")
        fields = parse_fields(req.query)
        return Response(200, {"binding": {k: item[k] for k in fields if k in item} if fields else item})

    def create(self, req: Request, ctx: Context, port_id: str) -> Response:
        attrs = _body(req, "POST")

        def work(conn: Connection) -> dict[str, Any]:
            port = self._port(conn, ctx, port_id, write=True)
            if not self._allowed("create_port_binding", port, ctx):
                raise PolicyNotAuthorized("create_port_binding")
            return self.service.create(conn, port, attrs["host"], attrs["vnic_type"], attrs["profile"])

        return Response(201, {"binding": self.db.write(work)})

    def update(self, req: Request, ctx: Context, port_id: str, host: str) -> Response:
        attrs = _body(req, "PUT")

        def work(conn: Connection) -> dict[str, Any]:
            port = self._port(conn, ctx, port_id, write=True)
            if not self._allowed("update_port_binding", port, ctx):
                raise PolicyNotAuthorized("update_port_binding")
            return self.service.update(conn, port, host, attrs.get("vnic_type"), attrs.get("profile"))

        return Response(200, {"binding": self.db.write(work)})

    def activate(self, ctx: Context, port_id: str, host: str) -> Response:
        def work(conn: Connection) -> dict[str, Any]:
            port = self._port(conn, ctx, port_id, write=True)
            if not self._allowed("activate", port, ctx):
                raise PolicyNotAuthorized("activate")
            return self.service.activate(conn, port, host)

        return Response(200, {"binding": self.db.write(work)})

    def delete(self, ctx: Context, port_id: str, host: str) -> Response:
        def work(conn: Connection) -> None:
            port = self._port(conn, ctx, port_id, write=True)
            if not self._allowed("delete_port_binding", port, ctx):
                if not self._allowed("get_port_binding", port, ctx):
                    raise NotFound("The resource could not be found.")  # as Neutron: not even visible
                raise PolicyNotAuthorized("delete_port_binding")
            self.service.delete(conn, port, host)

        self.db.write(work)
        return Response(204)
