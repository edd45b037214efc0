"""Metering labels and their rules (metering, metering_source_and_destination_fields): /v2.0/metering/...

Neither is a standard-attribute resource in Neutron: no tags, timestamps or revision. A rule shows no project
(it is the label's); the prefixes are checked by the service (Neutron's plugin accepts any address with an
optional prefix length, spelt as netaddr does)."""

from __future__ import annotations

from typing import Any

from fermion import validation as v
from fermion.resources.base import AUTO, BOOL, Attribute, Extension, Resource

PREFIX = "metering"  # the URL prefix: /v2.0/metering/metering-labels
DIRECTIONS = ("ingress", "egress")
PREFIX_FIELDS = ("remote_ip_prefix", "source_ip_prefix", "destination_ip_prefix")
_uuid = {"type": "string", "format": "uuid"}
_nullable = {"type": ["string", "null"]}


def _any_id(value: Any) -> str:
    """Ids in filters are matched as given (?id=33 lists nothing, it is no error)."""
    return str(value)


def _prefix(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise v.InvalidValue(f"'{value}' is not a valid string")
    return value


METERING_LABEL = Resource(
    member="metering_label",
    collection="metering_labels",
    not_found="MeteringLabelNotFound",
    id_label="Metering label",
    url=f"{PREFIX}/metering-labels",
    tags=False,
    standard=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=_uuid, filter_convert=_any_id),
        Attribute("name", v.string(255), default="", post=True, sort=True),
        Attribute("description", v.string(1024), default="", post=True, sort=True),
        Attribute("project_id", v.string(255), default=AUTO, post=True, sort=True),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, sort=True),
        Attribute("shared", v.boolean, default=False, post=True, sort=True, schema=BOOL, filter_convert=v.boolean),
    ),
)

METERING_LABEL_RULE = Resource(
    member="metering_label_rule",
    collection="metering_label_rules",
    not_found="MeteringLabelRuleNotFound",
    id_label="Metering label rule",
    url=f"{PREFIX}/metering-label-rules",
    tags=False,
    standard=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=_uuid, filter_convert=_any_id),
        Attribute("metering_label_id", v.uuid_str, post=True, sort=True, schema=_uuid, filter_convert=_any_id),
        Attribute("direction", v.one_of(*DIRECTIONS), post=True, sort=True,
                  schema={"type": "string", "enum": list(DIRECTIONS)}),
        Attribute("excluded", v.boolean, default=False, post=True, sort=True, schema=BOOL, filter_convert=v.boolean),
        Attribute("remote_ip_prefix", _prefix, default=None, post=True, sort=True, schema=_nullable),
        Attribute("source_ip_prefix", _prefix, default=None, post=True, put=True, sort=True, schema=_nullable),
        Attribute("destination_ip_prefix", _prefix, default=None, post=True, put=True, sort=True, schema=_nullable),
        # accepted on create as Neutron does, never shown: a rule belongs to its label's project
        Attribute("project_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
    ),
)

METERING = Extension("metering", "Neutron Metering", "Neutron Metering extension.", "2013-06-12T10:00:00-00:00")
METERING_SOURCE_AND_DESTINATION = Extension(
    "metering_source_and_destination_fields", "Neutron Metering with source and destination filtering",
    "Neutron Metering extension that enables the use of source and destination IP prefixes to create metering "
    "label rules.", "2020-08-21T08:12:00-00:00")
