"""Firewall-as-a-service v2 (fwaas_v2): /v2.0/fwaas/firewall_groups, firewall_policies and firewall_rules.

As in neutron-fwaas these are standard-attribute resources (tags, timestamps, revisions) whose ``shared`` is a
plain flag (no RBAC). A rule's ``firewall_policy_id`` lists the policies it is in; a policy's
``firewall_rules`` is its ordered rule list; a group's ``ports`` are router ports of its project."""

from __future__ import annotations

from typing import Any

import netaddr

from fermion import validation as v
from fermion.resources.base import ADMIN_ONLY, BOOL, Attribute, Extension, Resource, standard_attributes

PREFIX = "fwaas"  # the URL prefix of the three collections (Neutron's API_PREFIX)
PROTOCOLS = ("tcp", "udp", "icmp")
ACTIONS = ("allow", "deny", "reject")
POLICY_ACTIONS = ("insert_rule", "remove_rule")
DEFAULT_GROUP = "default"
DEFAULT_INGRESS = "default ingress"
DEFAULT_EGRESS = "default egress"
ROUTER_PORT_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                      "network:ha_router_replicated_interface")
UUID_LIST = {"type": "array", "items": {"type": "string", "format": "uuid"}}


def protocol(value: Any) -> str | None:
    """tcp, udp, icmp (any case) or None: any protocol."""
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    raise v.InvalidValue(f"'{value}' is not in [None, 'tcp', 'udp', 'icmp']")


def action(value: Any) -> str:
    if isinstance(value, str) and value.lower() in ACTIONS:
        return value.lower()
    raise v.InvalidValue(f"'{value}' is not in {list(ACTIONS)}")


def ip_version(value: Any) -> int:
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number not in (4, 6):
        raise v.InvalidValue(f"'{value}' is not in [4, 6]")
    return number


def ip_or_subnet(value: Any) -> str | None:
    """An address or a CIDR, or None (Neutron's type:ip_or_subnet_or_none)."""
    if value is None:
        return None
    if isinstance(value, str) and "/" in value:
        return v.cidr(value)
    return v.ip_address(value)


def port_range(value: Any) -> str | None:
    """"80" or "8000:8080" (a number is taken as its text), or None. The order is checked by the service
    (FirewallRuleInvalidPortValue), as in Neutron."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise v.InvalidValue(f"Invalid port '{value}'")
    text = str(value)
    parts = text.split(":")
    if len(parts) > 2 or not all(p.isdigit() and 0 < int(p) <= 65535 for p in parts):
        raise v.InvalidValue(f"Invalid port '{text}'")
    return ":".join(str(int(p)) for p in parts)


def uuid_list(value: Any) -> list[str]:
    """A list of UUIDs without duplicates; None is the empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise v.InvalidValue(f"'{value}' is not a list")
    out = [v.uuid_str(x) for x in value]
    if len(set(out)) != len(out):
        raise v.InvalidValue(f"Duplicate items in the list: '{', '.join(out)}'")
    return out


def ports_of_range(text: str | None) -> tuple[int | None, int | None]:
    if not text:
        return None, None
    low, _, high = text.partition(":")
    return int(low), int(high or low)


def range_text(low: int | None, high: int | None) -> str | None:
    if low is None:
        return None
    return str(low) if low == high else f"{low}:{high}"


def address_version(value: str | None) -> int | None:
    return netaddr.IPNetwork(value).version if value else None


def _shared() -> Attribute:
    return Attribute("shared", v.boolean, default=False, post=True, put=True, policy=ADMIN_ONLY, schema=BOOL,
                     filter_convert=v.boolean)


FIREWALL_RULE = Resource(
    member="firewall_rule",
    collection="firewall_rules",
    not_found="FirewallRuleNotFound",
    id_label="Firewall rule",
    url=f"{PREFIX}/firewall_rules",
    attributes=standard_attributes() + (
        _shared(),
        Attribute("firewall_policy_id", filter=False, schema={"type": "array"}),  # the policies it is in
        Attribute("protocol", protocol, default=None, post=True, put=True, sort=True),
        Attribute("ip_version", ip_version, default=4, post=True, put=True, sort=True, schema={"type": "integer"}),
        Attribute("source_ip_address", ip_or_subnet, default=None, post=True, put=True),
        Attribute("destination_ip_address", ip_or_subnet, default=None, post=True, put=True),
        Attribute("source_port", port_range, default=None, post=True, put=True, filter=False),
        Attribute("destination_port", port_range, default=None, post=True, put=True, filter=False),
        Attribute("action", action, default="deny", post=True, put=True, sort=True),
        Attribute("enabled", v.boolean, default=True, post=True, put=True, schema=BOOL, filter_convert=v.boolean),
    ),
)

FIREWALL_POLICY = Resource(
    member="firewall_policy",
    collection="firewall_policies",
    not_found="FirewallPolicyNotFound",
    id_label="Firewall policy",
    url=f"{PREFIX}/firewall_policies",
    attributes=standard_attributes() + (
        _shared(),
        Attribute("firewall_rules", uuid_list, default=None, post=True, put=True, filter=False, schema=UUID_LIST),
        Attribute("audited", v.boolean, default=False, post=True, put=True, schema=BOOL, filter_convert=v.boolean),
    ),
)

FIREWALL_GROUP = Resource(
    member="firewall_group",
    collection="firewall_groups",
    not_found="FirewallGroupNotFound",
    id_label="Firewall group",
    url=f"{PREFIX}/firewall_groups",
    attributes=standard_attributes() + (
        _shared(),
        Attribute("admin_state_up", v.boolean, default=True, post=True, put=True, schema=BOOL,
                  filter_convert=v.boolean),
        Attribute("status", sort=True),
        Attribute("ports", uuid_list, default=None, post=True, put=True, filter=False, schema=UUID_LIST),
        Attribute("ingress_firewall_policy_id", v.nullable_uuid, default=None, post=True, put=True),
        Attribute("egress_firewall_policy_id", v.nullable_uuid, default=None, post=True, put=True),
    ),
)

FWAAS_V2 = Extension("fwaas_v2", "FWaaS v2", "Provides support for firewall-as-a-service version 2",
                     "2016-10-06T10:00:00-00:00")
