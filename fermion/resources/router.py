from typing import Any

from fermion import validation as v
from fermion.resources.availability_zone import zone_attributes
from fermion.resources.base import ADMIN_ONLY, AUTO, BOOL, Attribute, Resource, standard_attributes

_fixed_ip = v.dict_of({"subnet_id": (v.uuid_str, False), "ip_address": (v.ip_address, False)},
                      "external_fixed_ip")
_GATEWAY = v.dict_of({
    "network_id": (v.uuid_str, True),
    "enable_snat": (v.boolean, False),
    "external_fixed_ips": (v.list_of(_fixed_ip, max_items=10), False),
    "qos_policy_id": (v.nullable_uuid, False),  # qos-gateway-ip
}, "external_gateway_info")


def GATEWAY_INFO(value: Any) -> Any:  # noqa: N802 - a validator, named like the others
    """None or {} clears the gateway (what `openstack router unset --external-gateway` sends)."""
    return None if value is None or value == {} else _GATEWAY(value)
ROUTE = v.dict_of({"destination": (v.normalized_cidr, True), "nexthop": (v.ip_address, True)}, "route")
_ROUTE_LIST = v.list_of(ROUTE, max_items=30, unique=True)


def ROUTES(value: Any) -> Any:  # noqa: N802 - a validator, named like the others
    """None means no routes (Neutron converts it to an empty list)."""
    return [] if value is None else _ROUTE_LIST(value)


ROUTER = Resource(
    member="router",
    collection="routers",
    not_found="RouterNotFound",
    id_label="Router",
    attributes=standard_attributes() + (
        Attribute("admin_state_up", v.boolean, default=True, post=True, put=True, sort=True, schema=BOOL),
        Attribute("status", sort=True),
        Attribute("external_gateway_info", GATEWAY_INFO, default=None, post=True, put=True, filter=False,
                  schema={"type": ["object", "null"]}),
        Attribute("routes", ROUTES, default=[], put=True, filter=False, extension="extraroute",
                  schema={"type": "array", "items": {"type": "object"}}),
        # dvr: AUTO (or null) is [l3] router_distributed; changing it needs the router down first (services/dvr.py)
        Attribute("distributed", v.nullable(v.boolean), default=AUTO, post=True, put=True, policy=ADMIN_ONLY,
                  read_policy=ADMIN_ONLY, filter=False, extension="dvr", schema=BOOL),
        # l3-ha: AUTO is [l3] ha; changing it needs the router down first (services/l3_ha.py)
        Attribute("ha", v.boolean, default=AUTO, post=True, put=True, policy=ADMIN_ONLY, read_policy=ADMIN_ONLY,
                  filter=False, extension="l3-ha", schema=BOOL),
        Attribute("flavor_id", v.nullable(v.string(36)), default=None, post=True, sort=True, extension="l3-flavors",
                  schema={"type": ["string", "null"]}),
        Attribute("conntrack_helpers", filter=False, extension="expose-l3-conntrack-helper",
                  schema={"type": "array", "items": {"type": "object"}}),
    ) + zone_attributes("router_availability_zone"),
)
