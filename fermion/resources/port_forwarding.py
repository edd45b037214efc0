"""Floating IP port forwardings (floating-ip-port-forwarding and its -description, -port-ranges and -detail
companions): /v2.0/floatingips/{floatingip_id}/port_forwardings.

A sub-resource of a floating IP, not a standard-attribute resource: no name, tags, timestamps or revision;
project_id is accepted on create but never shown. A forwarding names its ports either one by one
(internal_port, external_port) or as "start:end" ranges (internal_port_range, external_port_range), never
both ways in one request."""

from __future__ import annotations

import re
from typing import Any

from fermion import validation as v
from fermion.resources.base import AUTO, Attribute, Extension, Resource

_RANGE = re.compile(r"^(\d+)(?::(\d+))?$")
_INT = {"type": ["integer", "null"]}


def protocol(value: Any) -> str:
    """tcp or udp (case-insensitive): what a port forwarding can translate."""
    if isinstance(value, str) and value.lower() in ("tcp", "udp"):
        return value.lower()
    raise v.InvalidValue(f"{value} is not in ['tcp', 'udp']")


def port(value: Any) -> int | None:
    """A single port 1-65535 (null: not given this way)."""
    return None if value is None else int(v.integer(1, 65535)(value))


def port_range(value: Any) -> str | None:
    """"start:end" (or a single port) within 1-65535, start <= end; written back as "start:end"."""
    if value is None:
        return None
    found = _RANGE.match(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if found is None:
        raise v.InvalidValue(f"Port range '{value}' is not a valid range")
    start = int(found.group(1))
    end = int(found.group(2)) if found.group(2) is not None else start
    if not (1 <= start <= 65535 and 1 <= end <= 65535):
        raise v.InvalidValue(f"Invalid port '{value}', the port value must be between 1 and 65535")
    if start > end:
        raise v.InvalidValue(f"The first port {start} in port range {value} must be lower than the second port")
    return f"{start}:{end}"


PORT_FORWARDING = Resource(
    member="port_forwarding",
    collection="port_forwardings",
    not_found="PortForwardingNotFound",
    id_label="Port Forwarding",
    tags=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema={"type": "string", "format": "uuid"}),
        Attribute("project_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, visible=False, filter=False),
        Attribute("internal_port_id", v.uuid_str, post=True, put=True, sort=True,
                  schema={"type": "string", "format": "uuid"}),
        Attribute("internal_ip_address", v.ip_address, default=None, post=True, put=True, filter=False),
        Attribute("internal_port", port, default=None, post=True, put=True, filter=False, schema=_INT),
        Attribute("external_port", port, default=None, post=True, put=True, sort=True, schema=_INT,
                  filter_convert=v.integer(1, 65535)),
        Attribute("internal_port_range", port_range, default=None, post=True, put=True, filter=False,
                  extension="floating-ip-port-forwarding-port-ranges"),
        Attribute("external_port_range", port_range, default=None, post=True, put=True, sort=True,
                  extension="floating-ip-port-forwarding-port-ranges"),
        Attribute("protocol", protocol, post=True, put=True, sort=True),
        Attribute("description", v.string(1024), default="", post=True, put=True,
                  extension="floating-ip-port-forwarding-description"),
    ),
)

FLOATING_IP_PORT_FORWARDING = Extension(
    "floating-ip-port-forwarding", "Floating IP Port Forwarding",
    "Allow port forwarding from floating IP port to an internal port", "2018-01-19T10:00:00-00:00")
FIP_PF_DESCRIPTION = Extension(
    "floating-ip-port-forwarding-description", "Floating IP Port Forwarding new attribute description",
    "Add a description field to Port Forwarding rules", "2019-11-01T10:00:00-00:00")
FIP_PF_PORT_RANGES = Extension(
    "floating-ip-port-forwarding-port-ranges", "Floating IP Port Forwarding support port ranges",
    "Add suport to port ranges", "2020-07-01T10:00:00-00:00")
FIP_PF_DETAIL = Extension(
    "floating-ip-port-forwarding-detail", "Floating IP port forwarding detail",
    "Allow list floating ip return more port forwarding data, include'id' and 'internal_port_id'",
    "2022-05-06T10:00:00-00:00")
EXPOSE_PORT_FORWARDING_IN_FIP = Extension(
    "expose-port-forwarding-in-fip", "Expose Floating IP port forwardings",
    "Expose port forwarding fields in floating IP response", "2018-06-28T16:00:00-00:00")
EXTENSIONS = (FLOATING_IP_PORT_FORWARDING, FIP_PF_DESCRIPTION, FIP_PF_PORT_RANGES, FIP_PF_DETAIL,
              EXPOSE_PORT_FORWARDING_IN_FIP)
