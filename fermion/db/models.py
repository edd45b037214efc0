"""Tables. Uniqueness that matters for correctness (IPs, MACs per network) is a database constraint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import JSON as _SqlJson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class JSON(TypeDecorator[Any]):
    """SQLAlchemy's JSON, whose stored text is parsed by one small function (orjson, as the engine's
    json_deserializer) instead of SQLAlchemy's two nested ones: a list of 10k ports reads 50k such values.
    Values that are no text (none; a number SQLite kept as one) go through SQLAlchemy's own processor."""

    impl = _SqlJson
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        inner = self.impl_instance.result_processor(dialect, coltype)
        if inner is None:  # the driver parses JSON itself (psycopg)
            return None
        loads = orjson.loads

        def process(value: Any) -> Any:
            if value is None:
                return None
            if value.__class__ is str:
                return loads(value)
            return inner(value)

        return process

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def _standard() -> list[Column]:
    return [
        Column("id", String(36), primary_key=True),
        Column("project_id", String(255), nullable=False, index=True),
        Column("name", String(255), nullable=False, default=""),
        Column("description", String(255), nullable=False, default=""),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
        Column("revision_number", Integer, nullable=False, default=1),
    ]


networks = Table(
    "networks", metadata, *_standard(),
    Column("admin_state_up", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("shared", Boolean, nullable=False, default=False),
    Column("mtu", Integer, nullable=False),
    Column("router_external", Boolean, nullable=False, default=False),
    Column("port_security_enabled", Boolean, nullable=False, default=True),
    Column("availability_zone_hints", JSON),  # a list of zone names; NULL: none (rows from before 0012)
    Column("dns_domain", String(255), nullable=False, default="", server_default=""),
    # auto-allocated-topology: True on the one default external network, NULL elsewhere (the unique key
    # keeps a second default out, even concurrently)
    Column("is_default", Boolean, nullable=True, unique=True),
    Column("qos_policy_id", String(36), nullable=True, index=True),  # qos: the ports' policy unless their own
)

address_scopes = Table(
    "address_scopes", metadata, *_standard(),
    Column("shared", Boolean, nullable=False, default=False),
    Column("ip_version", Integer, nullable=False),
)

# A pool's prefixes live on its row (compacted CIDRs): subnet allocation locks that row, so prefix
# changes and allocations from one pool take turns.
subnetpools = Table(
    "subnetpools", metadata, *_standard(),
    Column("ip_version", Integer, nullable=False),
    Column("prefixes", JSON, nullable=False),
    Column("default_prefixlen", Integer, nullable=False),
    Column("min_prefixlen", Integer, nullable=False),
    Column("max_prefixlen", Integer, nullable=False),
    Column("default_quota", Integer, nullable=True),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("shared", Boolean, nullable=False, default=False),
    Column("address_scope_id", String(36), ForeignKey("address_scopes.id"), nullable=True, index=True),
)

# At most one default pool per IP version: the primary key makes marking a pool default race-free.
default_subnetpools = Table(
    "default_subnetpools", metadata,
    Column("ip_version", Integer, primary_key=True, autoincrement=False),
    Column("subnetpool_id", String(36), ForeignKey("subnetpools.id", ondelete="CASCADE"), nullable=False,
           unique=True),
)

subnets = Table(
    "subnets", metadata, *_standard(),
    Column("network_id", String(36), ForeignKey("networks.id"), nullable=False, index=True),
    Column("ip_version", Integer, nullable=False),
    Column("cidr", String(64), nullable=False),
    Column("gateway_ip", String(64)),
    Column("allocation_pools", JSON, nullable=False),
    Column("dns_nameservers", JSON, nullable=False),
    Column("host_routes", JSON, nullable=False),
    Column("enable_dhcp", Boolean, nullable=False),
    Column("ipv6_ra_mode", String(16)),
    Column("ipv6_address_mode", String(16)),
    Column("subnetpool_id", String(36), ForeignKey("subnetpools.id"), index=True),
    Column("segment_id", String(36), ForeignKey("network_segments.id"), index=True),
    Column("dns_publish_fixed_ip", Boolean, nullable=False, default=False, server_default=false()),
)

# Subnet service types (which device owners may take addresses from a subnet), as Neutron's table.
subnet_service_types = Table(
    "subnet_service_types", metadata,
    Column("subnet_id", String(36), ForeignKey("subnets.id", ondelete="CASCADE"), nullable=False),
    Column("service_type", String(255), nullable=False),
    PrimaryKeyConstraint("subnet_id", "service_type"),
)

ports = Table(
    "ports", metadata, *_standard(),
    Column("network_id", String(36), ForeignKey("networks.id"), nullable=False),
    Column("mac_address", String(32), nullable=False),
    Column("admin_state_up", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("device_id", String(255), nullable=False, index=True),
    Column("device_owner", String(255), nullable=False, index=True),
    Column("port_security_enabled", Boolean, nullable=False),
    Column("allowed_address_pairs", JSON, nullable=False),
    Column("binding_host_id", String(255), nullable=False, default=""),
    Column("binding_vnic_type", String(32), nullable=False, default="normal"),
    Column("binding_profile", JSON, nullable=False),
    Column("binding_vif_type", String(64), nullable=False, default="unbound"),
    Column("binding_vif_details", JSON, nullable=False),
    # dns-integration: dns_name and dns_domain as stored (empty when the configured domain is the default)
    Column("dns_name", String(255), nullable=False, default="", server_default=""),
    Column("dns_domain", String(255), nullable=False, default="", server_default=""),
    # extra_dhcp_opt: [{opt_name, opt_value, ip_version}] in the order they were added; NULL: none
    Column("extra_dhcp_opts", JSON(none_as_null=True), nullable=True),
    # port extensions: plain columns, so a port is still one row (no join per port on lists)
    Column("propagate_uplink_status", Boolean, nullable=False, default=True, server_default=true()),
    Column("data_plane_status", String(16), nullable=True),
    Column("device_profile", String(255), nullable=True),
    Column("numa_affinity_policy", String(16), nullable=True),
    Column("trusted", Boolean, nullable=True),
    Column("hints", JSON(none_as_null=True), nullable=True),
    Column("hardware_offload_type", String(255), nullable=True),
    Column("ip_allocation", String(16), nullable=False, default="immediate", server_default="immediate"),
    Column("qos_policy_id", String(36), nullable=True, index=True),  # qos: the port's own policy
    UniqueConstraint("network_id", "mac_address"),
    Index("ix_ports_network_id_device_owner", "network_id", "device_owner"),
)

# One row per allocated address. The unique key is what makes double allocation impossible.
ip_allocations = Table(
    "ip_allocations", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("subnet_id", String(36), ForeignKey("subnets.id"), nullable=False, index=True),
    Column("network_id", String(36), nullable=False),
    Column("ip_address", String(64), nullable=False),
    PrimaryKeyConstraint("network_id", "ip_address"),
)

tags = Table(
    "tags", metadata,
    Column("resource_id", String(36), nullable=False),
    Column("tag", String(60), nullable=False),
    PrimaryKeyConstraint("resource_id", "tag"),
    Index("ix_tags_tag", "tag"),
)

quotas = Table(
    "quotas", metadata,
    Column("project_id", String(255), nullable=False),
    Column("resource", String(64), nullable=False),
    Column("limit", Integer, nullable=False),
    PrimaryKeyConstraint("project_id", "resource"),
)

# Committed usage per project and resource; a conditional UPDATE on this row makes quota checks race-free.
quota_usages = Table(
    "quota_usages", metadata,
    Column("project_id", String(255), nullable=False),
    Column("resource", String(64), nullable=False),
    Column("in_use", Integer, nullable=False),
    PrimaryKeyConstraint("project_id", "resource"),
)

# ML2: a network's segments, and the allocation table whose key makes a segment id usable only once.
network_segments = Table(
    "network_segments", metadata,
    Column("id", String(36), primary_key=True),
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("network_type", String(32), nullable=False),
    Column("physical_network", String(64)),
    Column("segmentation_id", Integer),
    Column("segment_index", Integer, nullable=False, default=0),
    # the segment as an API resource (segment, standard-attr-segment); NULL on rows from before 0013
    Column("project_id", String(255)),
    Column("name", String(255)),
    Column("description", String(255)),
    Column("created_at", DateTime),
    Column("updated_at", DateTime),
    Column("revision_number", Integer),
)

# Admin-managed ranges of segment ids (network-segment-range); the default ones mirror the configuration.
network_segment_ranges = Table(
    "network_segment_ranges", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), index=True),  # NULL: shared by every project
    Column("name", String(255), nullable=False, default=""),
    Column("description", String(255), nullable=False, default=""),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("revision_number", Integer, nullable=False, default=1),
    Column("default", Boolean, nullable=False, default=False),
    Column("shared", Boolean, nullable=False, default=True),
    Column("network_type", String(32), nullable=False),
    Column("physical_network", String(64)),
    Column("minimum", BigInteger, nullable=False),  # GRE ids reach 2**32 - 1
    Column("maximum", BigInteger, nullable=False),
)

