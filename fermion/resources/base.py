"""Typed resource definitions: the single source of truth for the API surface.

Request validation, response shaping, filter and sort allow-lists, attribute policy defaults, the
extension list and the OpenAPI document are all derived from these declarations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fermion import validation as v


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # no default: required on create when allow_post
AUTO: Any = type("_Auto", (), {"__repr__": lambda self: "AUTO"})()  # the service computes it

ADMIN_ONLY = "rule:admin_only"


@dataclass(frozen=True)
class Attribute:
    name: str
    convert: v.Validator | None = None
    default: Any = UNSET
    post: bool = False
    put: bool = False
    visible: bool = True
    filter: bool = True
    sort: bool = False
    # enforce_policy: rule for create_/update_<member>:<name>; read_policy: rule for get_<member>:<name>
    policy: str | None = None
    read_policy: str | None = None
    extension: str | None = None
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    # how a query-string filter value is converted (defaults to convert)
    filter_convert: v.Validator | None = None
    # False: left out of the object an update's policy checks see, as Neutron loads for those checks only the
    # attributes that are required_by_policy, keys or without a default (a rule naming it fails there)
    prefetch: bool = True

    @property
    def column(self) -> str:
        return self.name.replace(":", "_")

    @property
    def required(self) -> bool:
        return self.post and self.default is UNSET

    def convert_filter(self, raw: str) -> Any:
        conv = self.filter_convert or self.convert
        if conv is None:
            return raw
        return conv(raw)


@dataclass(frozen=True)
class Resource:
    member: str
    collection: str
    attributes: tuple[Attribute, ...]
    not_found: str  # Neutron's error type for a missing member, e.g. NetworkNotFound
    tags: bool = True
    id_label: str = ""  # how the not-found message names the id, e.g. "Network"
    standard: bool = True  # False: no standard attributes (Neutron's flavors, service profiles)
    url: str = ""  # the URL segment when it is not the hyphenated collection (service_profiles)
    by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {a.name: a for a in self.attributes})

    def attr(self, name: str) -> Attribute:
        return self.by_name[name]

    @property
    def path(self) -> str:
        """The URL segment: the collection with hyphens (security_groups -> security-groups)."""
        return self.url or self.collection.replace("_", "-")

    @property
    def filter_keys(self) -> frozenset[str]:
        return frozenset(a.name for a in self.attributes if a.filter)

    @property
    def sort_keys(self) -> frozenset[str]:
        return frozenset(a.name for a in self.attributes if a.sort)


@dataclass(frozen=True)
class Extension:
    alias: str
    name: str
    description: str
    updated: str = "2026-11-21T00:00:00-00:00"


def _tenant_filter(value: Any) -> Any:
    return v.string(255)(value)


def standard_attributes(*, project_post: bool = True, name: bool = True,
                        tags: bool = True) -> tuple[Attribute, ...]:
    """id, project_id/tenant_id, name, description, tags, timestamps and revision of every resource
    (floating IPs have no name; security group rules have neither name nor tags)."""
    uuid_schema = {"type": "string", "format": "uuid"}
    out = (
        Attribute("id", v.uuid_str, sort=True, schema=uuid_schema),
        Attribute("name", v.string(255), default="", post=True, put=True, sort=True),
        Attribute("description", v.string(255), default="", post=True, put=True, sort=True,
                  extension="standard-attr-description"),
        Attribute("project_id", v.string(255), default=AUTO, post=project_post, sort=True,
                  extension="project-id"),
        Attribute("tenant_id", v.string(255), default=AUTO, post=project_post, sort=True),
        Attribute("tags", v.list_of(v.tag_value, max_items=100, unique=True), default=[], post=True,
                  filter=False, extension="standard-attr-tag",
                  schema={"type": "array", "items": {"type": "string"}}),
        Attribute("created_at", sort=True, extension="standard-attr-timestamp"),
        Attribute("updated_at", sort=True, extension="standard-attr-timestamp"),
        Attribute("revision_number", v.integer(0), sort=True, extension="standard-attr-revisions",
                  schema={"type": "integer"}),
    )
    return tuple(a for a in out if (name or a.name != "name") and (tags or a.name != "tags"))


BOOL = {"type": "boolean"}
Converter = Callable[[Any], Any]
