from fermion import validation as v
from fermion.resources.availability_zone import zone_attributes
from fermion.resources.base import ADMIN_ONLY, AUTO, BOOL, Attribute, Resource, standard_attributes
from fermion.resources.qos import QOS_POLICY_ID
from fermion.validation import dns

_segment = v.dict_of({
    "provider:network_type": (v.string(255), True),
    "provider:physical_network": (v.nullable(v.string(64)), False),
    "provider:segmentation_id": (v.nullable(v.integer(0, 2**32 - 1)), False),
}, "segment")

NETWORK = Resource(
    member="network",
    collection="networks",
    not_found="NetworkNotFound",
    id_label="Network",
    attributes=standard_attributes() + (
        Attribute("admin_state_up", v.boolean, default=True, post=True, put=True, sort=True, schema=BOOL),
        Attribute("status", sort=True),
        Attribute("subnets", filter=False, schema={"type": "array", "items": {"type": "string"}}),
        Attribute("shared", v.boolean, default=False, post=True, put=True, sort=True, policy=ADMIN_ONLY,
                  schema=BOOL),
        Attribute("mtu", v.integer(0, 65535), default=AUTO, post=True, put=True, sort=True,
                  extension="net-mtu-writable", schema={"type": "integer"}),
        Attribute("router:external", v.boolean, default=False, post=True, put=True, policy=ADMIN_ONLY,
                  extension="external-net", schema=BOOL),
        Attribute("is_default", v.boolean, default=False, post=True, put=True, policy=ADMIN_ONLY,
                  extension="auto-allocated-topology", schema=BOOL),
        Attribute("port_security_enabled", v.boolean, default=True, post=True, put=True,
                  extension="port-security", schema=BOOL),
        Attribute("provider:network_type", v.string(255), default=AUTO, post=True, policy=ADMIN_ONLY,
                  read_policy=ADMIN_ONLY, extension="provider"),
        Attribute("provider:physical_network", v.nullable(v.string(64)), default=AUTO, post=True,
                  policy=ADMIN_ONLY, read_policy=ADMIN_ONLY, extension="provider",
                  schema={"type": ["string", "null"]}),
        Attribute("provider:segmentation_id", v.nullable(v.integer(0, 2**32 - 1)), default=AUTO, post=True,
                  policy=ADMIN_ONLY, read_policy=ADMIN_ONLY, extension="provider",
                  filter_convert=v.integer(0), schema={"type": ["integer", "null"]}),
        # the address scope of the network's subnets' pool, per IP version (address-scope extension)
        Attribute("ipv4_address_scope", filter=False, extension="address-scope",
                  schema={"type": ["string", "null"]}),
        Attribute("ipv6_address_scope", filter=False, extension="address-scope",
                  schema={"type": ["string", "null"]}),
        Attribute("segments", v.list_of(_segment, max_items=16), default=AUTO, post=True, filter=False,
                  policy=ADMIN_ONLY, read_policy=ADMIN_ONLY, extension="multi-provider",
                  schema={"type": "array", "items": {"type": "object"}}),
        Attribute("dns_domain", dns.dns_domain, default="", post=True, put=True, filter=False,
                  extension="dns-integration"),
        QOS_POLICY_ID,
    ) + zone_attributes("network_availability_zone"),
)
