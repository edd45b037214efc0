"""What the sub-resources of one parent have in common (routers/{id}/conntrack_helpers,
floatingips/{id}/port_forwardings): the dispatch of the four verbs, the visible keys and the member body."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fermion.api.controller import Controller
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NotFound


class NeutronMethodNotAllowed(BadRequest):
    status = 405
    type = "HTTPMethodNotAllowed"


class SubResourceController:
    """Subclasses name their member and collection, the keys they show, and implement the four verbs."""

    member = ""
    collection = ""
    visible: tuple[str, ...] = ()

    def handle(self, req: Request, ctx: Context, parent_id: str, rest: list[str]) -> Response:
        if len(rest) > 1:
            raise NotFound("The resource could not be found.")
        ident = rest[0] if rest else None
        method = req.method
        if ident is None and method == "GET":
            return self._list(req, ctx, parent_id)
        if ident is None and method == "POST":
            return self._create(req, ctx, parent_id)
        if ident is not None and method == "GET":
            return self._show(req, ctx, parent_id, ident)
        if ident is not None and method in ("PUT", "DELETE"):
            return self._write(req, ctx, parent_id, ident)
        raise NeutronMethodNotAllowed(f"The method {method} is not allowed on {self.collection}")

    def _list(self, req: Request, ctx: Context, parent_id: str) -> Response:
        raise NotImplementedError

    def _create(self, req: Request, ctx: Context, parent_id: str) -> Response:
        raise NotImplementedError

    def _show(self, req: Request, ctx: Context, parent_id: str, ident: str) -> Response:
        raise NotImplementedError

    def _write(self, req: Request, ctx: Context, parent_id: str, ident: str) -> Response:
        raise NotImplementedError

    @staticmethod
    def _parent(parents: Controller, conn: Connection, ctx: Context, ident: str,
                for_update: bool) -> dict[str, Any] | None:
        """The parent as its own API shows it to the caller (None: not there, or not visible)."""
        visible, pred = parents._visible(ctx)
        found = parents.coll.get(conn, ident, visible, for_update=for_update)
        if found is not None and visible is None and not pred.evaluate(found, ctx.credentials()):
            return None
        return found

    def _shape(self, item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        keys = [k for k in fields if k in self.visible] if fields else self.visible
        return {k: item[k] for k in keys}

    def _member(self, body: Any) -> Any:
        if not isinstance(body, dict) or self.member not in body:
            raise BadRequest(f"Unable to find '{self.member}' in request body")
        return body[self.member]
