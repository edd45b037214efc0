"""Neutron's default policy (the secure-RBAC defaults, ``enforce_new_defaults`` on) for the base rules,
networks, subnets, ports, routers, floating IPs, security groups, RBAC policies, their tags and quotas.

Roles: ``admin`` (everything), ``member`` (write in its own project), ``reader`` (read its own project),
``service`` (service-to-service calls, e.g. Nova binding ports).  A project sees its own resources plus
shared and external networks; a port is also visible to, and partly manageable by, the owner of its
network (target attribute ``network:project_id``, or ``network:tenant_id``).  Attribute-level rules
(``ACTION:ATTR``) apply only when the request sets, or the response shows, that attribute.

The values are the rule strings an operator sees in Neutron's generated policy reference, so a
``policy.yaml`` written for Neutron overrides them name for name.
"""

from __future__ import annotations

from fermion.policy.fwaas import FWAAS


def _any(*checks: str) -> str:
    return " or ".join(checks)


ADMIN = "rule:admin_only"
SERVICE = "rule:service_api"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
NET_OWNER_MEMBER = "role:member and rule:network_owner"
NET_OWNER_READER = "role:reader and rule:network_owner"
PARENT_OWNER_MEMBER = "role:member and rule:ext_parent_owner"
PARENT_OWNER_READER = "role:reader and rule:ext_parent_owner"

ADMIN_OR_SERVICE = f"({ADMIN}) or ({SERVICE})"
ADMIN_OR_PROJECT_MEMBER = f"({ADMIN}) or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"({ADMIN}) or ({PROJECT_READER})"
ADMIN_OR_NET_OWNER_MEMBER = f"({ADMIN}) or ({NET_OWNER_MEMBER})"
ADMIN_OR_PARENT_OWNER_MEMBER = f"({ADMIN}) or ({PARENT_OWNER_MEMBER})"
ADMIN_OR_PARENT_OWNER_READER = f"({ADMIN}) or ({PARENT_OWNER_READER})"

BASE: dict[str, str] = {
    "context_is_admin": "role:admin",
    "context_with_global_access": "!",
    "service_api": "role:service",
    "owner": "project_id:%(project_id)s",
    "admin_or_owner": "rule:context_is_admin or rule:owner",
    "context_is_advsvc": "role:advsvc",
    "admin_or_network_owner": "rule:context_is_admin or project_id:%(network:project_id)s",
    "admin_owner_or_network_owner": "rule:owner or rule:admin_or_network_owner",
    "network_owner": "project_id:%(network:project_id)s",
    "admin_only": "rule:context_is_admin",
    "regular_user": "",
    "shared": "field:networks:shared=True",
    "external": "field:networks:router:external=True",
    "network_device": "field:port:device_owner=~^network:",
    "admin_or_data_plane_int": "rule:context_is_admin or role:data_plane_integrator",
    "default": "rule:admin_or_owner",
    "admin_or_ext_parent_owner": "rule:context_is_admin or project_id:%(ext_parent:project_id)s",
    "ext_parent_owner": "project_id:%(ext_parent:project_id)s",
    "sg_owner": "project_id:%(security_group:project_id)s",
    "shared_security_group": "field:security_groups:shared=True",
    "restrict_wildcard": "(not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*) "
                         "or rule:admin_only",
    "shared_subnetpools": "field:subnetpools:shared=True",
    "shared_address_scopes": "field:address_scopes:shared=True",
}

_NET_ADMIN_ATTRS = (
    "shared",
    "router:external",
    "is_default",
    "segments",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
)

NETWORKS: dict[str, str] = {
    "create_network": ADMIN_OR_PROJECT_MEMBER,
    **{f"create_network:{a}": ADMIN for a in _NET_ADMIN_ATTRS},
    "create_network:port_security_enabled": ADMIN_OR_PROJECT_MEMBER,
    "get_network": _any(ADMIN_OR_PROJECT_READER, "rule:shared", "rule:external", "rule:context_is_advsvc"),
    "get_network:router:external": "rule:regular_user",
    "get_network:segments": ADMIN,
    "get_network:provider:network_type": ADMIN,
    "get_network:provider:physical_network": ADMIN,
    "get_network:provider:segmentation_id": ADMIN,
    "update_network": ADMIN_OR_PROJECT_MEMBER,
    **{f"update_network:{a}": ADMIN for a in _NET_ADMIN_ATTRS},
    "update_network:port_security_enabled": ADMIN_OR_PROJECT_MEMBER,
    "delete_network": ADMIN_OR_PROJECT_MEMBER,
}

