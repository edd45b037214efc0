from fermion import validation as v
from fermion.resources.base import ADMIN_ONLY, AUTO, BOOL, Attribute, Resource, standard_attributes

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
        Attribute("mtu", v.integer(68, 65535), default=AUTO, post=True, put=True, sort=True,
                  extension="net-mtu-writable", schema={"type": "integer"}),
        Attribute("router:external", v.boolean, default=False, post=True, put=True, policy=ADMIN_ONLY,
                  extension="external-net", schema=BOOL),
        Attribute("port_security_enabled", v.boolean, default=True, post=True, put=True,
                  extension="port-security", schema=BOOL),
    ),
)
