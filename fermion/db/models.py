"""Tables. Uniqueness that matters for correctness (IPs, MACs per network) is a database constraint."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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
    true,
)

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
        Column("revision_number", Integer, nullable=False, default=0),
    ]


networks = Table(
    "networks", metadata, *_standard(),
    Column("admin_state_up", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("shared", Boolean, nullable=False, default=False),
    Column("mtu", Integer, nullable=False),
    Column("router_external", Boolean, nullable=False, default=False),
    Column("port_security_enabled", Boolean, nullable=False, default=True),
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
    Column("subnetpool_id", String(36)),
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
    # port extensions: plain columns, so a port is still one row (no join per port on lists)
    Column("propagate_uplink_status", Boolean, nullable=False, default=True, server_default=true()),
    Column("data_plane_status", String(16), nullable=True),
    Column("device_profile", String(255), nullable=True),
    Column("numa_affinity_policy", String(16), nullable=True),
    Column("trusted", Boolean, nullable=True),
    Column("hints", JSON, nullable=True),
    Column("hardware_offload_type", String(255), nullable=True),
    Column("ip_allocation", String(16), nullable=False, default="immediate", server_default="immediate"),
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

# L3: routers, their ports, extra routes (JSON on the locked router row) and agent scheduling.
routers = Table(
    "routers", metadata, *_standard(),
    Column("admin_state_up", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("gw_port_id", String(36), ForeignKey("ports.id"), nullable=True),
    Column("enable_snat", Boolean, nullable=False, default=True),
    Column("routes", JSON, nullable=False),
)

# One row per router port; the port row itself carries device_owner/device_id as in Neutron.
router_ports = Table(
    "router_ports", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True),
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("port_type", String(255), nullable=False),
)

router_l3_agents = Table(
    "router_l3_agents", metadata,
    Column("router_id", String(36), ForeignKey("routers.id", ondelete="CASCADE"), primary_key=True),
    Column("l3_agent_id", String(36), ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True),
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
    UniqueConstraint("floating_network_id", "fixed_port_id", "fixed_ip_address"),
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
    Column("revision_number", Integer, nullable=False, default=0),
)

# Which groups a port is in (the API's port.security_groups).
port_security_groups = Table(
    "port_security_groups", metadata,
    Column("port_id", String(36), ForeignKey("ports.id", ondelete="CASCADE"), nullable=False),
    Column("security_group_id", String(36), ForeignKey("securitygroups.id"), nullable=False, index=True),
    PrimaryKeyConstraint("port_id", "security_group_id"),
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