SUBNETS: dict[str, str] = {
    "create_subnet": ADMIN_OR_NET_OWNER_MEMBER,
    "create_subnet:segment_id": ADMIN,
    "create_subnet:service_types": ADMIN,
    "get_subnet": _any(ADMIN_OR_PROJECT_READER, "rule:shared"),
    "get_subnet:segment_id": ADMIN,
    "update_subnet": _any(ADMIN_OR_PROJECT_MEMBER, NET_OWNER_MEMBER),
    "update_subnet:segment_id": ADMIN,
    "update_subnet:service_types": ADMIN,
    "delete_subnet": _any(ADMIN_OR_PROJECT_MEMBER, NET_OWNER_MEMBER),
}

_NET_OWNER_OR_PRIVILEGED = _any(ADMIN_OR_SERVICE, NET_OWNER_MEMBER)
_NET_OWNER_PRIVILEGED_OR_SHARED = _any(ADMIN_OR_SERVICE, NET_OWNER_MEMBER, "rule:shared")
_NET_OWNER_OR_ADMIN = _any(ADMIN, NET_OWNER_MEMBER)
_PROJECT_MEMBER_OR_PRIVILEGED = _any(ADMIN_OR_SERVICE, PROJECT_MEMBER)

PORTS: dict[str, str] = {
    "create_port": _PROJECT_MEMBER_OR_PRIVILEGED,
    "create_port:device_owner": _any("not rule:network_device", _NET_OWNER_OR_PRIVILEGED),
    "create_port:mac_address": _NET_OWNER_OR_PRIVILEGED,
    "create_port:fixed_ips": _NET_OWNER_PRIVILEGED_OR_SHARED,
    "create_port:fixed_ips:ip_address": _NET_OWNER_OR_PRIVILEGED,
    "create_port:fixed_ips:subnet_id": _NET_OWNER_PRIVILEGED_OR_SHARED,
    "create_port:port_security_enabled": _NET_OWNER_OR_PRIVILEGED,
    "create_port:binding:host_id": ADMIN_OR_SERVICE,
    "create_port:binding:profile": ADMIN_OR_SERVICE,
    "create_port:binding:vnic_type": _PROJECT_MEMBER_OR_PRIVILEGED,
    "create_port:allowed_address_pairs": _NET_OWNER_OR_ADMIN,
    "create_port:allowed_address_pairs:mac_address": _NET_OWNER_OR_ADMIN,
    "create_port:allowed_address_pairs:ip_address": _NET_OWNER_OR_ADMIN,
    "get_port": _any(ADMIN_OR_SERVICE, NET_OWNER_READER, PROJECT_READER),
    "get_port:binding:vif_type": ADMIN_OR_SERVICE,
    "get_port:binding:vif_details": ADMIN_OR_SERVICE,
    "get_port:binding:host_id": ADMIN_OR_SERVICE,
    "get_port:binding:profile": ADMIN_OR_SERVICE,
    "get_port:resource_request": ADMIN_OR_SERVICE,
    "update_port": _PROJECT_MEMBER_OR_PRIVILEGED,
    "update_port:device_owner": _any("not rule:network_device", _NET_OWNER_OR_PRIVILEGED),
    "update_port:mac_address": ADMIN_OR_SERVICE,
    "update_port:fixed_ips": _NET_OWNER_OR_PRIVILEGED,
    "update_port:fixed_ips:ip_address": _NET_OWNER_OR_PRIVILEGED,
    "update_port:fixed_ips:subnet_id": _NET_OWNER_PRIVILEGED_OR_SHARED,
    "update_port:port_security_enabled": _NET_OWNER_OR_PRIVILEGED,
    "update_port:binding:host_id": ADMIN_OR_SERVICE,
    "update_port:binding:profile": ADMIN_OR_SERVICE,
    "update_port:binding:vnic_type": _PROJECT_MEMBER_OR_PRIVILEGED,
    "update_port:allowed_address_pairs": _NET_OWNER_OR_ADMIN,
    "update_port:allowed_address_pairs:mac_address": _NET_OWNER_OR_ADMIN,
    "update_port:allowed_address_pairs:ip_address": _NET_OWNER_OR_ADMIN,
    "update_port:data_plane_status": _any(ADMIN, "role:data_plane_integrator"),
    "delete_port": _any(ADMIN_OR_SERVICE, PROJECT_MEMBER, NET_OWNER_MEMBER),
    # port-hints and port-trusted-vif (also derived from the definitions; here as Neutron names them)
    "create_port:hints": ADMIN,
    "update_port:hints": ADMIN,
    "get_port:hints": ADMIN,
    "create_port:trusted": ADMIN,
    "update_port:trusted": ADMIN,
    "get_port:trusted": ADMIN,
    # binding-extended: /ports/{port_id}/bindings (Nova's live migration, as the service user)
    "get_port_binding": ADMIN_OR_SERVICE,
    "create_port_binding": ADMIN_OR_SERVICE,
    "update_port_binding": ADMIN_OR_SERVICE,
    "delete_port_binding": ADMIN_OR_SERVICE,
    "activate": ADMIN_OR_SERVICE,
}