segment_allocations = Table(
    "segment_allocations", metadata,
    Column("network_type", String(32), nullable=False),
    Column("physical_network", String(64), nullable=False),
    Column("segmentation_id", Integer, nullable=False),
    Column("network_id", String(36), nullable=False, index=True),
    PrimaryKeyConstraint("network_type", "physical_network", "segmentation_id"),
)

# Agents register themselves through state reports; (agent_type, host) identifies one.
agents = Table(
    "agents", metadata,
    Column("id", String(36), primary_key=True),
    Column("agent_type", String(255), nullable=False),
    Column("binary", String(255), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("availability_zone", String(255)),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("description", String(255), nullable=False, default=""),
    Column("configurations", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_timestamp", DateTime, nullable=False),
    UniqueConstraint("agent_type", "host"),
)

network_dhcp_agents = Table(
    "network_dhcp_agents", metadata,
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("dhcp_agent_id", String(36), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("network_id", "dhcp_agent_id"),
)

# Service flavors and profiles (admin-managed; no project, no standard attributes, as in Neutron).
flavors = Table(
    "flavors", metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=True),
    Column("description", String(1024), nullable=True),
    Column("service_type", String(36), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
)

serviceprofiles = Table(
    "serviceprofiles", metadata,
    Column("id", String(36), primary_key=True),
    Column("description", String(1024), nullable=True),
    Column("driver", String(1024), nullable=False),
    Column("metainfo", String(4096), nullable=True),
    Column("enabled", Boolean, nullable=False, default=True),
)

flavorserviceprofilebindings = Table(
    "flavorserviceprofilebindings", metadata,
    Column("service_profile_id", String(36), ForeignKey("serviceprofiles.id", ondelete="CASCADE"), nullable=False),
    Column("flavor_id", String(36), ForeignKey("flavors.id", ondelete="CASCADE"), nullable=False, index=True),
    PrimaryKeyConstraint("service_profile_id", "flavor_id"),
)

# auto-allocated-topology: at most one per project (the primary key makes concurrent requests build one).
auto_allocated_topologies = Table(
    "auto_allocated_topologies", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="SET NULL"), nullable=True),
)

# L3: routers, their ports, extra routes (JSON on the locked router row) and agent scheduling.
routers = Table(
    "routers", metadata, *_standard(),
    Column("admin_state_up", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("gw_port_id", String(36), ForeignKey("ports.id"), nullable=True),
    Column("enable_snat", Boolean, nullable=False, default=True),
    Column("routes", JSON, nullable=False),
    Column("availability_zone_hints", JSON),
    Column("flavor_id", String(36), ForeignKey("flavors.id"), nullable=True, index=True),
    # l3-ha: keepalived VRRP on every hosting agent; ha_vr_id is the router's VRID on its project's HA network
    Column("ha", Boolean, nullable=False, server_default=false()),
    Column("ha_vr_id", Integer, nullable=True),
    # dvr: a copy on every host with instances on its subnets; the SNAT part scheduled like a router
    Column("distributed", Boolean, nullable=False, server_default=false()),
    Column("gw_qos_policy_id", String(36), nullable=True, index=True),  # qos-gateway-ip
)

# One row per router port; the port row itself carries device_owner/device_id as in Neutron.
router_ports = Table(
    "router_ports", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("port_type", String(255), nullable=False),
)

# binding_index in the key keeps scheduling race-free: a legacy router has only index 1, an HA router one
# index per hosting agent (as Neutron's RouterL3AgentBinding); an HA binding has its HA port and VRRP state.
router_l3_agents = Table(
    "router_l3_agents", metadata,
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="CASCADE"), nullable=False),
    Column("binding_index", Integer, nullable=False, server_default="1"),
    Column("l3_agent_id", String(36), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("ha_port_id", String(36), ForeignKey("ports.id", ondelete="SET NULL"), nullable=True),
    Column("ha_state", String(16), nullable=True),
    PrimaryKeyConstraint("router_id", "binding_index"),
    UniqueConstraint("router_id", "l3_agent_id"),
)

# l3-ha: one hidden HA network per project (owned by no project), and the VRIDs taken on each.
ha_router_networks = Table(
    "ha_router_networks", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), nullable=False, unique=True),
)

