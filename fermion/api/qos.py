"""/v2.0/qos/...: policies (the generic controller), their rules, and the rule types this backend has.

Rules are sub-resources of a policy: the policy is looked up as its own API would (invisible ->
QosPolicyNotFound), then the rule rules target the policy as their parent (``ext_parent:project_id``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from fermion.api import body as bodies
from fermion.api import params
from fermion.api.controller import Controller
from fermion.api.wire import Request, Response
from fermion.context import Context
from fermion.errors import BadRequest, NeutronError, NotFound
from fermion.policy import Enforcer, PolicyNotAuthorized
from fermion.resources.qos import DSCP_MARKS, RULE_TYPES, RULES_BY_COLLECTION, UNSUPPORTED, RuleType
from fermion.services.qos import policy_not_found, rule_not_found
from fermion.services.registry import Services

DRIVER = "linuxbridge"  # the agent that enforces them, named as Neutron names its driver


def rule_type_details(rtype: RuleType) -> dict[str, Any]:
    """qos-rule-type-details: the parameters the backend takes, in Neutron's format."""
    params_out: list[dict[str, Any]] = []
    for attr in rtype.resource.attributes:
        if attr.name == "id":
            continue
        if attr.name in ("max_kbps", "max_burst_kbps", "min_kbps"):
            params_out.append({"parameter_name": attr.name, "parameter_type": "range",
                               "parameter_values": {"start": 0, "end": 2**31 - 1}})
        elif attr.name == "dscp_mark":
            params_out.append({"parameter_name": attr.name, "parameter_type": "choices",
                               "parameter_values": list(DSCP_MARKS)})
        elif attr.name == "direction":
            choices = ["egress", "ingress"] if rtype.name == "bandwidth_limit" else ["egress"]
            params_out.append({"parameter_name": attr.name, "parameter_type": "choices",
                               "parameter_values": choices})
    return {"type": rtype.name, "drivers": [{"name": DRIVER, "supported_parameters": params_out}]}


class MethodNotAllowed(NeutronError):
    status = 405
    type = "HTTPMethodNotAllowed"


