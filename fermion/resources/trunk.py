"""Trunks (Neutron's trunk and trunk-details extensions): a parent port and its VLAN subports."""

from __future__ import annotations

from typing import Any

from fermion import validation as v
from fermion.resources.base import BOOL, Attribute, Extension, Resource, standard_attributes

ACTIONS = ("add_subports", "remove_subports", "get_subports")
STATUSES = ("ACTIVE", "DOWN", "BUILD", "DEGRADED", "ERROR")
INHERIT = "inherit"
SUBPORT_OWNER = "trunk:subport"

TRUNK_EXT = Extension("trunk", "Trunk Extension", "Provides support for trunk ports", "2016-01-01T10:00:00-00:00")
TRUNK_DETAILS = Extension("trunk-details", "Trunk port details", "Expose trunk port details",
                          "2016-01-01T10:00:00-00:00")
EXTENSIONS = (TRUNK_EXT, TRUNK_DETAILS)


def _is_uuid(value: Any) -> bool:
    try:
        v.uuid_str(value)
    except v.InvalidValue:
        return False
    return True


def subports_problem(data: Any) -> str | None:
    """What is wrong with a sub_ports list as Neutron's type:subports check words it; None: nothing.

    Each item needs a unique port UUID and, unless it asks to inherit them from its network, both segmentation
    type and id (an item of the port id alone passes here and fails later, as in Neutron), unique per type."""
    if not isinstance(data, list):
        return f"Invalid data format for subports: '{data}' is not a list"
    ids: set[str] = set()
    used: set[tuple[str, str]] = set()
    for sub in data:
        if not isinstance(sub, dict):
            return f"Invalid data format for subport: '{sub}' is not a dict"
        if "port_id" not in sub:
            return "A valid port UUID must be specified"
        if not _is_uuid(sub["port_id"]):
            return f"Invalid UUID for subport: '{sub['port_id']}'"
        if sub["port_id"] in ids:
            return f"Non unique UUID for subport: '{sub['port_id']}'"
        ids.add(sub["port_id"])
        kind = sub.get("segmentation_type")
        if kind == INHERIT:
            continue
        seg = sub.get("segmentation_id")
        if (not kind or seg is None) and len(sub) > 1:
            return (f"Invalid subport details '{sub}': missing segmentation information. Must specify both "
                    "segmentation_id and segmentation_type")
        key = (repr(kind), repr(seg))  # (any JSON value: compared by spelling, as Neutron compares them)
        if seg is not None and key in used:
            return f"Segmentation ID '{seg}' for '{sub['port_id']}' is not unique"
        used.add(key)
    return None


def subports(value: Any) -> list[dict[str, Any]]:
    problem = subports_problem(value)
    if problem is not None:
        raise v.InvalidValue(problem)
    return list(value)


TRUNK = Resource(
    member="trunk",
    collection="trunks",
    not_found="TrunkNotFound",
    id_label="Trunk",
    attributes=standard_attributes() + (
        Attribute("admin_state_up", v.boolean, default=True, post=True, put=True, sort=True, schema=BOOL),
        Attribute("port_id", v.uuid_str, post=True, sort=True, schema={"type": "string", "format": "uuid"}),
        Attribute("status", sort=True, schema={"type": "string", "enum": list(STATUSES)}),
        Attribute("sub_ports", subports, default=[], post=True, filter=False,
                  schema={"type": "array", "items": {"type": "object"}}),
    ),
)

# trunk-details on ports: the trunk a parent port belongs to and its subports (absent on other ports)
TRUNK_DETAILS_ATTR = Attribute("trunk_details", filter=False, extension="trunk-details", schema={"type": "object"})
