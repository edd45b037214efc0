"""Router conntrack helpers (l3-conntrack-helper): /v2.0/routers/{router_id}/conntrack_helpers.

A sub-resource of a router, not a standard-attribute resource: no name, description, tags, timestamps or
revision; project_id is accepted on create but never shown."""

from __future__ import annotations

from typing import Any

from fermion import validation as v
from fermion.resources.base import AUTO, Attribute, Extension, Resource

# Neutron's IPTABLES_PROTOCOL_MAP names (the values a helper's protocol may take)
PROTOCOLS = ("ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ip", "ipip", "ipv6-encap",
             "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "ospf", "pgm", "rsvp",
             "sctp", "tcp", "udp", "udplite", "vrrp")


def protocol(value: Any) -> str:
    """A protocol name (case-insensitive) from Neutron's list."""
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    raise v.InvalidValue(f"{value} is not in {list(PROTOCOLS)}")


def helper_name(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise v.InvalidValue(f"'{value}' is not a valid string")
    return str(v.string(64)(str(value)))


CONNTRACK_HELPER = Resource(
    member="conntrack_helper",
    collection="conntrack_helpers",
    not_found="ConntrackHelperNotFound",
    id_label="Conntrack Helper",
    tags=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema={"type": "string", "format": "uuid"}),
        Attribute("project_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
        Attribute("protocol", protocol, post=True, put=True, sort=True),
        Attribute("port", v.integer(1, 65535), post=True, put=True, sort=True, schema={"type": "integer"},
                  filter_convert=v.integer()),
        Attribute("helper", helper_name, post=True, put=True, sort=True),
    ),
)

L3_CONNTRACK_HELPER = Extension("l3-conntrack-helper", "L3 Conntrack helper",
                                "Allow adding CT target rules for conntrack helper")
EXPOSE_L3_CONNTRACK_HELPER = Extension(
    "expose-l3-conntrack-helper", "Expose CT target rules for conntrack helper",
    "Expose allow adding CT target rules for conntrack helper")