class QosController:
    def __init__(self, services: Services, enforcer: Enforcer, policies: Controller) -> None:
        self.service = services.qos
        self.enforcer = enforcer
        self.policies = policies
        self.db = services.db

    def handle(self, req: Request, ctx: Context, rest: list[str]) -> Response:
        if not rest:
            raise NotFound("The resource could not be found.")
        if rest[0] == "rule-types" and len(rest) <= 2 and req.method == "GET":
            return self._rule_types(req, ctx, rest[1] if len(rest) == 2 else None)
        if rest[0] != "policies":
            raise NotFound("The resource could not be found.")
        ctl, method = self.policies, req.method
        if len(rest) == 1:
            if method == "GET":
                return ctl.list(req, ctx)
            if method == "POST":
                return ctl.create(req, ctx)
            raise MethodNotAllowed(f"The method {method} is not allowed on policies")
        ident = rest[1]
        if len(rest) == 2:
            if method == "GET":
                return ctl.show(req, ctx, ident)
            if method == "PUT":
                return ctl.update(req, ctx, ident)
            if method == "DELETE":
                return ctl.delete(req, ctx, ident)
            raise MethodNotAllowed(f"The method {method} is not allowed on this policy")
        if rest[2] == "tags" and len(rest) <= 4:
            return ctl.tags(req, ctx, ident, rest[3] if len(rest) == 4 else None)
        if rest[2] in UNSUPPORTED and len(rest) <= 4:
            raise BadRequest(f"Rule type {UNSUPPORTED[rest[2]]} is not supported by this backend: it enforces "
                             "bandwidth_limit and dscp_marking, and accepts minimum_bandwidth (see "
                             "/v2.0/qos/rule-types).", type="QosRuleNotSupported")
        rtype = RULES_BY_COLLECTION.get(rest[2])
        if rtype is None or len(rest) > 4:
            raise NotFound("The resource could not be found.")
        return self._rules(req, ctx, rtype, ident, rest[3] if len(rest) == 4 else None)

    # ---------------------------------------------------------------- rule types
    def _rule_types(self, req: Request, ctx: Context, name: str | None) -> Response:
        allowed = self.enforcer.check("get_rule_type", {}, ctx)
        if name is None:  # as Neutron: a list shows what the caller may see (nothing, without the role)
            wanted = [v for k, v in req.query if k == "type"]
            types = [{"type": t} for t in RULE_TYPES if allowed and (not wanted or t in wanted)]
            return Response(200, {"rule_types": types})
        if not allowed:
            raise PolicyNotAuthorized("get_rule_type")
        rtype = RULE_TYPES.get(name)
        if rtype is None:
            raise NotFound(f"QoS rule type {name} could not be found.", type="QosRuleTypeNotFound")
        return Response(200, {"rule_type": rule_type_details(rtype)})

    # ---------------------------------------------------------------- rules
    def _policy(self, conn: Connection, ctx: Context, policy_id: str, for_update: bool) -> dict[str, Any]:
        visible, pred = self.policies._visible(ctx)
        policy = self.policies.coll.get(conn, policy_id, visible, for_update=for_update)
        if policy is not None:
            self.policies.coll.for_caller(conn, [policy], ctx.project_id)
            if visible is None and not pred.evaluate(policy, ctx.credentials()):
                policy = None
        if policy is None:
            raise policy_not_found(policy_id)
        return policy

    def _allowed(self, action: str, policy: dict[str, Any], ctx: Context) -> bool:
        target = {"project_id": policy["project_id"], "tenant_id": policy["project_id"], "shared": policy["shared"],
                  "ext_parent:project_id": policy["project_id"], "ext_parent:tenant_id": policy["project_id"]}
        return self.enforcer.check(action, target, ctx)

    def _rules(self, req: Request, ctx: Context, rtype: RuleType, policy_id: str, rule_id: str | None) -> Response:
        method = req.method
        if rule_id is None and method == "GET":
            return self._list(req, ctx, rtype, policy_id)
        if rule_id is None and method == "POST":
            return self._create(req, ctx, rtype, policy_id)
        if rule_id is not None and method == "GET":
            with self.db.read() as conn:
                policy = self._policy(conn, ctx, policy_id, False)
                if not self._allowed(f"get_policy_{rtype.member}", policy, ctx):
                    raise rule_not_found(rule_id, policy_id)
                item = self.service.get_rule(conn, rtype, policy_id, rule_id)
            return Response(200, {rtype.member: _shape(item, params.parse_fields(req.query))})
        if rule_id is not None and method in ("PUT", "DELETE"):
            return self._write(req, ctx, rtype, policy_id, rule_id)
        raise MethodNotAllowed(f"The method {method} is not allowed on {rtype.collection}")

    def _list(self, req: Request, ctx: Context, rtype: RuleType, policy_id: str) -> Response:
        q = params.parse_list(rtype.resource, req.query, tags=False)
        fields = params.parse_fields(req.query)
        items: list[dict[str, Any]] = []
        with self.db.read() as conn:
            policy = self._policy(conn, ctx, policy_id, False)
            if self._allowed(f"get_policy_{rtype.member}", policy, ctx):
                items, _ = self.service.list_rules(conn, rtype, policy_id, q)
        body: dict[str, Any] = {rtype.collection: [_shape(i, fields) for i in items]}
        if q.limit:
            body[f"{rtype.collection}_links"] = params.links(req.base_url, f"qos/policies/{policy_id}/"
                                                             f"{rtype.collection}", req.query, items, q)
        return Response(200, body)

    def _create(self, req: Request, ctx: Context, rtype: RuleType, policy_id: str) -> Response:
        raw = _member(req.json(), rtype.member)
        item = bodies.for_create(rtype.resource, raw, ctx)

        def work(conn: Connection) -> dict[str, Any]:
            policy = self._policy(conn, ctx, policy_id, True)
            if not self._allowed(f"create_policy_{rtype.member}", policy, ctx):
                raise PolicyNotAuthorized(f"create_policy_{rtype.member}")
            return self.service.create_rule(conn, rtype, policy, item)

        return Response(201, {rtype.member: self.db.write(work)})

    def _write(self, req: Request, ctx: Context, rtype: RuleType, policy_id: str, rule_id: str) -> Response:
        changes = bodies.for_update(rtype.resource, _member(req.json(), rtype.member)) if req.method == "PUT" else {}
        verb = "update" if req.method == "PUT" else "delete"

        def work(conn: Connection) -> dict[str, Any] | None:
            policy = self._policy(conn, ctx, policy_id, True)
            if not self._allowed(f"get_policy_{rtype.member}", policy, ctx):
                raise rule_not_found(rule_id, policy_id)
            if not self._allowed(f"{verb}_policy_{rtype.member}", policy, ctx):
                raise PolicyNotAuthorized(f"{verb}_policy_{rtype.member}")
            orig = self.service.get_rule(conn, rtype, policy_id, rule_id, for_update=True)
            if verb == "delete":
                self.service.delete_rule(conn, rtype, policy, orig)
                return None
            return self.service.update_rule(conn, rtype, policy, orig, changes)

        out = self.db.write(work)
        if out is None:
            return Response(204)
        return Response(200, {rtype.member: out})


def _shape(item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields} if fields else item


def _member(body: Any, member: str) -> Any:
    if not isinstance(body, dict) or member not in body:
        raise BadRequest(f"Unable to find '{member}' in request body")
    return body[member]
