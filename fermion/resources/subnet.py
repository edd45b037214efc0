from fermion import validation as v
from fermion.resources.base import AUTO, BOOL, Attribute, Resource, standard_attributes

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")

_pool = v.dict_of({"start": (v.ip_address, True), "end": (v.ip_address, True)}, "allocation_pool")
_route = v.dict_of({"destination": (v.cidr, True), "nexthop": (v.ip_address, True)}, "host_route")

# Neutron's validator adds the compute prefix to its list character by character, so a service type is
# valid when it starts with "network:", "neutron:" or any one of the characters of "compute:" (clients and
# the upstream API tests rely on it, e.g. "test:type_1")
_SERVICE_PREFIXES = ("network:", "neutron:", *"compute:")


def _service_type(value: object) -> str:
    text = v.string(255)(value)
    if not str(text).startswith(_SERVICE_PREFIXES):
        raise v.InvalidValue(f"Subnet service type {value} does not correspond to a valid device owner")
    return str(text)


def _ip_version(value: object) -> int:
    # Neutron converts "4" to 4 before checking the value
    return int(v.one_of(4, 6)(v.integer()(value)))


SUBNET = Resource(
    member="subnet",
    collection="subnets",
    not_found="SubnetNotFound",
    id_label="Subnet",
    attributes=standard_attributes() + (
        Attribute("network_id", v.uuid_str, post=True, sort=True, schema={"type": "string", "format": "uuid"}),
        Attribute("ip_version", _ip_version, post=True, sort=True, filter_convert=v.integer(),
                  schema={"type": "integer", "enum": [4, 6]}),
        Attribute("cidr", v.cidr, default=AUTO, post=True, sort=True),
        Attribute("gateway_ip", v.nullable_ip, default=AUTO, post=True, put=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("allocation_pools", v.list_of(_pool, max_items=100), default=AUTO, post=True, put=True,
                  filter=False, schema={"type": "array", "items": {"type": "object"}}),
        Attribute("dns_nameservers", v.list_of(v.ip_address, max_items=5, unique=True), default=[],
                  post=True, put=True, filter=False, schema={"type": "array", "items": {"type": "string"}}),
        Attribute("host_routes", v.list_of(_route, max_items=20), default=[], post=True, put=True,
                  filter=False, schema={"type": "array", "items": {"type": "object"}}),
        Attribute("enable_dhcp", v.boolean, default=True, post=True, put=True, sort=True, schema=BOOL),
        Attribute("ipv6_ra_mode", v.one_of(*IPV6_MODES, nullable=True), default=None, post=True, sort=True,
                  schema={"type": ["string", "null"], "enum": [*IPV6_MODES, None]}),
        Attribute("ipv6_address_mode", v.one_of(*IPV6_MODES, nullable=True), default=None, post=True,
                  sort=True, schema={"type": ["string", "null"], "enum": [*IPV6_MODES, None]}),
        Attribute("subnetpool_id", v.nullable_uuid, default=None, post=True, sort=True,
                  schema={"type": ["string", "null"]}),
        Attribute("segment_id", v.nullable_uuid, default=None, post=True, sort=True, extension="segment",
                  schema={"type": ["string", "null"]}),
        Attribute("dns_publish_fixed_ip", v.boolean, default=False, post=True, put=True, filter=False,
                  extension="subnet-dns-publish-fixed-ip", schema=BOOL),
        # the network's, as a filter only (Neutron does not show it)
        Attribute("shared", v.boolean, visible=False, schema={"type": "boolean"}),
        # how large a prefix to take from the pool (write-only, as Neutron's)
        Attribute("prefixlen", v.integer(0, 128), default=AUTO, post=True, visible=False, filter=False,
                  schema={"type": "integer"}),
        Attribute("use_default_subnetpool", v.boolean, default=False, post=True, visible=False, filter=False,
                  extension="default-subnetpools", schema=BOOL),
        Attribute("service_types", v.list_of(_service_type, max_items=100, unique=True), default=[], post=True,
                  put=True, extension="subnet-service-types", filter_convert=_service_type,
                  schema={"type": "array", "items": {"type": "string"}}),
    ),
)
