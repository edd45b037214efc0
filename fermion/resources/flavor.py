"""Service flavors and service profiles (flavors), service providers (service-type) and the router's flavor
(l3-flavors). Flavors and profiles are admin-managed and, as in Neutron, not standard-attribute resources: no
project, tags, timestamps or revision."""

from __future__ import annotations

from typing import Any

from fermion import validation as v
from fermion.resources.base import BOOL, Attribute, Extension, Resource

_uuid = {"type": "string", "format": "uuid"}


def _string_or_none(limit: int) -> v.Validator:
    inner = v.string(limit)

    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def _bool_or_none(value: Any) -> Any:
    return None if value is None else v.boolean(value)


def _any_id(value: Any) -> str:
    """Ids in filters are matched as given (Neutron: ?id=33 lists nothing, it is no error)."""
    return str(value)


FLAVOR = Resource(
    member="flavor",
    collection="flavors",
    not_found="FlavorNotFound",
    id_label="Flavor",
    tags=False,
    standard=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=_uuid, filter_convert=_any_id),
        Attribute("name", v.string(255), default="", post=True, put=True, sort=True),
        Attribute("description", _string_or_none(1024), default="", post=True, put=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("service_type", v.string(255), post=True, sort=True),
        Attribute("service_profiles", v.list_of(v.uuid_str), default=[], post=True, put=True, filter=False,
                  schema={"type": "array", "items": _uuid}),
        Attribute("enabled", _bool_or_none, default=True, post=True, put=True, sort=True, schema=BOOL,
                  filter_convert=v.boolean),
    ),
)

SERVICE_PROFILE = Resource(
    member="service_profile",
    collection="service_profiles",
    url="service_profiles",
    not_found="ServiceProfileNotFound",
    id_label="Service Profile",
    tags=False,
    standard=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=_uuid, filter_convert=_any_id),
        Attribute("description", _string_or_none(1024), default="", post=True, put=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("driver", v.string(1024), default="", post=True, put=True, sort=True),
        Attribute("metainfo", v.string(4096), default="", post=True, put=True, sort=True, filter=False),
        Attribute("enabled", _bool_or_none, default=True, post=True, put=True, sort=True, schema=BOOL,
                  filter_convert=v.boolean),
    ),
)

FLAVORS = Extension("flavors", "Neutron Service Flavors", "Flavor specification for Neutron advanced services.")
SERVICE_TYPE = Extension("service-type", "Neutron Service Type Management",
                         "API for retrieving service providers for Neutron advanced services")
L3_FLAVORS = Extension("l3-flavors", "Router Flavor Extension", "Flavor support for routers.")
