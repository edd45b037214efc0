"""Address groups (Neutron's address-group extension): named lists of CIDRs a rule may use as its remote."""

from __future__ import annotations

from typing import Any

import netaddr

from fermion import validation as v
from fermion.resources.base import BOOL, Attribute, Resource, standard_attributes

ACTIONS = ("add_addresses", "remove_addresses")


def subnet(value: Any) -> str:
    """A CIDR with its prefix length, as Neutron's type:subnet (an IPv4 one spelt exactly as netaddr does)."""
    if not isinstance(value, str) or value != value.strip() or not value:
        raise v.InvalidValue(f"'{value}' is not a valid IP subnet")
    try:
        net = netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        raise v.InvalidValue(f"'{value}' is not a valid IP subnet") from None
    if "/" not in value or (net.version == 4 and str(net) != value):
        raise v.InvalidValue(f"'{value}' isn't a recognized IP subnet cidr, '{net.cidr}' is recommended")
    return value


def subnet_list(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise v.InvalidValue(f"'{value}' is not a list")
    if any(not isinstance(x, str) for x in value):
        raise v.InvalidValue(f"'{value}' is not a list of strings")
    if len(set(value)) != len(value):
        raise v.InvalidValue(f"Duplicate items in the list: '{', '.join(value)}'")
    if len(value) > 10000:
        raise v.InvalidValue("list exceeds maximum of 10000 items")
    return [subnet(x) for x in value]


def normalized(address: str) -> str:
    """How an address group stores a CIDR: host bits cleared (10.0.0.7/24 -> 10.0.0.0/24)."""
    net = netaddr.IPNetwork(address)
    return f"{net.network}/{net.prefixlen}"


_base = tuple(Attribute("description", v.string(1024), default="", post=True, put=True, sort=True,
                        extension="standard-attr-description") if a.name == "description" else a
              for a in standard_attributes())

ADDRESS_GROUP = Resource(
    member="address_group",
    collection="address_groups",
    not_found="AddressGroupNotFound",
    id_label="Address group",
    attributes=_base + (
        Attribute("addresses", subnet_list, default=None, post=True, filter=False,
                  schema={"type": "array", "items": {"type": "string"}}),
        # computed from RBAC: shared with the caller's project or with all. Neutron gives it a default and does
        # not load it for an update: a project the group is shared with is refused an update with 404, not 403
        Attribute("shared", filter=False, extension="rbac-address-group", schema=BOOL, prefetch=False),
    ),
)