ha_router_vrid_allocations = Table(
    "ha_router_vrid_allocations", metadata,
    Column("network_id", String(36), ForeignKey("networks.id", ondelete="CASCADE"), primary_key=True),
    Column("vr_id", Integer, primary_key=True),
)

# dvr: the MAC a host's router copies send with to other hosts; unique, so concurrent allocations retry.
dvr_host_macs = Table(
    "dvr_host_macs", metadata,
    Column("host", String(255), primary_key=True),
    Column("mac_address", String(32), nullable=False, unique=True),
)

# The unique key makes associating two floating IPs with one fixed address impossible, even concurrently.
floatingips = Table(
    "floatingips", metadata, *_standard(),
    Column("floating_ip_address", String(64), nullable=False),
    Column("floating_network_id", String(36), ForeignKey("networks.id"), nullable=False, index=True),
    Column("floating_port_id", String(36), ForeignKey("ports.id"), nullable=False),
    Column("fixed_port_id", String(36), ForeignKey("ports.id"), nullable=True, index=True),
    Column("fixed_ip_address", String(64), nullable=True),
    Column("router_id", String(36), ForeignKey("routers.id"), nullable=True, index=True),
    Column("status", String(16), nullable=False),
    Column("qos_policy_id", String(36), nullable=True, index=True),  # qos-fip
    UniqueConstraint("floating_network_id", "fixed_port_id", "fixed_ip_address"),
)

