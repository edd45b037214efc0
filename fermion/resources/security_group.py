from fermion import validation as v
from fermion.errors import BadRequest
from fermion.resources.base import BOOL, Attribute, Resource, standard_attributes

DIRECTIONS = ("ingress", "egress")
ETHERTYPES = ("IPv4", "IPv6")
_uuid = {"type": "string", "format": "uuid"}
_nullable_uuid = {"type": ["string", "null"], "format": "uuid"}


def _protocol(value: object) -> object:
    """A protocol name or number (0-255); None means any. Names are checked by the service."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise v.InvalidValue(f"'{value}' is not a valid protocol")
    if isinstance(value, int):
        return v.integer(0, 255)(value)
    return v.string(40)(value)


def _port(value: object) -> object:
    """A port number or None; anything else is Neutron's SecurityGroupInvalidPortValue (named as given)."""
    if value is None:
        return None
    try:
        return v.integer(0, 65535)(value)
    except v.InvalidValue:
        raise BadRequest(f"Invalid value for port {value}", type="SecurityGroupInvalidPortValue") from None


def _ethertype(value: object) -> str:
    """IPv4 or IPv6, in any letter case (as Neutron accepts them)."""
    if isinstance(value, str):
        for known in ETHERTYPES:
            if known.lower() == value.lower():
                return known
    raise v.InvalidValue(f"'{value}' is not in {list(ETHERTYPES)}")


def _ip_prefix(value: object) -> object:
    """A CIDR as given; a bare address means the host itself (/32 or /128), as in Neutron."""
    if value is None:
        return None
    if isinstance(value, str) and "/" not in value:
        addr = v.ip_address(value)
        return f"{addr}/{128 if ':' in addr else 32}"
    return v.cidr(value)


SECURITY_GROUP = Resource(
    member="security_group",
    collection="security_groups",
    not_found="SecurityGroupNotFound",
    id_label="Security group",
    attributes=standard_attributes() + (
        Attribute("stateful", v.boolean, default=True, post=True, put=True, sort=True,
                  extension="stateful-security-group", schema=BOOL),
        Attribute("shared", filter_convert=v.boolean, extension="security-groups-shared-filtering", schema=BOOL),
        Attribute("security_group_rules", filter=False, schema={"type": "array", "items": {"type": "object"}}),
    ),
)

SECURITY_GROUP_RULE = Resource(
    member="security_group_rule",
    collection="security_group_rules",
    not_found="SecurityGroupRuleNotFound",
    id_label="Security group rule",
    tags=False,
    attributes=standard_attributes(name=False, tags=False) + (
        Attribute("security_group_id", v.uuid_str, post=True, sort=True, schema=_uuid),
        Attribute("direction", v.one_of(*DIRECTIONS), post=True, sort=True,
                  schema={"type": "string", "enum": list(DIRECTIONS)}),
        Attribute("ethertype", _ethertype, default="IPv4", post=True, sort=True,
                  schema={"type": "string", "enum": list(ETHERTYPES)}),
        Attribute("protocol", _protocol, default=None, post=True, sort=True,
                  filter_convert=v.string(40), schema={"type": ["string", "integer", "null"]}),
        Attribute("port_range_min", _port, default=None, post=True, sort=True,
                  filter_convert=v.integer(0, 65535), schema={"type": ["integer", "null"]}),
        Attribute("port_range_max", _port, default=None, post=True, sort=True,
                  filter_convert=v.integer(0, 65535), schema={"type": ["integer", "null"]}),
        Attribute("remote_ip_prefix", _ip_prefix, default=None, post=True, sort=True,
                  filter_convert=v.cidr, schema={"type": ["string", "null"]}),
        # any string, as Neutron: one naming no group the caller may use is a 404 SecurityGroupNotFound
        Attribute("remote_group_id", v.nullable(v.string(255)), default=None, post=True, sort=True,
                  filter_convert=v.uuid_str, schema=_nullable_uuid),
        Attribute("remote_address_group_id", v.nullable_uuid, default=None, post=True, sort=True,
                  filter_convert=v.uuid_str, extension="security-groups-remote-address-group",
                  schema=_nullable_uuid),
        Attribute("normalized_cidr", sort=True, filter_convert=v.cidr, extension="security-groups-normalized-cidr",
                  schema={"type": ["string", "null"]}),
        Attribute("belongs_to_default_sg", filter_convert=v.boolean,
                  extension="security-groups-rules-belongs-to-default-sg", schema=BOOL),
    ),
)

PARENT = "PARENT"  # a template's remote group meaning "the group being created"


def _template_remote_group(value: object) -> object:
    if value is None or value == PARENT:
        return value
    return v.uuid_str(value)


DEFAULT_SECURITY_GROUP_RULE = Resource(
    member="default_security_group_rule",
    collection="default_security_group_rules",
    not_found="DefaultSecurityGroupRuleNotFound",
    id_label="Default Security Group rule",
    tags=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=_uuid),
        # templates belong to no project: the caller's is accepted and ignored (Neutron hides it too)
        Attribute("project_id", v.string(255), default=None, post=True, visible=False, filter=False),
        Attribute("tenant_id", v.string(255), default=None, post=True, visible=False, filter=False),
        Attribute("description", v.string(1024), default="", post=True),
        Attribute("remote_group_id", _template_remote_group, default=None, post=True, sort=True,
                  filter_convert=_template_remote_group, schema={"type": ["string", "null"]}),
        Attribute("remote_address_group_id", v.nullable_uuid, default=None, post=True, sort=True,
                  filter_convert=v.uuid_str, schema=_nullable_uuid),
        Attribute("direction", v.one_of(*DIRECTIONS), post=True, sort=True,
                  schema={"type": "string", "enum": list(DIRECTIONS)}),
        Attribute("protocol", _protocol, default=None, post=True, sort=True,
                  filter_convert=v.string(40), schema={"type": ["string", "integer", "null"]}),
        Attribute("port_range_min", _port, default=None, post=True, sort=True,
                  filter_convert=v.integer(0, 65535), schema={"type": ["integer", "null"]}),
        Attribute("port_range_max", _port, default=None, post=True, sort=True,
                  filter_convert=v.integer(0, 65535), schema={"type": ["integer", "null"]}),
        Attribute("ethertype", _ethertype, default="IPv4", post=True, sort=True,
                  schema={"type": "string", "enum": list(ETHERTYPES)}),
        Attribute("remote_ip_prefix", _ip_prefix, default=None, post=True, sort=True,
                  filter_convert=v.cidr, schema={"type": ["string", "null"]}),
        Attribute("used_in_default_sg", v.boolean, default=False, post=True, filter_convert=v.boolean,
                  schema=BOOL),
        Attribute("used_in_non_default_sg", v.boolean, default=True, post=True, filter_convert=v.boolean,
                  schema=BOOL),
    ),
)
