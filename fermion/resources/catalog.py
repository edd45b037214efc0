"""The catalog: every resource and extension Fermion serves, and what is derived from them."""

from __future__ import annotations

from typing import Any

from fermion.resources import port_binding, trace
from fermion.resources.address_group import ADDRESS_GROUP
from fermion.resources.address_scope import ADDRESS_SCOPE
from fermion.resources.base import Extension, Resource
from fermion.resources.conntrack_helper import EXPOSE_L3_CONNTRACK_HELPER, L3_CONNTRACK_HELPER
from fermion.resources.flavor import FLAVOR, FLAVORS, L3_FLAVORS, SERVICE_PROFILE, SERVICE_TYPE
from fermion.resources.floatingip import FLOATINGIP
from fermion.resources.floatingip_pool import FLOATINGIP_POOLS
from fermion.resources.fwaas import FIREWALL_GROUP, FIREWALL_POLICY, FIREWALL_RULE, FWAAS_V2
from fermion.resources.metering import (
    METERING,
    METERING_LABEL,
    METERING_LABEL_RULE,
    METERING_SOURCE_AND_DESTINATION,
)
from fermion.resources.network import NETWORK
from fermion.resources.port import PORT
from fermion.resources.port_forwarding import EXTENSIONS as PORT_FORWARDING_EXTENSIONS
from fermion.resources.qos import EXTENSIONS as QOS_EXTENSIONS
from fermion.resources.qos import QOS_POLICY
from fermion.resources.rbac_policy import RBAC_POLICY
from fermion.resources.router import ROUTER
from fermion.resources.security_group import DEFAULT_SECURITY_GROUP_RULE, SECURITY_GROUP, SECURITY_GROUP_RULE
from fermion.resources.segment import NETWORK_SEGMENT_RANGE, SEGMENT
from fermion.resources.subnet import SUBNET
from fermion.resources.subnetpool import SUBNETPOOL
from fermion.resources.trace import TRACE
from fermion.resources.trunk import EXTENSIONS as TRUNK_EXTENSIONS
from fermion.resources.trunk import TRUNK

RESOURCES: dict[str, Resource] = {r.collection: r for r in (NETWORK, SUBNET, PORT, ROUTER, FLOATINGIP,
                                                           SECURITY_GROUP, SECURITY_GROUP_RULE, SEGMENT,
                                                           NETWORK_SEGMENT_RANGE, ADDRESS_GROUP,
                                                           DEFAULT_SECURITY_GROUP_RULE, FLAVOR, SERVICE_PROFILE,
                                                           RBAC_POLICY, ADDRESS_SCOPE, SUBNETPOOL, METERING_LABEL,
                                                           METERING_LABEL_RULE, FIREWALL_RULE,
                                                           FIREWALL_POLICY, FIREWALL_GROUP, QOS_POLICY,
                                                           TRUNK)}