# Address groups: named sets of CIDRs a security-group rule may name as its remote.
address_groups = Table(
    "address_groups", metadata, *(c if c.name != "description" else Column("description", String(1024), nullable=False,
                                                                           default="") for c in _standard()),
)

# One row per CIDR (normalized: host bits cleared); the key makes adding one twice impossible.
address_group_addresses = Table(
    "address_group_addresses", metadata,
    Column("address_group_id", String(36), ForeignKey("address_groups.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(64), nullable=False),
    PrimaryKeyConstraint("address_group_id", "address"),
)

# Firewall-as-a-service v2: rules, policies (an ordered rule list each), groups (router ports, a policy per
# direction) and the default group of each project (the primary key admits one, race-free).
firewall_rules_v2 = Table(
    "firewall_rules_v2", metadata, *_standard(),
    Column("shared", Boolean, nullable=False, default=False),
    Column("protocol", String(40), nullable=True),
    Column("ip_version", Integer, nullable=False, default=4),
    Column("source_ip_address", String(64), nullable=True),
    Column("destination_ip_address", String(64), nullable=True),
    Column("source_port_range_min", Integer, nullable=True),
    Column("source_port_range_max", Integer, nullable=True),
    Column("destination_port_range_min", Integer, nullable=True),
    Column("destination_port_range_max", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
)

firewall_policies_v2 = Table(
    "firewall_policies_v2", metadata, *_standard(),
    Column("shared", Boolean, nullable=False, default=False),
    Column("audited", Boolean, nullable=False, default=False),
)

# no ON DELETE on the rule: a rule in a policy cannot be deleted (FirewallRuleInUse)
firewall_policy_rules_v2 = Table(
    "firewall_policy_rules_v2", metadata,
    Column("firewall_policy_id", String(36), ForeignKey("firewall_policies_v2.id", ondelete="CASCADE"),
           nullable=False),
    Column("firewall_rule_id", String(36), ForeignKey("firewall_rules_v2.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    PrimaryKeyConstraint("firewall_policy_id", "firewall_rule_id"),
)

# no ON DELETE on the policies: a policy a group uses cannot be deleted (FirewallPolicyInUse)
firewall_groups_v2 = Table(
    "firewall_groups_v2", metadata, *_standard(),
    Column("shared", Boolean, nullable=False, default=False),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False),
    Column("ingress_firewall_policy_id", String(36), ForeignKey("firewall_policies_v2.id"), nullable=True,
           index=True),
    Column("egress_firewall_policy_id", String(36), ForeignKey("firewall_policies_v2.id"), nullable=True,
           index=True),
)

# a port is in at most one group (the port_id key); a deleted port leaves its group
firewall_group_ports_v2 = Table(
    "firewall_group_ports_v2", metadata,
    Column("firewall_group_id", String(36), ForeignKey("firewall_groups_v2.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
)

default_firewall_groups = Table(
    "default_firewall_groups", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("firewall_group_id", String(36), ForeignKey("firewall_groups_v2.id", ondelete="CASCADE"),
           nullable=False, unique=True),
)

# Templates of the rules new security groups start with (admin-managed). remote_group_id may be "PARENT":
# the group being created. A template duplicates another when their normalized content is equal and they share
# a use: the digest of the content is kept once per use (NULL: not used there), each unique.
default_security_group_rules = Table(
    "default_security_group_rules", metadata,
    Column("id", String(36), primary_key=True),
    Column("direction", String(16), nullable=False),
    Column("ethertype", String(8), nullable=False),
    Column("protocol", String(40), nullable=True),
    Column("port_range_min", Integer, nullable=True),
    Column("port_range_max", Integer, nullable=True),
    Column("remote_ip_prefix", String(64), nullable=True),
    Column("remote_group_id", String(36), nullable=True),
    Column("remote_address_group_id", String(36), nullable=True),
    Column("description", String(1024), nullable=False, default=""),
    Column("used_in_default_sg", Boolean, nullable=False),
    Column("used_in_non_default_sg", Boolean, nullable=False),
    Column("fingerprint_default", String(64), nullable=True, unique=True),
    Column("fingerprint_non_default", String(64), nullable=True, unique=True),
)

securitygroups = Table(
    "securitygroups", metadata, *_standard(),
    Column("stateful", Boolean, nullable=False, default=True),
)

# At most one default group per project: the primary key makes its lazy creation race-free.
default_security_groups = Table(
    "default_security_groups", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("security_group_id", String(36), ForeignKey("securitygroups.id", ondelete="CASCADE"),
           nullable=False),
)

# fingerprint: a digest of the normalized rule; its unique key rejects duplicates even concurrently.
securitygrouprules = Table(
    "securitygrouprules", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("security_group_id", String(36), ForeignKey("securitygroups.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("remote_group_id", String(36), ForeignKey("securitygroups.id", ondelete="CASCADE"), nullable=True,
           index=True),
    Column("direction", String(16), nullable=False),
    Column("ethertype", String(8), nullable=False),
    Column("protocol", String(40), nullable=True),
    Column("port_range_min", Integer, nullable=True),
    Column("port_range_max", Integer, nullable=True),
    Column("remote_ip_prefix", String(64), nullable=True),
    Column("description", String(255), nullable=False, default=""),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("revision_number", Integer, nullable=False, default=1),
    # no ON DELETE: a group a rule names cannot be deleted (AddressGroupInUse)
    Column("remote_address_group_id", String(36), ForeignKey("address_groups.id"), nullable=True, index=True),
    Column("normalized_cidr", String(64), nullable=True),  # remote_ip_prefix with host bits cleared (filters)
)

# Which groups a port is in (the API's port.security_groups).
port_security_groups = Table(
    "port_security_groups", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False),
    Column("security_group_id", String(36), ForeignKey("securitygroups.id"), nullable=False, index=True),
    PrimaryKeyConstraint("port_id", "security_group_id"),
)

# Conntrack helpers of a router (l3-conntrack-helper); the unique key rejects duplicates even concurrently.
router_conntrack_helpers = Table(
    "router_conntrack_helpers", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("protocol", String(40), nullable=False),
    Column("port", Integer, nullable=False),
    Column("helper", String(64), nullable=False),
    UniqueConstraint("router_id", "protocol", "port", "helper"),
)

# Floating IP port forwardings: DNAT of a floating IP's port (range) to a fixed IP's port (range). A single port
# is a range of one; the unique keys reject the same external ports twice on a floating IP, or the same
# internal socket twice, even concurrently (overlaps are checked by the service).
port_forwardings = Table(
    "port_forwardings", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("floatingip_id", String(36), ForeignKey("floatingips.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("internal_port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("internal_ip_address", String(64), nullable=False),
    Column("protocol", String(40), nullable=False),
    Column("external_port_start", Integer, nullable=False),
    Column("external_port_end", Integer, nullable=False),
    Column("internal_port_start", Integer, nullable=False),
    Column("internal_port_end", Integer, nullable=False),
    Column("description", String(1024), nullable=False, default=""),
    # named: the convention's names would pass MySQL's 64 characters
    UniqueConstraint("floatingip_id", "protocol", "external_port_start", "external_port_end",
                     name="uq_port_forwardings_external"),
    UniqueConstraint("protocol", "internal_port_id", "internal_ip_address", "internal_port_start",
                     "internal_port_end", name="uq_port_forwardings_internal"),
)

# RBAC: who else may use an object (networks, security groups, ...) and how. One table for every object type;
# the unique key rejects duplicate policies, even concurrently.
rbac_policies = Table(
    "rbac_policies", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("object_type", String(64), nullable=False),
    Column("object_id", String(36), nullable=False),
    Column("action", String(255), nullable=False),
    Column("target_project", String(255), nullable=False, index=True),
    UniqueConstraint("object_type", "object_id", "action", "target_project"),
)

# A port's inactive bindings (binding-extended): the active binding stays on the port row, which is what
# agents' host views read; activation swaps the two in one transaction.
port_bindings = Table(
    "port_bindings", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False),
    Column("host", String(255), nullable=False),
    Column("vnic_type", String(32), nullable=False, default="normal"),
    Column("profile", JSON, nullable=False),
    Column("vif_type", String(64), nullable=False),
    Column("vif_details", JSON, nullable=False),
    PrimaryKeyConstraint("port_id", "host"),
)

# Metering (metering, metering_source_and_destination_fields): labels apply to the routers of their project (all
# routers when shared); a rule's project is its label's (kept for policy targets, never shown).
meteringlabels = Table(
    "meteringlabels", metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(255), nullable=False, index=True),
    Column("name", String(255), nullable=False, default=""),
    Column("description", String(1024), nullable=False, default=""),
    Column("shared", Boolean, nullable=False, default=False, index=True),
)

meteringlabelrules = Table(
    "meteringlabelrules", metadata,
    Column("id", String(36), primary_key=True),
    Column("metering_label_id", String(36), ForeignKey("meteringlabels.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("project_id", String(255), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("remote_ip_prefix", String(64), nullable=True),
    Column("source_ip_prefix", String(64), nullable=True),
    Column("destination_ip_prefix", String(64), nullable=True),
    Column("excluded", Boolean, nullable=False, default=False),
)

# What the L3 agents counted per (label, router, host): the counters of the current epoch (a table instance
# in the router's namespace) plus what earlier epochs had counted (base_*). No foreign key to routers: a
# label keeps what a deleted router counted.
meteringcounters = Table(
    "meteringcounters", metadata,
    Column("label_id", String(36), ForeignKey("meteringlabels.id", ondelete="CASCADE"), nullable=False),
    Column("router_id", String(36), nullable=False),
    Column("host", String(255), nullable=False),
    Column("epoch", String(64), nullable=False),
    Column("packets", BigInteger, nullable=False, default=0),
    Column("bytes", BigInteger, nullable=False, default=0),
    Column("base_packets", BigInteger, nullable=False, default=0),
    Column("base_bytes", BigInteger, nullable=False, default=0),
    Column("updated_at", DateTime, nullable=False),
    PrimaryKeyConstraint("label_id", "router_id", "host"),
)

# QoS (qos, qos-default): policies shared through RBAC like networks (the flag is the wildcard grant), their
# rules (one bandwidth limit per direction, one DSCP mark, one minimum bandwidth per direction: unique keys),
# and each project's default policy (the key makes a second default impossible). The policy a port, network,
# floating IP or router gateway uses is a column of that row (no join on lists).
qos_policies = Table(
    "qos_policies", metadata, *_standard(),
    Column("shared", Boolean, nullable=False, default=False),
)

qos_policies_default = Table(
    "qos_policies_default", metadata,
    Column("project_id", String(255), primary_key=True),
    Column("qos_policy_id", String(36), ForeignKey("qos_policies.id", ondelete="CASCADE"), nullable=False,
           index=True),
)

qos_bandwidth_limit_rules = Table(
    "qos_bandwidth_limit_rules", metadata,
    Column("id", String(36), primary_key=True),
    Column("qos_policy_id", String(36), ForeignKey("qos_policies.id", ondelete="CASCADE"), nullable=False),
    Column("max_kbps", BigInteger, nullable=False),
    Column("max_burst_kbps", BigInteger, nullable=False, default=0),
    Column("direction", String(16), nullable=False, default="egress"),
    UniqueConstraint("qos_policy_id", "direction"),
)

qos_dscp_marking_rules = Table(
    "qos_dscp_marking_rules", metadata,
    Column("id", String(36), primary_key=True),
    Column("qos_policy_id", String(36), ForeignKey("qos_policies.id", ondelete="CASCADE"), nullable=False,
           unique=True),
    Column("dscp_mark", Integer, nullable=False),
)

qos_minimum_bandwidth_rules = Table(
    "qos_minimum_bandwidth_rules", metadata,
    Column("id", String(36), primary_key=True),
    Column("qos_policy_id", String(36), ForeignKey("qos_policies.id", ondelete="CASCADE"), nullable=False),
    Column("min_kbps", BigInteger, nullable=False),
    Column("direction", String(16), nullable=False, default="egress"),
    UniqueConstraint("qos_policy_id", "direction"),
)

# Trunks (trunk, trunk-details): a parent port carrying VLAN subports. A port is the parent of at most one trunk
# (unique) and a subport of at most one (primary key); a segmentation (type, id) appears once per trunk (unique
# key: two concurrent adds of the same VLAN cannot both succeed).
trunks = Table(
    "trunks", metadata, *_standard(),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False, default="DOWN"),
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False, unique=True),
)

subports = Table(
    "subports", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
    Column("trunk_id", String(36), ForeignKey("trunks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("segmentation_type", String(32), nullable=False),
    Column("segmentation_id", Integer, nullable=False),
    UniqueConstraint("trunk_id", "segmentation_type", "segmentation_id"),
)
