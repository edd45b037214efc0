from typing import Any

import netaddr

from fermion import validation as v
from fermion.resources.base import AUTO, BOOL, Attribute, Resource, standard_attributes

_INT = {"type": "integer"}


def _name(value: Any) -> str:
    # Neutron: type:not_empty_string, and a pool's name is required
    text = v.string(255)(value)
    if not text.strip():
        raise v.InvalidValue(f"'{value}' Blank strings are not permitted")
    return str(text)


def _prefixes(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise v.InvalidValue(f"'{value}' is not a list")
    out = []
    for item in value:
        # Neutron's type:subnet: a written-out CIDR; host bits are allowed (the pool keeps the networks)
        cidr = v.cidr(item)
        if netaddr.IPNetwork(cidr).version == 4 and cidr != item:
            raise v.InvalidValue(f"'{item}' isn't a recognized IP subnet cidr, "
                                 f"'{netaddr.IPNetwork(cidr).cidr}' is recommended")
        out.append(str(netaddr.IPNetwork(cidr).cidr))
    return out


_non_negative = v.integer(0)

SUBNETPOOL = Resource(
    member="subnetpool",
    collection="subnetpools",
    not_found="SubnetPoolNotFound",
    id_label="Subnet pool",
    attributes=tuple(a for a in standard_attributes() if a.name != "name") + (
        Attribute("name", _name, post=True, put=True, sort=True),
        Attribute("prefixes", _prefixes, post=True, put=True, filter=False,
                  schema={"type": "array", "items": {"type": "string"}}),
        Attribute("default_quota", v.nullable(_non_negative), default=None, post=True, put=True, sort=True,
                  schema={"type": ["integer", "null"]}),
        Attribute("ip_version", sort=True, filter_convert=v.integer(), schema=_INT),
        Attribute("default_prefixlen", _non_negative, default=AUTO, post=True, put=True, sort=True,
                  filter_convert=v.integer(), schema=_INT),
        Attribute("min_prefixlen", _non_negative, default=AUTO, post=True, put=True, sort=True,
                  filter_convert=v.integer(), schema=_INT),
        Attribute("max_prefixlen", _non_negative, default=AUTO, post=True, put=True, sort=True,
                  filter_convert=v.integer(), schema=_INT),
        Attribute("is_default", v.boolean, default=False, post=True, put=True, sort=True,
                  policy="rule:admin_only", extension="default-subnetpools", schema=BOOL),
        Attribute("shared", v.boolean, default=False, post=True, sort=True, policy="rule:admin_only",
                  schema=BOOL),
        Attribute("address_scope_id", v.nullable_uuid, default=None, post=True, put=True, sort=True,
                  extension="address-scope", schema={"type": ["string", "null"]}),
    ),
)
