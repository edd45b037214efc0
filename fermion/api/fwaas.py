"""/v2.0/fwaas/{firewall_groups,firewall_policies,firewall_rules}[/{id}[/tags[/{tag}]]] and a policy's
PUT .../insert_rule and .../remove_rule (fwaas_v2). The collections are served by the generic controllers;
the two actions answer the policy itself, unwrapped, as Neutron does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fermion.api.controller import Controller
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import NeutronError, NotFound
from fermion.resources.fwaas import FIREWALL_GROUP, FIREWALL_POLICY, FIREWALL_RULE, POLICY_ACTIONS, PREFIX
from fermion.services.registry import Services

COLLECTIONS = tuple(r.collection for r in (FIREWALL_GROUP, FIREWALL_POLICY, FIREWALL_RULE))


class FwaasController:
    def __init__(self, services: Services, controllers: dict[str, Controller]) -> None:
        self.services = services
        self.controllers = {c: controllers[f"{PREFIX}/{c}"] for c in COLLECTIONS}

    def handle(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        """rest: the path after /v2.0/fwaas."""
        ctl = self.controllers.get(rest[0]) if rest else None
        if ctl is None or len(rest) > 4:
            raise NotFound("The resource could not be found.")
        method = req.method
        if len(rest) == 1:
            if method == "GET":
                return ctl.list(req, ctx)
            if method == "POST":
                return ctl.create(req, ctx)
            raise _not_allowed(method, rest[0])
        ident = rest[1]
        if len(rest) == 2:
            if method == "GET":
                return ctl.show(req, ctx, ident)
            if method == "PUT":
                return ctl.update(req, ctx, ident)
            if method == "DELETE":
                return ctl.delete(req, ctx, ident)
            raise _not_allowed(method, f"this {ctl.res.member}")
        if rest[2] == "tags":
            return ctl.tags(req, ctx, ident, rest[3] if len(rest) == 4 else None)
        if len(rest) == 3 and ctl.res is FIREWALL_POLICY and rest[2] in POLICY_ACTIONS:
            if method != "PUT":
                raise _not_allowed(method, rest[2])
            return self._policy_action(ctl, req, ctx, ident, rest[2])
        raise NotFound("The resource could not be found.")

    def _policy_action(self, ctl: Controller, req: Request, ctx: Context, ident: str, name: str) -> Response:
        body = req.json()
        policies = self.services.fwaas.policies

        def work(conn: Connection) -> dict[str, Any]:
            orig = ctl._load_for_write(conn, ctx, ident)
            ctl._enforce(name, ctl._target(conn, orig, ctx), ctx)
            getattr(policies, name)(conn, orig, body, ctx)
            item = ctl.coll.get(conn, ident)
            assert item is not None
            return item

        item = self.services.db.write(work)
        return Response(200, ctl.shape([item], ctx, None)[0])


def _not_allowed(method: str, what: str) -> NeutronError:
    return NeutronError(f"The method {method} is not allowed on {what}", type="HTTPMethodNotAllowed", status=405)
