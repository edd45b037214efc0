from typing import Any

from fermion import validation as v
from fermion.resources.base import ADMIN_ONLY, AUTO, BOOL, Attribute, Resource, standard_attributes
from fermion.resources.qos import QOS_POLICY_ID
from fermion.resources.trunk import TRUNK_DETAILS_ATTR
from fermion.validation import dns

VNIC_TYPES = ("normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder",
              "smart-nic", "vdpa", "remote-managed")


def _pair_ip(value: Any) -> str:
    if isinstance(value, str) and "/" in value:
        return v.cidr(value)
    return v.ip_address(value)


_fixed_ip = v.dict_of({"subnet_id": (v.uuid_str, False), "ip_address": (v.ip_address, False)}, "fixed_ip")
_pair = v.dict_of({"ip_address": (_pair_ip, True), "mac_address": (v.mac_address, False)},
                  "allowed_address_pair")
_device_owner = v.string(255)
NUMA_POLICIES = ("required", "preferred", "legacy", "socket")
HARDWARE_OFFLOAD_TYPES = ("switchdev",)
IP_ALLOCATIONS = ("immediate", "deferred", "none")


def _hints(value: Any) -> Any:
    """Neutron's port-hints spec: None, or {"openvswitch": {"other_config": {"tx-steering": thread|hash}}},
    every level optional and no other keys."""
    if value is None:
        return None
    v.nested_dict(value, {"openvswitch": {"other_config": {"tx-steering": v.one_of("thread", "hash")}}})
    return value


def _offload_type(value: Any) -> str:
    return v.one_of(*HARDWARE_OFFLOAD_TYPES)(None if value is None else str(value))

PORT = Resource(
    member="port",
    collection="ports",
    not_found="PortNotFound",
    id_label="Port",
    attributes=standard_attributes() + (
        Attribute("network_id", v.uuid_str, post=True, sort=True, schema={"type": "string", "format": "uuid"}),
        Attribute("admin_state_up", v.boolean, default=True, post=True, put=True, sort=True, schema=BOOL),
        # null: a generated MAC (port-mac-address-regenerate); on update only while the port is unbound
        Attribute("mac_address", v.nullable(v.mac_address), default=AUTO, post=True, put=True, sort=True,
                  extension="port-mac-address-regenerate", filter_convert=v.mac_address),
        Attribute("fixed_ips", v.list_of(_fixed_ip, max_items=100), default=AUTO, post=True, put=True,
                  schema={"type": "array", "items": {"type": "object"}}),
        Attribute("device_id", v.string(255), default="", post=True, put=True, sort=True),
        Attribute("device_owner", _device_owner, default="", post=True, put=True, sort=True),
        Attribute("status", sort=True),
        Attribute("port_security_enabled", v.boolean, default=AUTO, post=True, put=True,
                  extension="port-security", schema=BOOL),
        Attribute("allowed_address_pairs", v.list_of(_pair, max_items=10), default=[], post=True, put=True,
                  filter=False, extension="allowed-address-pairs",
                  schema={"type": "array", "items": {"type": "object"}}),
        Attribute("security_groups", v.list_of(v.uuid_str, max_items=100, unique=True), default=AUTO,
                  post=True, put=True, filter_convert=v.uuid_str,
                  schema={"type": "array", "items": {"type": "string"}}),
        Attribute("binding:host_id", v.string(255), default="", post=True, put=True, policy=ADMIN_ONLY,
                  read_policy=ADMIN_ONLY, extension="binding"),
        Attribute("binding:vnic_type", v.one_of(*VNIC_TYPES), default="normal", post=True, put=True,
                  extension="binding", schema={"type": "string", "enum": list(VNIC_TYPES)}),
        Attribute("binding:profile", v.any_dict, default={}, post=True, put=True, filter=False,
                  policy=ADMIN_ONLY, read_policy=ADMIN_ONLY, extension="binding", schema={"type": "object"}),
        Attribute("binding:vif_type", read_policy=ADMIN_ONLY, extension="binding"),
        Attribute("binding:vif_details", filter=False, read_policy=ADMIN_ONLY, extension="binding",
                  schema={"type": "object"}),
        Attribute("dns_name", dns.dns_name, default="", post=True, put=True, extension="dns-integration"),
        Attribute("dns_assignment", filter=False, extension="dns-integration",
                  schema={"type": "array", "items": {"type": "object"}}),
        Attribute("dns_domain", dns.dns_domain, default="", post=True, put=True, filter=False,
                  extension="dns-domain-ports"),
        Attribute("extra_dhcp_opts", dns.extra_dhcp_opts, default=None, post=True, put=True, filter=False,
                  extension="extra_dhcp_opt", schema={"type": ["array", "null"], "items": {"type": "object"}}),
        # True unless asked otherwise, as neutron-lib's definition (ports made before count as True too)
        Attribute("propagate_uplink_status", v.boolean, default=True, post=True, put=True, filter=False,
                  extension="uplink-status-propagation", schema=BOOL),
        Attribute("data_plane_status", v.one_of(None, "ACTIVE", "DOWN"), put=True, filter=False,
                  extension="data-plane-status", schema={"type": ["string", "null"]}),
        Attribute("device_profile", v.string(255, nullable=True), default=None, post=True, filter=False,
                  extension="port-device-profile", schema={"type": ["string", "null"]}),
        Attribute("numa_affinity_policy", v.one_of(*NUMA_POLICIES, None), default=None, post=True, put=True,
                  filter=False, extension="port-numa-affinity-policy",
                  schema={"type": ["string", "null"], "enum": [*NUMA_POLICIES, None]}),
        Attribute("trusted", v.boolean, default=AUTO, post=True, put=True, filter=False, policy=ADMIN_ONLY,
                  read_policy=ADMIN_ONLY, extension="port-trusted-vif", schema={"type": ["boolean", "null"]}),
        Attribute("hints", _hints, default=None, post=True, put=True, filter=False, policy=ADMIN_ONLY,
                  read_policy=ADMIN_ONLY, extension="port-hints", schema={"type": ["object", "null"]}),
        Attribute("hardware_offload_type", _offload_type, default=AUTO, post=True, filter=False,
                  extension="port-hardware-offload-type", schema={"type": ["string", "null"]}),
        Attribute("ip_allocation", sort=True, extension="ip_allocation",
                  schema={"type": "string", "enum": list(IP_ALLOCATIONS)}),
        QOS_POLICY_ID,
        TRUNK_DETAILS_ATTR,
    ),
)
