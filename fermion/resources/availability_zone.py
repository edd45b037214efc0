"""Availability zones: hints on networks and routers, and the zones that host them (read-only)."""

from fermion import validation as v
from fermion.resources.base import Attribute

LIST = {"type": "array", "items": {"type": "string"}}
HINTS = v.list_of(v.string(255), max_items=100, unique=True)


def zone_attributes(extension: str) -> tuple[Attribute, ...]:
    return (
        Attribute("availability_zone_hints", HINTS, default=[], post=True, filter=False, extension=extension,
                  schema=LIST),
        Attribute("availability_zones", filter=False, extension=extension, schema=LIST),
    )
