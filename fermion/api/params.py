"""Query strings: filters, fields, sorting and pagination, validated against the definitions."""

from __future__ import annotations

from typing import Any

from fermion.errors import BadRequest
from fermion.resources.base import Resource
from fermion.services.query import ListQuery
from fermion.validation import InvalidValue, boolean, ip_address, uuid_str

TAG_KEYS = {"tags": "tags", "tags-any": "tags_any", "not-tags": "not_tags", "not-tags-any": "not_tags_any"}
PAGING_KEYS = {"sort_key", "sort_dir", "limit", "marker", "page_reverse", "fields"}


def parse_fields(query: list[tuple[str, str]]) -> list[str] | None:
    fields = [v for k, v in query if k == "fields" and v]
    return fields or None


def parse_list(res: Resource, query: list[tuple[str, str]], tags: bool = True) -> ListQuery:
    q = ListQuery()
    sort_keys: list[str] = []
    sort_dirs: list[str] = []
    for key, value in query:
        if key in PAGING_KEYS:
            if key == "sort_key":
                if value not in res.sort_keys:
                    raise BadRequest(f"{value} is an invalid attribute for sort_keys")
                sort_keys.append(value)
            elif key == "sort_dir":
                if value not in ("asc", "desc"):
                    raise BadRequest(f"{value} is an invalid value for sort_dir, valid values are 'asc' and "
                                     "'desc'")
                sort_dirs.append(value)
            elif key == "limit":
                try:
                    q.limit = int(value)
                except ValueError:
                    raise BadRequest(f"Limit must be an integer 0 or greater and not '{value}'") from None
                if q.limit < 0:
                    raise BadRequest(f"Limit must be an integer 0 or greater and not '{value}'")
                q.limit = min(q.limit, 2**31 - 1)  # larger values mean "all" and overflow SQL integers
            elif key == "marker":
                q.marker = value
            elif key == "page_reverse":
                try:
                    q.page_reverse = boolean(value)
                except InvalidValue as err:
                    raise BadRequest(f"Invalid input for page_reverse. Reason: {err}.") from None
        elif key in TAG_KEYS and tags:
            getattr(q, TAG_KEYS[key]).extend(t for t in value.split(",") if t)
        elif key == "fixed_ips" and res.member == "port":
            q.fixed_ips.append(_fixed_ip_filter(value))
        elif key in res.filter_keys:
            attr = res.by_name[key]
            try:
                converted = attr.convert_filter(value)
            except InvalidValue as err:
                raise BadRequest(f"Invalid input for {key}. Reason: {err}.") from None
            name = "project_id" if key == "tenant_id" else key
            q.filters.setdefault(name, []).append(converted)
        else:
            raise BadRequest(f"[{key}] is invalid attribute for filtering")
    if sort_dirs and len(sort_dirs) != len(sort_keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    q.sorts = [(k, (sort_dirs[i] if sort_dirs else "asc") == "asc") for i, k in enumerate(sort_keys)]
    return q


def _fixed_ip_filter(value: str) -> dict[str, str]:
    key, sep, val = value.partition("=")
    try:
        if key == "ip_address" and sep:
            return {"ip_address": ip_address(val)}
        if key == "ip_address_substr" and sep:  # ip-substring-filtering: any part of an address
            return {"ip_address_substr": val}
        if key == "subnet_id" and sep:
            return {"subnet_id": uuid_str(val)}
    except InvalidValue as err:
        raise BadRequest(f"Invalid input for fixed_ips. Reason: {err}.") from None
    raise BadRequest(f"Invalid fixed_ips filter '{value}': use ip_address=IP, ip_address_substr=TEXT or "
                     "subnet_id=ID")


def links(base: str, collection: str, query: list[tuple[str, str]], items: list[dict[str, Any]],
          q: ListQuery) -> list[dict[str, str]]:
    """Neutron's rule: a full page always has a next and a previous link (clients stop on an empty page);
    a short page has none in the direction it was read, but one back the other way."""
    from urllib.parse import urlencode

    kept = [(k, v) for k, v in query if k not in ("marker", "page_reverse")]
    out = []
    href = f"{base}/v2.0/{collection}"
    short = len(items) < (q.limit or 0)
    if not (short and not q.page_reverse):
        marker = [("marker", items[-1]["id"])] if items else []
        out.append({"rel": "next", "href": f"{href}?{urlencode(kept + marker)}"})
    if not (short and q.page_reverse):
        marker = [("marker", items[0]["id"])] if items else []
        out.append({"rel": "previous", "href": f"{href}?{urlencode(kept + marker + [('page_reverse', 'True')])}"})
    return out
