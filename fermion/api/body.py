"""Request bodies checked against the resource definitions."""

from __future__ import annotations

import copy
from typing import Any

from fermion.context import Context
from fermion.errors import BadRequest
from fermion.resources.base import AUTO, UNSET, Resource
from fermion.validation import InvalidValue


def items_of(body: Any, res: Resource) -> tuple[list[Any], bool]:
    """The items of a create body and whether it was a bulk request."""
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object")
    if res.member in body and res.collection not in body:
        return [body[res.member]], False
    if res.collection in body and res.member not in body:
        items = body[res.collection]
        if not isinstance(items, list) or not items:
            raise BadRequest(f"Resources required in the '{res.collection}' list")
        if len(items) > 1000:
            raise BadRequest("A bulk request takes at most 1000 items")
        # as Neutron, a bulk item may itself be wrapped: {"ports": [{"port": {...}}, ...]}
        return [i[res.member] if isinstance(i, dict) and res.member in i else i for i in items], True
    raise BadRequest(f"Unable to find '{res.member}' in request body")


def _check_keys(res: Resource, raw: Any, action: str) -> None:
    if not isinstance(raw, dict):
        raise BadRequest(f"Invalid format: the {res.member} must be a JSON object")
    unknown = sorted(k for k in raw if k not in res.by_name)
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    for key in raw:
        attr = res.by_name[key]
        if action == "POST" and not attr.post:
            raise BadRequest(f"Attribute '{key}' not allowed in POST")
        if action == "PUT" and not attr.put:
            raise BadRequest(f"Cannot update read-only attribute {key}")


def _convert(res: Resource, key: str, value: Any) -> Any:
    attr = res.by_name[key]
    try:
        return attr.convert(value) if attr.convert else value
    except InvalidValue as err:
        raise BadRequest(f"Invalid input for {key}. Reason: {err}.") from None


def for_create(res: Resource, raw: Any, ctx: Context) -> dict[str, Any]:
    _check_keys(res, raw, "POST")
    out: dict[str, Any] = {}
    for attr in res.attributes:
        if not attr.post:
            continue
        if attr.name in raw:
            out[attr.name] = _convert(res, attr.name, raw[attr.name])
        elif attr.default is UNSET:
            raise BadRequest(f"Failed to parse request. Required attribute '{attr.name}' not specified")
        else:
            default = attr.default  # a list or dict default is copied: the request may change its own
            out[attr.name] = copy.deepcopy(default) if isinstance(default, (list, dict)) else default
    project, tenant = out.get("project_id", AUTO), out.get("tenant_id", AUTO)
    if project is not AUTO and tenant is not AUTO and project != tenant:
        raise BadRequest(f"Specified project_id {project} does not match tenant_id {tenant}")
    chosen = project if project is not AUTO else tenant
    if chosen not in (AUTO, None) and chosen != ctx.project_id and not (ctx.is_admin or "service" in ctx.roles):
        # as Neutron, before any policy or lookup (so nothing about the other project's resources shows)
        raise BadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request "
                         "requires admin privileges", type="HTTPBadRequest")
    if chosen is AUTO:
        chosen = ctx.project_id
        if chosen is None:
            raise BadRequest("Running without an authenticated project requires that project_id is specified")
    out["project_id"] = out["tenant_id"] = chosen
    return out


def for_update(res: Resource, raw: Any) -> dict[str, Any]:
    _check_keys(res, raw, "PUT")
    return {key: _convert(res, key, value) for key, value in raw.items()}