# Advertised only when fully implemented (DESIGN 3.1).
EXTENSIONS: tuple[Extension, ...] = (
    Extension("project-id", "project_id field enabled", "Extension that indicates that project_id is enabled."),
    Extension("standard-attr-description", "standard-attr-description",
              "Extension to add descriptions to standard attributes"),
    Extension("standard-attr-timestamp", "Resource timestamps",
              "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard "
              "attributes."),
    Extension("standard-attr-revisions", "Resource revision numbers",
              "This extension will display the revision number of neutron resources."),
    Extension("revision-if-match", "If-Match constraints based on revision_number",
              "Extension indicating that If-Match based on revision_number is supported."),
    Extension("standard-attr-tag", "Tag support for resources with standard attribute: network, subnet, port",
              "Enables to set tag on resources with standard attribute."),
    Extension("tag-creation", "Tag support for resources during create",
              "Enables to set tags on resources during creation."),
    Extension("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    Extension("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    Extension("filter-validation", "Filter parameters validation",
              "Provides validation on filtering parameters."),
    Extension("empty-string-filtering", "Empty String Filtering Extension",
              "Allow filtering by attributes with empty string value"),
    Extension("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    Extension("net-mtu-writable", "Network MTU (writable)",
              "Provides a writable MTU attribute for a network resource."),
    Extension("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    Extension("port-security", "Port Security", "Provides port security"),
    Extension("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    Extension("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    Extension("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    Extension("multi-provider", "Multi Provider Network",
              "Expose mapping of virtual networks to multiple physical networks"),
    Extension("quotas", "Quota management support", "Expose functions for quotas management per project"),
    Extension("quota_details", "Quota details management support",
              "Expose functions for quotas usage statistics per project"),
    Extension("quota-check-limit", "Quota engine limit check",
              "Support for checking the resource usage before applying a new quota limit"),
    Extension("agent", "agent", "The agent management extension."),
    Extension("dhcp_agent_scheduler", "DHCP Agent Scheduler", "Schedule networks among dhcp agents"),
    Extension("router", "Neutron L3 Router",
              "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external "
              "networks via a NAT gateway."),
    Extension("ext-gw-mode", "Neutron L3 Configurable external gateway mode",
              "Extension of the router abstraction for specifying whether SNAT should occur on the external "
              "gateway"),
    Extension("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    Extension("extraroute-atomic", "Atomically add/remove extra routes",
              "Edit extra routes of a router on server side by atomically adding/removing extra routes"),
    Extension("l3_agent_scheduler", "L3 Agent Scheduler", "Schedule routers among l3 agents"),
    Extension("l3-ha", "HA Router extension", "Adds HA capability to routers.", "2014-04-26T00:00:00-00:00"),
    Extension("dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers.",
              "2014-06-1T10:00:00-00:00"),
    Extension("router-admin-state-down-before-update", "Enforce Router's Admin State Down Before Update Extension",
              "Ensure that the admin state of a router is DOWN (admin_state_up=False) before updating the "
              "distributed attribute", "2019-07-02T15:56:00"),
    FLOATINGIP_POOLS,
    Extension("auto-allocated-topology", "Auto Allocated Topology Services", "Auto Allocated Topology Services."),
    FLAVORS,
    SERVICE_TYPE,
    L3_FLAVORS,
    Extension("l3-port-ip-change-not-allowed", "Prevent L3 router ports IP address change extension",
              "Prevent change of IP address for some L3 router ports"),
    L3_CONNTRACK_HELPER,
    EXPOSE_L3_CONNTRACK_HELPER,
    Extension("fip-port-details", "Floating IP Port Details Extension",
              "Add port_details attribute to Floating IP resource"),
    Extension("floating-ip-router-writable", "Floating IP Router (writable)",
              "Provides a writable router_id attribute for a floating IP resource.", "2026-08-05T00:00:00-00:00"),
    Extension("security-group", "security-group", "The security groups extension."),
    Extension("availability_zone", "Availability Zone", "The availability zone extension."),
    Extension("availability_zone_filter", "Availability Zone Filter Extension",
              "Add filter parameters to AvailabilityZone resource"),
    Extension("network_availability_zone", "Network Availability Zone",
              "Availability zone support for network."),
    Extension("router_availability_zone", "Router Availability Zone", "Availability zone support for router."),
    Extension("agent_sort_key", "Agent's sort keys", "Enabling the keyword sort_key for sorting in GET requests"),
    Extension("segment", "Segment", "Segments extension."),
    Extension("standard-attr-segment", "Standard Attribute Segment Extension",
              "Add standard attributes to Segment resource"),
    Extension("network-segment-range", "Neutron Network Segment Range",
              "Provides support for the network segment range management"),
    Extension("stateful-security-group", "Stateful security group",
              "Indicates if the security group is stateful or not"),
    Extension("extra_dhcp_opt", "Neutron Extra DHCP options",
              "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified "
              "(e.g. tftp-server, server-ip-address, bootfile-name)", "2013-03-17T12:00:00-00:00"),
    Extension("dns-integration", "DNS Integration", "Provides integration with DNS.", "2015-08-15T18:00:00-00:00"),
    Extension("dns-domain-ports", "dns_domain for ports", "Allows the DNS domain to be specified for a network port.",
              "2017-04-24T10:00:00-00:00"),
    Extension("dns-integration-domain-keywords", "DNS domain names with keywords allowed",
              "Allows to use keywords like <project_id>, <project_name>, <user_id> and <user_name> as DNS domain name",
              "2020-06-15T18:00:00-00:00"),
    Extension("subnet-dns-publish-fixed-ip", "Subnet DNS publish fixed IP",
              "Support choosing to publish DNS records for IPs from a subnet", "2019-05-24T10:00:00-00:00"),
    Extension("address-group", "Address group", "Support address group", "2020-07-15T10:00:00-00:00"),
    Extension("security-groups-remote-address-group", "Remote address group id field for security group rules",
              "Add new field of remote address group id in SG rules", "2020-08-25T10:00:00-00:00"),
    Extension("security-groups-normalized-cidr", "Normalized CIDR field for security group rules",
              "Add new field with normalized remote_ip_prefix cidr in SG rule", "2020-07-28T10:00:00-00:00"),
    Extension("security-groups-shared-filtering", "Security group filtering on the shared field",
              "Support filtering security groups on the shared field", "2021-10-05T09:00:00-00:00"),
    Extension("security-groups-rules-belongs-to-default-sg",
              "Security group rule belongs to the project's default security group",
              "Flag to determine if the security group rule belongs to the project's default security group",
              "2023-05-23T10:00:00-00:00"),
    Extension("security-groups-default-rules", "Default rules for security groups",
              "Configure set of security group rules used as default rules for every new security group",
              "2022-12-19T10:00:00-00:00"),
    Extension("port-security-groups-filtering", "Port filtering on security groups",
              "Provides security groups filtering when listing ports", "2021-05-24T18:00:00-00:00"),
    Extension("rbac-policies", "RBAC Policies",
              "Allows creation and modification of policies that control tenant access to resources."),
    Extension("rbac-security-groups", "Add security_group type to network RBAC",
              "Add security_group type to network RBAC"),
    Extension("rbac-address-scope", "Add address_scope type to RBAC", "Add address_scope type to RBAC",
              "2020-02-12T00:00:00-00:00"),
    Extension("rbac-subnetpool", "Add subnetpool type to RBAC", "Add subnetpool type to RBAC"),
    Extension("rbac-address-group", "Add address_group type to RBAC", "Add address_group type to network RBAC",
              "2021-01-20T00:00:00-00:00"),
    Extension("address-scope", "Address scope", "Address scopes extension."),
    Extension("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"),
    Extension("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the "
              "default."),
    Extension("subnetpool-prefix-ops", "Subnet Pool Prefix Operations",
              "Provides support for adjusting the prefix list of subnet pools"),
    Extension("subnet_onboard", "Subnet Onboard", "Provides support for onboarding subnets into subnet pools"),
    Extension("subnet-service-types", "Subnet service types", "Provides ability to set the subnet service_types "
              "field"),
    Extension("ip-substring-filtering", "IP address substring filtering",
              "Provides IP address substring filtering when listing ports"),
    Extension("network-ip-availability", "Network IP Availability", "Provides IP availability data for each "
              "network and subnet."),
    # ports (issue 15, point 8)
    Extension("binding-extended", "Port Bindings Extended",
              "Expose port bindings of a virtual port to external application", "2017-07-17T10:00:00-00:00"),
    Extension("port-mac-address-regenerate", "Neutron Port MAC address regenerate",
              "Network port MAC address regenerate", "2018-05-03T10:00:00-00:00"),
    Extension("tag-ports-during-bulk-creation", "Tag Ports During Bulk Creation",
              "Allow to tag ports during bulk creation", "2019-12-29T19:00:00-00:00"),
    Extension("uplink-status-propagation", "Uplink status propagation extension",
              "Provides ability to propagate port uplink status.", "2018-05-31T18:00:00-00:00"),
    Extension("uplink-status-propagation-updatable", "Uplink status propagation updatable extension",
              "Provides ability to update the port uplink status.", "2024-09-03T18:00:00-00:00"),
    Extension("data-plane-status", "Port data plane status extension", "Expose status of underlying data plane",
              "2017-01-24T10:00:00-00:00"),
    Extension("port-device-profile", "Port device profile", "Expose the port device profile (Cyborg)",
              "2020-12-17T10:00:00-00:00"),
    Extension("port-numa-affinity-policy", "Port NUMA affinity policy", "Expose the port NUMA affinity policy",
              "2020-07-08T10:00:00-00:00"),
    Extension("port-numa-affinity-policy-socket", 'Port NUMA affinity policy "socket"',
              'Adds "socket" to the supported port NUMA affinity policies', "2024-02-09T10:00:00-00:00"),
    Extension("port-trusted-vif", "Port trusted vif", "Expose port 'trusted' attribute in the API",
              "2024-07-10T10:00:00-00:00"),
    Extension("port-hints", "Port hints", "Backend specific port hints to allow backend specific tuning",
              "2023-01-01T00:00:00-00:00"),
    Extension("port-hardware-offload-type", "Port hardware offload", "Expose port hardware offload extension",
              "2023-05-09T10:00:00-00:00"),
    Extension("ip_allocation", "IP Allocation", "IP allocation extension.", "2016-06-10T23:00:00-00:00"),
    METERING,
    METERING_SOURCE_AND_DESTINATION,
    FWAAS_V2,
    *QOS_EXTENSIONS,
    *PORT_FORWARDING_EXTENSIONS,
    *TRUNK_EXTENSIONS,
    TRACE,
)
EXTENSIONS_BY_ALIAS = {e.alias: e for e in EXTENSIONS}


def attribute_policies() -> dict[str, str]:
    """Attribute-level default rules derived from the definitions (create_network:shared, ...)."""
    rules: dict[str, str] = {}
    for res in RESOURCES.values():
        for attr in res.attributes:
            if attr.policy:
                if attr.post:
                    rules[f"create_{res.member}:{attr.name}"] = attr.policy
                if attr.put:
                    rules[f"update_{res.member}:{attr.name}"] = attr.policy
            if attr.read_policy:
                rules[f"get_{res.member}:{attr.name}"] = attr.read_policy
    return rules


def check_definitions() -> list[str]:
    """Lint the catalog; the contract tests assert this returns nothing."""
    problems = []
    aliases = set(EXTENSIONS_BY_ALIAS)
    for res in RESOURCES.values():
        for attr in res.attributes:
            where = f"{res.collection}.{attr.name}"
            if (attr.post or attr.put) and attr.convert is None:
                problems.append(f"{where}: writable without a validator")
            if attr.extension and attr.extension not in aliases:
                problems.append(f"{where}: extension {attr.extension} is not advertised")
            if attr.sort and not attr.visible:
                problems.append(f"{where}: sortable but hidden")
        if "id" not in res.by_name or ("project_id" not in res.by_name and res.standard):
            problems.append(f"{res.collection}: missing standard attributes")
    return problems


def openapi_document() -> dict[str, Any]:
    """An OpenAPI 3 document for the collections, generated from the catalog."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for res in RESOURCES.values():
        props = {a.name: a.schema for a in res.attributes if a.visible}
        post_props = {a.name: a.schema for a in res.attributes if a.post}
        put_props = {a.name: a.schema for a in res.attributes if a.put}
        required = [a.name for a in res.attributes if a.required]
        cap = res.member.capitalize()
        schemas[cap] = {"type": "object", "properties": props}
        schemas[f"{cap}Create"] = {
            "type": "object", "required": [res.member], "additionalProperties": False,
            "properties": {res.member: {"type": "object", "properties": post_props, "required": required,
                                        "additionalProperties": False}},
        }
        schemas[f"{cap}Update"] = {
            "type": "object", "required": [res.member], "additionalProperties": False,
            "properties": {res.member: {"type": "object", "properties": put_props,
                                        "additionalProperties": False}},
        }
        ok = {"description": "OK"}
        errors = {"400": {"description": "Bad request"}, "404": {"description": "Not found"},
                  "409": {"description": "Conflict"}}
        filters = [{"name": a.name, "in": "query", "required": False, "schema": {"type": "string"}}
                   for a in res.attributes if a.filter]
        paths[f"/v2.0/{res.path}"] = {
            "get": {"operationId": f"list_{res.collection}", "parameters": filters,
                    "responses": {"200": ok, **errors}},
            "post": {"operationId": f"create_{res.member}",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": f"#/components/schemas/{cap}Create"}}}},
                     "responses": {"201": {"description": "Created"}, **errors}},
        }
        member_param = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
        paths[f"/v2.0/{res.path}/{{id}}"] = {
            "get": {"operationId": f"show_{res.member}", "parameters": member_param,
                    "responses": {"200": ok, **errors}},
            "put": {"operationId": f"update_{res.member}", "parameters": member_param,
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": f"#/components/schemas/{cap}Update"}}}},
                    "responses": {"200": ok, **errors}},
            "delete": {"operationId": f"delete_{res.member}", "parameters": member_param,
                       "responses": {"204": {"description": "Deleted"}, **errors}},
        }
    _binding_paths(paths, schemas)
    trace.openapi(paths, schemas)
    return {
        "openapi": "3.0.3",
        "info": {"title": "Fermion (Neutron v2.0 API)", "version": "2.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _binding_paths(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """binding-extended: /v2.0/ports/{port_id}/bindings, a sub-resource of ports."""
    attrs = port_binding.ATTRIBUTES
    schemas["Binding"] = {"type": "object", "properties": {a.name: a.schema for a in attrs if a.visible}}
    for verb, writable, required in (("Create", [a for a in attrs if a.post], [a.name for a in attrs if a.required]),
                                     ("Update", [a for a in attrs if a.put], [])):
        inner: dict[str, Any] = {"type": "object", "properties": {a.name: a.schema for a in writable},
                                 "additionalProperties": False}
        if required:
            inner["required"] = required
        schemas[f"Binding{verb}"] = {"type": "object", "required": ["binding"], "additionalProperties": False,
                                     "properties": {"binding": inner}}
    ok, errors = {"description": "OK"}, {"400": {"description": "Bad request"}, "404": {"description": "Not found"},
                                         "409": {"description": "Conflict"}}
    port = {"name": "port_id", "in": "path", "required": True, "schema": {"type": "string"}}
    host = {"name": "host", "in": "path", "required": True, "schema": {"type": "string"}}

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

    filters = [{"name": a.name, "in": "query", "required": False, "schema": {"type": "string"}}
               for a in attrs if a.filter and a.visible]
    paths["/v2.0/ports/{port_id}/bindings"] = {
        "get": {"operationId": "list_port_bindings", "parameters": [port, *filters],
                "responses": {"200": ok, **errors}},
        "post": {"operationId": "create_port_binding", "parameters": [port], "requestBody": body("BindingCreate"),
                 "responses": {"201": {"description": "Created"}, **errors}},
    }
    paths["/v2.0/ports/{port_id}/bindings/{host}"] = {
        "get": {"operationId": "show_port_binding", "parameters": [port, host], "responses": {"200": ok, **errors}},
        "put": {"operationId": "update_port_binding", "parameters": [port, host], "requestBody": body("BindingUpdate"),
                "responses": {"200": ok, **errors}},
        "delete": {"operationId": "delete_port_binding", "parameters": [port, host],
                   "responses": {"204": {"description": "Deleted"}, **errors}},
    }
    paths["/v2.0/ports/{port_id}/bindings/{host}/activate"] = {
        "put": {"operationId": "activate_port_binding", "parameters": [port, host], "responses": {"200": ok, **errors}},
    }
