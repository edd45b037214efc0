"""Generic collection/member handlers built from the catalog (list, show, create, update, delete, tags)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from fermion import memory
from fermion.api import body as bodies
from fermion.api import params
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.errors import BadRequest, NotFound, PreconditionFailed
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.policy import predicates as p
from fermion.resources.base import AUTO, UNSET, Resource
from fermion.services import common, rbac_access
from fermion.services.changes import Changed
from fermion.services.registry import Services
from fermion.validation import InvalidValue, tag_value

_IF_MATCH = re.compile(r"^\s*revision_number\s*=\s*([-+]?\d+)\s*$")
_n = m.networks.c
_NETWORK_BRIEF = Prepared(select(_n.id, _n.project_id, _n.shared, _n.port_security_enabled)
                          .where(_n.id == bindparam("b_id")))


def _check_revision(orig: dict[str, Any], expect: int | None) -> None:
    """A stale If-Match is a 412 before anything else is checked (the row is locked: it cannot change now)."""
    if expect is not None and orig["revision_number"] != expect:
        raise PreconditionFailed(f"Constrained to revision number {expect} but the resource has changed.")


class Controller:
    def __init__(self, res: Resource, services: Services, enforcer: Enforcer) -> None:
        self.res = res
        self.services = services
        self.service = services.by_collection(res.collection)
        self.coll = self.service.collection
        self.enforcer = enforcer
        self.db = services.db
        self._hidden: dict[frozenset[str], tuple[frozenset[str], dict[str, p.Pred]]] = {}

    def _changed(self, conn: Connection, item: dict[str, Any]) -> None:
        """Tell the console's live feed (services.changes) once this write commits."""
        if "id" in item:
            common.emit(conn, Changed(self.res.member, item["id"], item.get("project_id")))

    # ---------------------------------------------------------------- policy helpers
    def _not_found(self, ident: str) -> NotFound:
        if self.res.member == "rbac_policy":  # Neutron names the type it could not determine
            return NotFound(f"RBAC policy of type None with ID {ident} not found", type=self.res.not_found)
        return NotFound(f"{self.res.id_label} {ident} could not be found.", type=self.res.not_found)

    def _visible(self, ctx: Context) -> tuple[Any, p.Pred]:
        pred = self.enforcer.residual(f"get_{self.res.member}", ctx.roles)
        return self.coll.visibility(pred, ctx.credentials()), pred

    def _hidden_attrs(self, ctx: Context) -> tuple[frozenset[str], dict[str, p.Pred]]:
        """Attributes the caller's roles may never see, and those that depend on the item."""
        found = self._hidden.get(ctx.roles)
        if found is None:
            never: set[str] = set()
            per_item: dict[str, p.Pred] = {}
            for attr in self.res.attributes:
                action = f"get_{self.res.member}:{attr.name}"
                if not attr.visible:
                    never.add(attr.name)
                elif self.enforcer.has_rule(action):
                    pred = self.enforcer.residual(action, ctx.roles)
                    if isinstance(pred, p.Const):
                        if not pred.value:
                            never.add(attr.name)
                    else:
                        per_item[attr.name] = pred
            found = (frozenset(never), per_item)
            self._hidden[ctx.roles] = found
        return found

    def shape(self, items: list[dict[str, Any]], ctx: Context, fields: list[str] | None) -> list[dict[str, Any]]:
        """The items as the caller may see them. Items are this request's own dicts: hidden attributes are
        popped in place (cheaper than a copy of every item of a large list)."""
        never, per_item = self._hidden_attrs(ctx)
        if not never and not per_item and not fields:
            return items
        creds = ctx.credentials()
        for item in items:
            hidden: frozenset[str] | set[str] = never
            if per_item:
                extra = {name for name, pred in per_item.items() if not pred.evaluate(item, creds)}
                if extra:
                    hidden = never | extra
            if fields:
                kept = {k: item[k] for k in fields if k in item and k not in hidden}
                item.clear()
                item.update(kept)
            else:
                for name in hidden:
                    item.pop(name, None)
        return items

    def _target(self, conn: Connection, item: dict[str, Any], ctx: Context | None = None) -> dict[str, Any]:
        target = dict(item)
        if "network_id" in item:  # its network's owner, and sharing as the caller sees it, in one read
            found = rbac_access.network_sharing(conn, item["network_id"], ctx.project_id if ctx is not None else None)
            if found is not None:
                target["network:project_id"] = target["network:tenant_id"] = found[0]
                target.setdefault("shared", found[1])
        if "security_group_id" in item:  # a rule: its group's owner manages it (rule sg_owner)
            owner = conn.execute(select(m.securitygroups.c.project_id)
                                 .where(m.securitygroups.c.id == item["security_group_id"])).scalar()
            if owner is not None:
                target["security_group:project_id"] = target["security_group:tenant_id"] = owner
        return target

    def _update_target(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
                       ctx: Context) -> dict[str, Any]:
        """The object an update's policy checks see, built as Neutron builds it: the resource as the caller reads
        it (``shared`` through RBAC), less the attributes Neutron does not load for the checks, with the changes."""
        item = dict(orig)
        self.coll.for_caller(conn, [item], ctx.project_id)
        for attr in self.res.attributes:
            if not attr.prefetch:
                item.pop(attr.name, None)
        return self._target(conn, {**item, **changes}, ctx)

    @staticmethod
    def _network_brief(conn: Connection, network_id: str, ctx: Context) -> dict[str, Any] | None:
        """The network a new port goes on; shared as the caller sees it (granted to all or to its project)."""
        found = _NETWORK_BRIEF.dicts(conn, {"b_id": network_id})
        if not found:
            return None
        net = found[0]
        if not net["shared"] and ctx.project_id and net["project_id"] != ctx.project_id:
            net["shared"] = rbac_access.has_access(conn, "network", network_id, ctx.project_id)
        return net

    def _enforce(self, action: str, target: dict[str, Any], ctx: Context) -> None:
        if not self.enforcer.check(action, target, ctx):
            raise PolicyNotAuthorized(action)

    def _enforce_attrs(self, verb: str, raw: dict[str, Any], target: dict[str, Any], ctx: Context) -> None:
        for key, value in raw.items():
            action = f"{verb}_{self.res.member}:{key}"
            default = self.res.by_name[key].default
            if verb == "create" and default is not UNSET and default is not AUTO and target.get(key) == default:
                continue  # as Neutron: on create, an attribute set to its default is not policed
            if self.enforcer.has_rule(action):
                self._enforce(action, target, ctx)
            if key == "fixed_ips" and isinstance(value, list):
                for sub in ("ip_address", "subnet_id"):
                    sub_action = f"{action}:{sub}"
                    if any(isinstance(f, dict) and sub in f for f in value) and self.enforcer.has_rule(sub_action):
                        self._enforce(sub_action, target, ctx)
            elif isinstance(value, dict):  # external_gateway_info:enable_snat and the like
                for sub in value:
                    sub_action = f"{action}:{sub}"
                    if self.enforcer.has_rule(sub_action):
                        self._enforce(sub_action, target, ctx)

    @staticmethod
    def _if_match(req: Request) -> int | None:
        header = req.headers.get("if-match")
        if header is None:
            return None
        match = _IF_MATCH.match(header)
        if match is None:
            raise BadRequest("If-Match header must have the form 'revision_number=N'")
        revision = int(match.group(1))
        # any integer is a constraint, as in Neutron (a client's "current - 1" may be -1); one no row can
        # have never matches: -1 keeps it out of SQL -> 412
        return revision if 0 <= revision < 2**63 else -1

    # ---------------------------------------------------------------- handlers
    def list(self, req: Request, ctx: Context) -> Response:
        q = params.parse_list(self.res, req.query, tags=self.res.tags)
        fields = params.parse_fields(req.query)
        prepare = getattr(self.service, "before_list", None)
        if prepare is not None:  # e.g. the project's default security group, created on first use
            prepare(self.db, ctx, q)
        q.project_id = ctx.project_id
        visible, pred = self._visible(ctx)
        post = None
        if visible is None:
            creds = ctx.credentials()
            post = lambda item: pred.evaluate(item, creds)  # noqa: E731 - rare: rules SQL cannot express
        # encoded here, in the worker thread, while the collector is paused (see memory.gc_paused)
        with memory.gc_paused():
            with self.db.read() as conn:
                items, more = self.coll.page(conn, q, visible, post)
                self.coll.for_caller(conn, items, ctx.project_id)
            body: dict[str, Any] = {self.res.collection: self.shape(items, ctx, fields)}
            if q.limit:
                body[f"{self.res.collection}_links"] = params.links(req.base_url, self.res.path, req.query,
                                                                     items, q)
            payload = orjson.dumps(body)
            del body, items  # freed before the collector resumes, so it never walks them
        return Response(200, payload=payload)

    def show(self, req: Request, ctx: Context, ident: str) -> Response:
        visible, pred = self._visible(ctx)
        with self.db.read() as conn:
            item = self.coll.get(conn, ident, visible)
            if item is not None:
                self.coll.for_caller(conn, [item], ctx.project_id)
            if item is not None and visible is None and not pred.evaluate(self._target(conn, item, ctx),
                                                                          ctx.credentials()):
                item = None
        if item is None:
            raise self._not_found(ident)
        return Response(200, {self.res.member: self.shape([item], ctx, params.parse_fields(req.query))[0]})

    def create(self, req: Request, ctx: Context) -> Response:
        raws, bulk = bodies.items_of(req.json(), self.res)
        items = [bodies.for_create(self.res, raw, ctx) for raw in raws]

        def work(conn: Connection) -> list[dict[str, Any]]:
            networks: dict[str, dict[str, Any]] = {}
            for raw, item in zip(raws, items, strict=True):
                if "network_id" in item:
                    net = networks.get(item["network_id"])
                    if net is None:
                        net = self._network_brief(conn, item["network_id"], ctx)
                        if net is None or not (ctx.is_admin or net["shared"]
                                               or net["project_id"] == item["project_id"]):
                            # hide other projects' private networks (Neutron answers 404 too)
                            raise NotFound(f"Network {item['network_id']} could not be found.",
                                           type="NetworkNotFound")
                        networks[net["id"]] = net
                    target = {"shared": net["shared"], **item, "network:project_id": net["project_id"],
                              "network:tenant_id": net["project_id"]}
                else:
                    target = self._target(conn, item, ctx)
                self._enforce(f"create_{self.res.member}", target, ctx)
                self._enforce_attrs("create", raw, target, ctx)
            if self.res.member == "port":
                rows = self.services.ports.create(conn, items, networks, ctx)
            else:
                rows = self.service.create(conn, items, ctx)
            # (no for_caller: nothing is shared with anyone but by the create's own flags yet)
            fresh = self.coll.fresh(conn, rows)
            for row in fresh:
                self._changed(conn, row)
            return fresh

        created = self.db.write(work)
        shaped = self.shape(created, ctx, None)
        if bulk:
            return Response(201, {self.res.collection: shaped})
        return Response(201, {self.res.member: shaped[0]})

    def update(self, req: Request, ctx: Context, ident: str) -> Response:
        body = req.json()
        if not isinstance(body, dict) or self.res.member not in body:
            raise BadRequest(f"Unable to find '{self.res.member}' in request body")
        raw = body[self.res.member]
        changes = bodies.for_update(self.res, raw)
        expect = self._if_match(req)

        def work(conn: Connection) -> dict[str, Any]:
            orig = self._load_for_write(conn, ctx, ident)
            target = self._update_target(conn, orig, changes, ctx)
            try:
                self._enforce(f"update_{self.res.member}", target, ctx)
                self._enforce_attrs("update", raw, target, ctx)
            except PolicyNotAuthorized:
                # as Neutron: a refused update of what the caller may not read, in the object the check saw,
                # is answered as if the resource did not exist
                if not self.enforcer.check(f"get_{self.res.member}", target, ctx):
                    raise NotFound("The resource could not be found.") from None
                raise
            _check_revision(orig, expect)
            # a floating IP update without port_id disassociates it, as in Neutron
            if changes or expect is not None or self.res.member == "floatingip":
                self.service.update(conn, orig, dict(changes), expect, ctx)
            item = self.coll.get(conn, ident)
            self.coll.for_caller(conn, [item], ctx.project_id)
            self._changed(conn, item)
            return item

        item = self.db.write(work)
        return Response(200, {self.res.member: self.shape([item], ctx, None)[0]})

    def delete(self, req: Request, ctx: Context, ident: str) -> Response:
        expect = self._if_match(req)

        def work(conn: Connection) -> None:
            orig = self._load_for_write(conn, ctx, ident)
            self._enforce(f"delete_{self.res.member}", self._target(conn, orig, ctx), ctx)
            _check_revision(orig, expect)
            self.service.delete(conn, orig, expect, ctx)
            self._changed(conn, orig)

        self.db.write(work)
        return Response(204)

    def action(self, req: Request, ctx: Context, ident: str, name: str) -> Response:
        """Member actions: routers' add/remove_router_interface and add/remove_extraroutes, address groups'
        add/remove_addresses, subnet pools' add/remove_prefixes and onboard_network_subnets, trunks'
        add/remove_subports (answered with the trunk itself, as Neutron)."""
        body = req.json()
        routers = self.services.routers
        pools = self.services.subnetpools

        def work(conn: Connection) -> Any:
            orig = self._load_for_write(conn, ctx, ident)
            self._enforce(name, self._target(conn, orig, ctx), ctx)
            self._changed(conn, orig)
            if self.res.member == "trunk":
                return getattr(self.services.trunks, name)(conn, orig, body, ctx)
            if self.res.member == "address_group":
                getattr(self.services.address_groups, name)(conn, orig, body)
                return {"address_group": self.coll.get(conn, ident)}
            if name in ("add_prefixes", "remove_prefixes"):
                return pools.change_prefixes(conn, orig, body, name == "add_prefixes", ctx)
            if name == "onboard_network_subnets":
                return pools.onboard(conn, orig, body, ctx)
            if name == "add_router_interface":
                return routers.add_interface(conn, orig, body, ctx)
            if name == "remove_router_interface":
                return routers.remove_interface(conn, orig, body)
            routers.edit_routes(conn, orig, body, add=name == "add_extraroutes")
            return {"router": self.coll.get(conn, ident)}

        out = self.db.write(work)
        if isinstance(out, dict) and self.res.member in out:
            out = {self.res.member: self.shape([out[self.res.member]], ctx, None)[0]}
        return Response(200, out)

    def get_subports(self, req: Request, ctx: Context, ident: str) -> Response:
        """GET /trunks/{id}/get_subports: the trunk's subports, read as the trunk is (then get_subports)."""
        visible, pred = self._visible(ctx)
        with self.db.read() as conn:
            item = self.coll.get(conn, ident, visible)
            if item is not None and visible is None and not pred.evaluate(item, ctx.credentials()):
                item = None
        if item is None:
            raise self._not_found(ident)
        self._enforce("get_subports", item, ctx)
        return Response(200, {"sub_ports": item["sub_ports"]})

    def _load_for_write(self, conn: Connection, ctx: Context, ident: str) -> dict[str, Any]:
        visible, pred = self._visible(ctx)
        item = self.coll.get(conn, ident, visible, for_update=True)
        if item is not None and visible is None and not pred.evaluate(self._target(conn, item, ctx),
                                                                      ctx.credentials()):
            item = None
        if item is None:
            raise self._not_found(ident)
        return item

    # ---------------------------------------------------------------- tags
    def tags(self, req: Request, ctx: Context, ident: str, tag: str | None) -> Response:
        coll = self.res.collection
        if tag is not None:
            try:
                tag = tag_value(tag)
            except InvalidValue as err:
                raise BadRequest(f"Invalid input for tag. Reason: {err}.") from None
        if req.method == "GET":
            visible, _ = self._visible(ctx)
            with self.db.read() as conn:
                item = self.coll.get(conn, ident, visible)
            if item is None:
                raise self._not_found(ident)
            if tag is None:
                return Response(200, {"tags": item["tags"]})
            if tag not in item["tags"]:
                raise NotFound(f"Tag {tag} could not be found.", type="TagNotFound")
            return Response(204)
        if req.method == "PUT" and tag is None:
            body = req.json()
            if not isinstance(body, dict) or "tags" not in body or len(body) != 1:
                raise BadRequest("Invalid tags body: expected {\"tags\": [...]}")
            try:
                new_tags = self.res.attr("tags").convert(body["tags"])  # type: ignore[misc]
            except InvalidValue as err:
                raise BadRequest(f"Invalid input for tags. Reason: {err}.") from None
        verb = {"PUT": "update", "DELETE": "delete"}.get(req.method)
        if verb is None:
            raise NotFound("The resource could not be found.")

        def work(conn: Connection) -> Response:
            orig = self._load_for_write(conn, ctx, ident)
            target = {**self._target(conn, orig, ctx), "ext_parent:project_id": orig["project_id"]}
            action = f"{'create' if req.method == 'PUT' and tag else verb}_{coll}_tags"
            self._enforce(action, target, ctx)
            tags = list(orig["tags"])
            if req.method == "PUT" and tag is None:
                tags = new_tags
            elif req.method == "PUT":
                if tag in tags:
                    return Response(201)
                tags.append(tag)
            elif tag is None:
                tags = []
            else:
                if tag not in tags:
                    raise NotFound(f"Tag {tag} could not be found.", type="TagNotFound")
                tags.remove(tag)
            common.set_tags(conn, ident, tags)
            common.bump(conn, self.coll.table, ident, {})
            if req.method == "PUT" and tag is None:
                return Response(200, {"tags": sorted(set(tags))})
            return Response(201 if req.method == "PUT" else 204)

        return self.db.write(work)
