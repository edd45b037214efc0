from fermion import validation as v
from fermion.resources.base import BOOL, Attribute, Resource, standard_attributes


def ip_version(value: object) -> int:
    # Neutron converts "4" to 4 before checking the value
    return int(v.one_of(4, 6)(v.integer()(value)))


ADDRESS_SCOPE = Resource(
    member="address_scope",
    collection="address_scopes",
    not_found="AddressScopeNotFound",
    id_label="Address scope",
    attributes=standard_attributes() + (
        Attribute("shared", v.boolean, default=False, post=True, put=True, sort=True, policy="rule:admin_only",
                  schema=BOOL),
        Attribute("ip_version", ip_version, post=True, sort=True, filter_convert=v.integer(),
                  schema={"type": "integer", "enum": [4, 6]}),
    ),
)
