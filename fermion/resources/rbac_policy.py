"""RBAC policies: a project lets other projects (or every project, '*') use one of its objects.

Not a standard-attribute resource in Neutron: no name, description, tags, timestamps or revision.
Valid object types and their actions are declared with their behaviour in services/rbac.py.
"""

from fermion import validation as v
from fermion.resources.base import AUTO, Attribute, Resource

_uuid = {"type": "string", "format": "uuid"}

RBAC_POLICY = Resource(
    member="rbac_policy",
    collection="rbac_policies",
    not_found="RbacPolicyNotFound",
    id_label="RBAC policy",
    tags=False,
    attributes=(
        Attribute("id", v.uuid_str, sort=True, schema=_uuid),
        Attribute("project_id", v.string(255), default=AUTO, post=True, sort=True, extension="project-id"),
        Attribute("tenant_id", v.string(255), default=AUTO, post=True, sort=True),
        Attribute("object_type", v.string(255), post=True, sort=True),
        Attribute("object_id", v.uuid_str, post=True, sort=True, schema=_uuid),
        Attribute("action", v.string(255), post=True, sort=True),
        Attribute("target_tenant", v.string(255), post=True, put=True, sort=True),
    ),
)
