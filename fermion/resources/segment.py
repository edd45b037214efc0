"""Segments of networks (segment, standard-attr-segment) and admin-managed segment ranges
(network-segment-range)."""

from fermion import validation as v
from fermion.resources.base import AUTO, BOOL, Attribute, Resource

UUID = {"type": "string", "format": "uuid"}
RANGE_TYPES = ("vlan", "vxlan", "gre", "geneve")
_ID_LIMIT = v.integer(1, 2**32 - 1)  # the widest of the types (GRE); each type checks its own below


def _timestamps() -> tuple[Attribute, ...]:
    return (
        Attribute("created_at", sort=True, extension="standard-attr-timestamp"),
        Attribute("updated_at", sort=True, extension="standard-attr-timestamp"),
        Attribute("revision_number", v.integer(0), sort=True, extension="standard-attr-revisions",
                  schema={"type": "integer"}),
        Attribute("tags", v.list_of(v.tag_value, max_items=100, unique=True), default=[], post=True,
                  filter=False, extension="standard-attr-tag", schema={"type": "array", "items": {"type": "string"}}),
    )


SEGMENT = Resource(
    member="segment",
    collection="segments",
    not_found="SegmentNotFound",
    id_label="Segment",
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=UUID),
        # Neutron takes the project on create but never shows it
        Attribute("project_id", v.string(255), default=AUTO, post=True, visible=False, filter=False,
                  extension="project-id"),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
        Attribute("network_id", v.uuid_str, post=True, sort=True, schema=UUID),
        Attribute("name", v.string(255, nullable=True), default=None, post=True, put=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("description", v.string(255, nullable=True), default=None, post=True, put=True, sort=True,
                  extension="standard-attr-segment", schema={"type": ["string", "null"]}),
        Attribute("network_type", v.string(32), post=True, sort=True),
        Attribute("physical_network", v.nullable(v.string(64)), default=AUTO, post=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("segmentation_id", v.nullable(v.integer(0, 2**32 - 1)), default=AUTO, post=True, sort=True,
                  filter_convert=v.integer(0), schema={"type": ["integer", "null"]}),
    ) + _timestamps(),
)

NETWORK_SEGMENT_RANGE = Resource(
    member="network_segment_range",
    collection="network_segment_ranges",
    not_found="NetworkSegmentRangeNotFound",
    id_label="Network Segment Range",
    url="network_segment_ranges",
    attributes=(
        # any id may be asked for in a filter (Neutron answers an empty list, not a 400)
        Attribute("id", v.uuid_str, sort=True, schema=UUID, filter_convert=v.string(255)),
        Attribute("name", v.string(255), default="", post=True, put=True, sort=True),
        Attribute("description", v.string(255), default="", post=True, put=True, sort=True,
                  extension="standard-attr-description"),
        # a shared range has no project (null); a project's own range names it
        Attribute("project_id", v.string(255), default=AUTO, post=True, sort=True, extension="project-id",
                  schema={"type": ["string", "null"]}),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("default", filter_convert=v.boolean, schema=BOOL),
        Attribute("shared", v.boolean, default=True, post=True, sort=True, schema=BOOL),
        Attribute("network_type", v.one_of(*RANGE_TYPES), default=AUTO, post=True, sort=True),
        Attribute("physical_network", v.nullable(v.string(64)), default=AUTO, post=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("minimum", _ID_LIMIT, post=True, put=True, sort=True, schema={"type": "integer"}),
        Attribute("maximum", _ID_LIMIT, post=True, put=True, sort=True, schema={"type": "integer"}),
        Attribute("used", filter=False, schema={"type": "object"}),
        Attribute("available", filter=False, schema={"type": "array", "items": {"type": "integer"}}),
    ) + _timestamps(),
)