_GW = "external_gateway_info"
ROUTERS: dict[str, str] = {
    "create_router": ADMIN_OR_PROJECT_MEMBER,
    f"create_router:{_GW}": ADMIN_OR_PROJECT_MEMBER,
    f"create_router:{_GW}:network_id": ADMIN_OR_PROJECT_MEMBER,
    f"create_router:{_GW}:enable_snat": ADMIN,
    f"create_router:{_GW}:external_fixed_ips": ADMIN,
    "create_router:distributed": ADMIN,
    "create_router:ha": ADMIN,
    "get_router": ADMIN_OR_PROJECT_READER,
    "get_router:distributed": ADMIN,
    "get_router:ha": ADMIN,
    "update_router": ADMIN_OR_PROJECT_MEMBER,
    f"update_router:{_GW}": ADMIN_OR_PROJECT_MEMBER,
    f"update_router:{_GW}:network_id": ADMIN_OR_PROJECT_MEMBER,
    f"update_router:{_GW}:enable_snat": ADMIN,
    f"update_router:{_GW}:external_fixed_ips": ADMIN,
    "update_router:distributed": ADMIN,
    "update_router:ha": ADMIN,
    "delete_router": ADMIN_OR_PROJECT_MEMBER,
    "add_router_interface": ADMIN_OR_PROJECT_MEMBER,
    "remove_router_interface": ADMIN_OR_PROJECT_MEMBER,
    "add_extraroutes": ADMIN_OR_PROJECT_MEMBER,
    "remove_extraroutes": ADMIN_OR_PROJECT_MEMBER,
}

FLOATINGIPS: dict[str, str] = {
    "create_floatingip": ADMIN_OR_PROJECT_MEMBER,
    "create_floatingip:floating_ip_address": ADMIN,
    "create_floatingip:router_id": ADMIN_OR_PROJECT_MEMBER,
    "get_floatingip": ADMIN_OR_PROJECT_READER,
    "update_floatingip": ADMIN_OR_PROJECT_MEMBER,
    "update_floatingip:router_id": ADMIN_OR_PROJECT_MEMBER,
    "delete_floatingip": ADMIN_OR_PROJECT_MEMBER,
    "get_floatingip_pool": ADMIN_OR_PROJECT_READER,
}

# Rules: the owner of the group a rule belongs to manages it (target security_group:project_id).
SECURITY_GROUPS: dict[str, str] = {
    "create_security_group": ADMIN_OR_PROJECT_MEMBER,
    "get_security_group": _any(ADMIN_OR_PROJECT_READER, "rule:shared_security_group"),
    "update_security_group": ADMIN_OR_PROJECT_MEMBER,
    "delete_security_group": ADMIN_OR_PROJECT_MEMBER,
    "create_security_group_rule": _any(ADMIN_OR_PROJECT_MEMBER, "role:member and rule:sg_owner"),
    "get_security_group_rule": _any(ADMIN_OR_PROJECT_READER, "role:reader and rule:sg_owner"),
    "delete_security_group_rule": _any(ADMIN_OR_PROJECT_MEMBER, "role:member and rule:sg_owner"),
}

ADDRESS_GROUPS: dict[str, str] = {
    "shared_address_groups": "field:address_groups:shared=True",
    "create_address_group": ADMIN_OR_PROJECT_MEMBER,
    "get_address_group": _any(ADMIN_OR_PROJECT_READER, "rule:shared_address_groups"),
    "update_address_group": ADMIN_OR_PROJECT_MEMBER,
    "delete_address_group": ADMIN_OR_PROJECT_MEMBER,
    "add_addresses": ADMIN_OR_PROJECT_MEMBER,
    "remove_addresses": ADMIN_OR_PROJECT_MEMBER,
}

# Templates belong to no project: any reader may read them, only an admin manage them.
DEFAULT_SECURITY_GROUP_RULES: dict[str, str] = {
    "create_default_security_group_rule": ADMIN,
    "get_default_security_group_rule": "role:reader",
    "delete_default_security_group_rule": ADMIN,
}

