from fermion import validation as v
from fermion.resources.base import AUTO, Attribute, Resource, standard_attributes
from fermion.resources.qos import FIP_QOS_POLICY_ID
from fermion.validation import dns

_uuid = {"type": "string", "format": "uuid"}
_nullable_uuid = {"type": ["string", "null"], "format": "uuid"}

FLOATINGIP = Resource(
    member="floatingip",
    collection="floatingips",
    not_found="FloatingIPNotFound",
    id_label="Floating IP",
    attributes=standard_attributes(name=False) + (
        Attribute("floating_network_id", v.uuid_str, post=True, sort=True, schema=_uuid),
        Attribute("floating_ip_address", v.ip_address, default=AUTO, post=True, sort=True),
        Attribute("subnet_id", v.nullable_uuid, default=None, post=True, visible=False, filter=False,
                  schema=_nullable_uuid),
        Attribute("port_id", v.nullable_uuid, default=None, post=True, put=True, sort=True,
                  schema=_nullable_uuid),
        Attribute("fixed_ip_address", v.nullable_ip, default=None, post=True, put=True, sort=True,
                  schema={"type": ["string", "null"]}),
        # floating-ip-router-writable: the client may name the router that hosts the NAT (else it is computed)
        Attribute("router_id", v.nullable_uuid, default=None, post=True, put=True, sort=True,
                  filter_convert=str, schema=_nullable_uuid),  # filter values unchecked, as before
        Attribute("status", sort=True),
        Attribute("port_details", filter=False, extension="fip-port-details",
                  schema={"type": ["object", "null"]}),
        # without an external DNS service Neutron accepts these and keeps nothing (they read back empty)
        Attribute("dns_name", dns.fip_dns_name, default="", post=True, filter=False, extension="dns-integration"),
        Attribute("dns_domain", dns.dns_domain, default="", post=True, filter=False, extension="dns-integration"),
        FIP_QOS_POLICY_ID,
        Attribute("port_forwardings", filter=False, extension="expose-port-forwarding-in-fip",
                  schema={"type": "array", "items": {"type": "object"}}),
    ),
)
