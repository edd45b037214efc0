"""A port's bindings (binding-extended): a sub-resource of ports, /ports/{port_id}/bindings[/{host}]."""

from typing import Any

from fermion import validation as v
from fermion.resources.base import Attribute
from fermion.resources.port import VNIC_TYPES


def _profile(value: Any) -> dict[str, Any]:
    return {} if value is None else v.any_dict(value)


COLLECTION = "bindings"
MEMBER = "binding"
# host names the binding (in the URL once it exists); vif_type, vif_details and status are the server's
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("host", v.string(255), post=True),
    Attribute("vnic_type", v.one_of(*VNIC_TYPES), default="normal", post=True, put=True,
              schema={"type": "string", "enum": list(VNIC_TYPES)}),
    Attribute("profile", _profile, default={}, post=True, put=True, filter=False, schema={"type": "object"}),
    Attribute("vif_type"),
    Attribute("vif_details", filter=False, schema={"type": "object"}),
    Attribute("status", schema={"type": "string", "enum": ["ACTIVE", "INACTIVE"]}),
    # accepted on create as Neutron's definition has it (the port's project owns its bindings)
    Attribute("project_id", v.string(255), default=None, post=True, filter=False, visible=False),
    Attribute("tenant_id", v.string(255), default=None, post=True, filter=False, visible=False),
)
BY_NAME = {a.name: a for a in ATTRIBUTES}
FILTERS = frozenset(a.name for a in ATTRIBUTES if a.filter and a.visible)