# Pools and scopes are readable by the projects they are shared with (RBAC access_as_shared, or all for "*").
ADDRESSING: dict[str, str] = {
    "create_address_scope": ADMIN_OR_PROJECT_MEMBER,
    "create_address_scope:shared": ADMIN,
    "get_address_scope": _any(ADMIN_OR_PROJECT_READER, "rule:shared_address_scopes"),
    "update_address_scope": ADMIN_OR_PROJECT_MEMBER,
    "update_address_scope:shared": ADMIN,
    "delete_address_scope": ADMIN_OR_PROJECT_MEMBER,
    "create_subnetpool": ADMIN_OR_PROJECT_MEMBER,
    "create_subnetpool:shared": ADMIN,
    "create_subnetpool:is_default": ADMIN,
    "get_subnetpool": _any(ADMIN_OR_PROJECT_READER, "rule:shared_subnetpools"),
    "update_subnetpool": ADMIN_OR_PROJECT_MEMBER,
    "update_subnetpool:is_default": ADMIN,
    "delete_subnetpool": ADMIN_OR_PROJECT_MEMBER,
    "onboard_network_subnets": ADMIN_OR_PROJECT_MEMBER,
    "add_prefixes": ADMIN_OR_PROJECT_MEMBER,
    "remove_prefixes": ADMIN_OR_PROJECT_MEMBER,
    "get_network_ip_availability": ADMIN,
}

# Tags: the target is the tagged resource seen as ``ext_parent`` (ext_parent:project_id).
TAGS: dict[str, str] = {
    f"{verb}_{collection}_tags": (
        ADMIN_OR_PARENT_OWNER_READER if verb == "get" else ADMIN_OR_PARENT_OWNER_MEMBER
    )
    for collection in ("networks", "subnets", "ports", "routers", "floatingips", "security_groups", "segments",
                       "network_segment_ranges", "address_groups", "address_scopes", "subnetpools", "trunks")
    for verb in ("get", "create", "update", "delete")
}

# Conntrack helpers: the router is the parent (target ext_parent:project_id).
CONNTRACK_HELPERS: dict[str, str] = {
    "create_router_conntrack_helper": ADMIN_OR_PARENT_OWNER_MEMBER,
    "get_router_conntrack_helper": ADMIN_OR_PARENT_OWNER_READER,
    "update_router_conntrack_helper": ADMIN_OR_PARENT_OWNER_MEMBER,
    "delete_router_conntrack_helper": ADMIN_OR_PARENT_OWNER_MEMBER,
}

# QoS: policies are the operator's to write; a project reads its own and those shared with it; a rule's
# parent is its policy (ext_parent:project_id). Rule types are listed to admins only (others get none).
QOS: dict[str, str] = {
    "shared_qos_policy": "field:policies:shared=True",
    "get_policy": _any(ADMIN_OR_PROJECT_READER, "rule:shared_qos_policy"),
    "create_policy": ADMIN,
    "update_policy": ADMIN,
    "delete_policy": ADMIN,
    "get_rule_type": "role:admin",
    **{f"get_policy_{rule}_rule": _any(ADMIN_OR_PARENT_OWNER_READER, "role:reader and rule:shared_qos_policy")
       for rule in ("bandwidth_limit", "dscp_marking", "minimum_bandwidth")},
    **{f"{verb}_policy_{rule}_rule": ADMIN for verb in ("create", "update", "delete")
       for rule in ("bandwidth_limit", "dscp_marking", "minimum_bandwidth")},
    **{f"{verb}_policies_tags": ADMIN_OR_PARENT_OWNER_READER if verb == "get" else ADMIN
       for verb in ("get", "create", "update", "delete")},
}

# Floating IP port forwardings: the floating IP is the parent (target ext_parent:project_id).
PORT_FORWARDINGS: dict[str, str] = {
    "create_floatingip_port_forwarding": ADMIN_OR_PARENT_OWNER_MEMBER,
    "get_floatingip_port_forwarding": ADMIN_OR_PARENT_OWNER_READER,
    "update_floatingip_port_forwarding": ADMIN_OR_PARENT_OWNER_MEMBER,
    "delete_floatingip_port_forwarding": ADMIN_OR_PARENT_OWNER_MEMBER,
}

# Trunks: the owner's (or an admin's); subports are read and changed as the trunk is.
TRUNKS: dict[str, str] = {
    "create_trunk": ADMIN_OR_PROJECT_MEMBER,
    "get_trunk": ADMIN_OR_PROJECT_READER,
    "update_trunk": ADMIN_OR_PROJECT_MEMBER,
    "delete_trunk": ADMIN_OR_PROJECT_MEMBER,
    "get_subports": ADMIN_OR_PROJECT_READER,
    "add_subports": ADMIN_OR_PROJECT_MEMBER,
    "remove_subports": ADMIN_OR_PROJECT_MEMBER,
}

# Flavors are listed by anyone; profiles, bindings and all writes are admin business.
FLAVORS: dict[str, str] = {
    "create_flavor": ADMIN,
    "get_flavor": "rule:regular_user",
    "update_flavor": ADMIN,
    "delete_flavor": ADMIN,
    "create_service_profile": ADMIN,
    "get_service_profile": ADMIN,
    "update_service_profile": ADMIN,
    "delete_service_profile": ADMIN,
    "create_flavor_service_profile": ADMIN,
    "get_flavor_service_profile": ADMIN,
    "delete_flavor_service_profile": ADMIN,
    "get_flavor_next_provider": ADMIN,
    "get_service_provider": "rule:regular_user",
}

# GET may build the topology: a member's (or an admin's) business, as the DELETE.
AUTO_ALLOCATED_TOPOLOGY: dict[str, str] = {
    "get_auto_allocated_topology": ADMIN_OR_PROJECT_MEMBER,
    "delete_auto_allocated_topology": ADMIN_OR_PROJECT_MEMBER,
}

QUOTAS: dict[str, str] = {
    "get_quota": ADMIN_OR_PROJECT_READER,
    "update_quota": ADMIN,
    "delete_quota": ADMIN,
}

# Segments and segment ranges are the operator's (Neutron: admin only).
SEGMENTS: dict[str, str] = {
    f"{verb}_{member}": ADMIN
    for member in ("segment", "network_segment_range")
    for verb in ("create", "get", "update", "delete")
}

# RBAC policies belong to the project that made them; only an admin shares with every project ('*').
_NOT_WILDCARD = "(not field:rbac_policy:target_tenant=* and not field:rbac_policy:target_project=*)"
RBAC: dict[str, str] = {
    "create_rbac_policy": ADMIN_OR_PROJECT_MEMBER,
    "create_rbac_policy:target_tenant": _any(ADMIN, _NOT_WILDCARD),
    "update_rbac_policy": ADMIN_OR_PROJECT_MEMBER,
    "update_rbac_policy:target_tenant": _any(ADMIN, _NOT_WILDCARD),
    "get_rbac_policy": ADMIN_OR_PROJECT_READER,
    "delete_rbac_policy": ADMIN_OR_PROJECT_MEMBER,
}

# Agents and their scheduling are operator business (Neutron: admin only).
AGENTS: dict[str, str] = {
    "get_agent": ADMIN,
    "update_agent": ADMIN,
    "delete_agent": ADMIN,
    "get_dhcp-networks": ADMIN,
    "create_dhcp-network": ADMIN,
    "delete_dhcp-network": ADMIN,
    "get_dhcp-agents": ADMIN,
    "get_l3-routers": ADMIN,
    "create_l3-router": ADMIN,
    "delete_l3-router": ADMIN,
    "get_l3-agents": ADMIN,
    # the zones are no secret: every project picks hints from them
    "get_availability_zone": ADMIN_OR_PROJECT_READER,
}

# Metering is the operator's (Neutron: admin only); a label's counters are read as the label is.
METERING: dict[str, str] = {
    f"{verb}_{member}": ADMIN
    for member in ("metering_label", "metering_label_rule")
    for verb in ("create", "get", "delete")
} | {"update_metering_label_rule": ADMIN}

# Trace (fermion-trace): a project traces between its own ports (and the external network), an admin anything.
# The target is each endpoint port's project (the caller's own for `external`).
# Probing (`probe: true`) asks the hosts' agents and answers with host names, kernel devices, underlay addresses
# and the entries of shared networks and sets: the operator's, as binding:host_id is in Neutron.
TRACE: dict[str, str] = {
    "create_trace": ADMIN_OR_PROJECT_READER,
    "create_trace:probe": ADMIN,
}

BASE_RULES: dict[str, str] = {**BASE, **NETWORKS, **SUBNETS, **PORTS, **ROUTERS, **FLOATINGIPS,
                              **SECURITY_GROUPS, **ADDRESS_GROUPS, **DEFAULT_SECURITY_GROUP_RULES, **RBAC, **TAGS,
                              **QUOTAS, **AGENTS, **SEGMENTS, **CONNTRACK_HELPERS, **FLAVORS, **AUTO_ALLOCATED_TOPOLOGY,
                              **ADDRESSING, **METERING, **FWAAS, **QOS, **PORT_FORWARDINGS,
                              **TRUNKS, **TRACE}
