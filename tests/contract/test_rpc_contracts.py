"""The RPC messages between the server and the agents are a versioned contract.

The schema of every message is fingerprinted below, recorded for the contract VERSION it belongs to. A change
to any message (a field added, removed, renamed or retyped) without a VERSION bump fails here: old agents and
new servers (or the reverse) would silently disagree on the wire.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson
import pytest

from fermion.rpc import contracts
from fermion.rpc.contracts import (
    MESSAGES,
    BandwidthLimit,
    ConntrackHelper,
    DhcpHost,
    DhcpNetwork,
    DhcpOption,
    DhcpSubnet,
    DhcpView,
    DvrRouter,
    FipGateway,
    Firewall,
    FirewallGroup,
    FirewallReport,
    FirewallRule,
    FirewallStatus,
    FloatingIp,
    FloatingIpReport,
    FloatingIpStatus,
    HaRouter,
    HaStateReport,
    Hint,
    L2Network,
    L2Port,
    L2View,
    L3View,
    MeteringCounter,
    MeteringLabel,
    MeteringReport,
    MeteringRule,
    Neighbor,
    PortForwarding,
    PortReport,
    PortSecurity,
    ProbeReply,
    ProbeRequest,
    ProbeResult,
    QosRules,
    RemotePort,
    Router,
    RouterPort,
    SecurityGroup,
    SecurityRule,
    Segment,
    StateReport,
    ViewRequest,
    decode,
    encode,
    fingerprint,
)
from fermion.rpc.inproc import InProcTransport
from fermion.rpc.transport import RpcError

# ---------------------------------------------------------------- the recorded contract
RECORDED: dict[str, dict[str, str]] = {
    "1.0": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];"
                  "ports:list[fermion.rpc.contracts.L2Port];partial:bool",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost]",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
    },
    "1.1": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.SecurityGroup];"
                    "members:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contracts.L2Port];"
                  "partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost]",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str]",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.2": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.SecurityGroup];"
                    "members:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contracts.L2Port];"
                  "partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost]",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str]",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.3": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.SecurityGroup];"
                    "members:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contracts.L2Port];"
                  "partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;"
                    "options:list[fermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];"
                       "dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str]",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.4": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];"
                    "groups:list[fermion.rpc.contracts.SecurityGroup];members:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];"
                  "ports:list[fermion.rpc.contracts.L2Port];partial:bool;"
                  "firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;"
                    "options:list[fermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];"
                       "dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str]",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.5": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];"
                    "groups:list[fermion.rpc.contracts.SecurityGroup];members:dict[str, list[str]];"
                    "address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];"
                  "ports:list[fermion.rpc.contracts.L2Port];partial:bool;"
                  "firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;"
                    "options:list[fermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];"
                       "dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str]",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.6": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];"
                    "groups:list[fermion.rpc.contracts.SecurityGroup];members:dict[str, list[str]];"
                    "address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];"
                  "ports:list[fermion.rpc.contracts.L2Port];partial:bool;"
                  "firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;"
                    "options:list[fermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];"
                       "dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str]",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]];"
                  "conntrack_helpers:list[fermion.rpc.contracts.ConntrackHelper]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.7": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];"
                       "start_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];"
                     "remote_ports:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;"
                        "remote_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];"
                        "port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];"
                    "groups:list[fermion.rpc.contracts.SecurityGroup];members:dict[str, list[str]];"
                    "address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];"
                  "ports:list[fermion.rpc.contracts.L2Port];partial:bool;"
                  "firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];"
                      "host_routes:list[dict[str, str]];allocation_pools:list[dict[str, str]];"
                      "ipv6_address_mode:str | None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;"
                    "options:list[fermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];"
                       "subnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];"
                       "dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scope:str | None;"
                      "ipv6_address_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];"
                  "gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;"
                  "floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]];"
                  "conntrack_helpers:list[fermion.rpc.contracts.ConntrackHelper]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
    },
    "1.8": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, "
                       "typing.Any];start_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_po"
                     "rts:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | "
                        "None;port_max:int | None;remote_ip_prefix:str | None;remote_group:str | "
                        "None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[st"
                        "r];port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contra"
                    "cts.SecurityGroup];members:dict[str, list[str]];address_groups:dict[str, "
                    "list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc."
                  "contracts.L2Port];partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | "
                      "None;dns_nameservers:list[str];host_routes:list[dict[str, "
                      "str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str | "
                      "None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[f"
                    "ermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];su"
                       "bnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contra"
                       "cts.DhcpHost];dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scop"
                      "e:str | None;ipv6_address_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.R"
                  "outerPort];gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | Non"
                  "e;enable_snat:bool;floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:l"
                  "ist[list[str]];conntrack_helpers:list[fermion.rpc.contracts.ConntrackHelper];ha"
                  ":fermion.rpc.contracts.HaRouter | None",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
    },
    "1.9": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, "
                       "typing.Any];start_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_po"
                     "rts:list[fermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | "
                        "None;port_max:int | None;remote_ip_prefix:str | None;remote_group:str | "
                        "None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[st"
                        "r];port_security:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contra"
                    "cts.SecurityGroup];members:dict[str, list[str]];address_groups:dict[str, "
                    "list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc."
                  "contracts.L2Port];partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | "
                      "None;dns_nameservers:list[str];host_routes:list[dict[str, "
                      "str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str | "
                      "None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[f"
                    "ermion.rpc.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];su"
                       "bnets:list[fermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contra"
                       "cts.DhcpHost];dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scop"
                      "e:str | None;ipv6_address_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str;id:str;revision:int;status:str",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.R"
                  "outerPort];gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | Non"
                  "e;enable_snat:bool;floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:l"
                  "ist[list[str]];conntrack_helpers:list[fermion.rpc.contracts.ConntrackHelper];ha"
                  ":fermion.rpc.contracts.HaRouter | None",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
        "FloatingIpStatus": "revision:int;status:str",
        "FloatingIpReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FloatingIpStatus]",
    },
    "1.10": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];star"
                       "t_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_ports:list[f"
                     "ermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | Non"
                        "e;remote_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];port_secur"
                        "ity:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.Secur"
                    "ityGroup];members:dict[str, list[str]];address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contrac"
                  "ts.L2Port];partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];host_ro"
                      "utes:list[dict[str, str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str "
                      "| None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[fermion.rp"
                    "c.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];subnets:list[f"
                       "ermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];dns_domain"
                       ":str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scope:str | Non"
                      "e;ipv6_address_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str;id:str;revision:int;status:str",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPo"
                  "rt];gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:"
                  "bool;floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]];conntr"
                  "ack_helpers:list[fermion.rpc.contracts.ConntrackHelper];ha:fermion.rpc.contracts.HaRou"
                  "ter | None;distributed:fermion.rpc.contracts.DvrRouter | None",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool;dvr_mac:str;fip_gatew"
                  "ays:list[fermion.rpc.contracts.FipGateway]",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
        "FloatingIpStatus": "revision:int;status:str",
        "FloatingIpReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FloatingIpStatus]",
        "Neighbor": "ip:str;mac:str",
        "DvrRouter": "local:bool;central:bool;snat_ports:list[fermion.rpc.contracts.RouterPort];neighbors:li"
                     "st[fermion.rpc.contracts.Neighbor]",
        "FipGateway": "network_id:str;port:RouterPort;gateway_ip:str | None",
    },
    "1.11": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];star"
                       "t_flag:bool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_ports:list[f"
                     "ermion.rpc.contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str;qos:fe"
                  "rmion.rpc.contracts.QosRules | None",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | Non"
                        "e;remote_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];port_secur"
                        "ity:bool;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.Secur"
                    "ityGroup];members:dict[str, list[str]];address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contrac"
                  "ts.L2Port];partial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];host_ro"
                      "utes:list[dict[str, str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str "
                      "| None;ipv6_ra_mode:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[fermion.rp"
                    "c.contracts.DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];subnets:list[f"
                       "ermion.rpc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];dns_domain"
                       ":str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scope:str | Non"
                      "e;ipv6_address_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str;id:str;revision:int;status:str;qos:fermion.rpc.contracts."
                      "QosRules | None",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPo"
                  "rt];gateway:fermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:"
                  "bool;floating_ips:list[fermion.rpc.contracts.FloatingIp];routes:list[list[str]];conntr"
                  "ack_helpers:list[fermion.rpc.contracts.ConntrackHelper];ha:fermion.rpc.contracts.HaRou"
                  "ter | None;distributed:fermion.rpc.contracts.DvrRouter | None;gateway_qos:fermion.rpc."
                  "contracts.QosRules | None;firewall_groups:list[fermion.rpc.contracts.FirewallGroup];me"
                  "tering_labels:list[fermion.rpc.contracts.MeteringLabel];port_forwardings:list[fermion."
                  "rpc.contracts.PortForwarding]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool;dvr_mac:str;fip_gatew"
                  "ays:list[fermion.rpc.contracts.FipGateway]",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
        "FloatingIpStatus": "revision:int;status:str",
        "FloatingIpReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FloatingIpStatus]",
        "Neighbor": "ip:str;mac:str",
        "DvrRouter": "local:bool;central:bool;snat_ports:list[fermion.rpc.contracts.RouterPort];neighbors:li"
                     "st[fermion.rpc.contracts.Neighbor]",
        "FipGateway": "network_id:str;port:RouterPort;gateway_ip:str | None",
        "BandwidthLimit": "max_kbps:int;max_burst_kbps:int",
        "QosRules": "policy_id:str;egress:fermion.rpc.contracts.BandwidthLimit | None;ingress:fermion.rpc.c"
                    "ontracts.BandwidthLimit | None;dscp_mark:int | None",
        "FirewallRule": "action:str;ip_version:int;protocol:int | None;source_ip:str | None;destination_ip:str "
                        "| None;source_port:str | None;destination_port:str | None",
        "FirewallGroup": "id:str;revision:int;ports:list[str];ingress:list[fermion.rpc.contracts.FirewallRule] |"
                         " None;egress:list[fermion.rpc.contracts.FirewallRule] | None;admin_state_up:bool;statu"
                         "s:str",
        "FirewallStatus": "revision:int;status:str",
        "FirewallReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FirewallStatus]",
        "MeteringRule": "direction:str;excluded:bool;remote_ip_prefix:str | None;source_ip_prefix:str | None;de"
                        "stination_ip_prefix:str | None",
        "MeteringLabel": "id:str;rules:list[fermion.rpc.contracts.MeteringRule]",
        "MeteringCounter": "router_id:str;label_id:str;packets:int;bytes:int;epoch:str",
        "MeteringReport": "host:str;counters:list[fermion.rpc.contracts.MeteringCounter]",
        "PortForwarding": "id:str;floating_ip:str;protocol:str;external_port:str;internal_ip:str;internal_port:st"
                          "r",
    },
    "1.12": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];start_flag:b"
                       "ool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_ports:list[fermion.rpc"
                     ".contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str;qos:fermion.rpc.con"
                  "tracts.QosRules | None;trunk_id:str;parent_id:str;segmentation_id:int",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;remot"
                        "e_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];port_security:boo"
                        "l;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.SecurityGroup];m"
                    "embers:dict[str, list[str]];address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contracts.L2Port];pa"
                  "rtial:bool;firewall:fermion.rpc.contracts.Firewall | None",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];host_routes:list"
                      "[dict[str, str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str | None;ipv6_ra_mod"
                      "e:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[fermion.rpc.contracts"
                    ".DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];subnets:list[fermion.r"
                       "pc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scope:str | None;ipv6_ad"
                      "dress_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str;id:str;revision:int;status:str;qos:fermion.rpc.contracts.QosRules "
                      "| None",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];gateway:f"
                  "ermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;floating_ips:list[fer"
                  "mion.rpc.contracts.FloatingIp];routes:list[list[str]];conntrack_helpers:list[fermion.rpc.contracts."
                  "ConntrackHelper];ha:fermion.rpc.contracts.HaRouter | None;distributed:fermion.rpc.contracts.DvrRout"
                  "er | None;gateway_qos:fermion.rpc.contracts.QosRules | None;firewall_groups:list[fermion.rpc.contra"
                  "cts.FirewallGroup];metering_labels:list[fermion.rpc.contracts.MeteringLabel];port_forwardings:list["
                  "fermion.rpc.contracts.PortForwarding]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool;dvr_mac:str;fip_gateways:list[ferm"
                  "ion.rpc.contracts.FipGateway]",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
        "FloatingIpStatus": "revision:int;status:str",
        "FloatingIpReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FloatingIpStatus]",
        "Neighbor": "ip:str;mac:str",
        "DvrRouter": "local:bool;central:bool;snat_ports:list[fermion.rpc.contracts.RouterPort];neighbors:list[fermion"
                     ".rpc.contracts.Neighbor]",
        "FipGateway": "network_id:str;port:RouterPort;gateway_ip:str | None",
        "BandwidthLimit": "max_kbps:int;max_burst_kbps:int",
        "QosRules": "policy_id:str;egress:fermion.rpc.contracts.BandwidthLimit | None;ingress:fermion.rpc.contracts.Ba"
                    "ndwidthLimit | None;dscp_mark:int | None",
        "FirewallRule": "action:str;ip_version:int;protocol:int | None;source_ip:str | None;destination_ip:str | None;"
                        "source_port:str | None;destination_port:str | None",
        "FirewallGroup": "id:str;revision:int;ports:list[str];ingress:list[fermion.rpc.contracts.FirewallRule] | None;"
                         "egress:list[fermion.rpc.contracts.FirewallRule] | None;admin_state_up:bool;status:str",
        "FirewallStatus": "revision:int;status:str",
        "FirewallReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FirewallStatus]",
        "MeteringRule": "direction:str;excluded:bool;remote_ip_prefix:str | None;source_ip_prefix:str | None;destinati"
                        "on_ip_prefix:str | None",
        "MeteringLabel": "id:str;rules:list[fermion.rpc.contracts.MeteringRule]",
        "MeteringCounter": "router_id:str;label_id:str;packets:int;bytes:int;epoch:str",
        "MeteringReport": "host:str;counters:list[fermion.rpc.contracts.MeteringCounter]",
        "PortForwarding": "id:str;floating_ip:str;protocol:str;external_port:str;internal_ip:str;internal_port:str",
    },
    "1.13": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];start_flag:b"
                       "ool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_ports:list[fermion.rpc"
                     ".contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str;qos:fermion.rpc.con"
                  "tracts.QosRules | None;trunk_id:str;parent_id:str;segmentation_id:int;ips:list[str]",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;remot"
                        "e_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];port_security:boo"
                        "l;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.SecurityGroup];m"
                    "embers:dict[str, list[str]];address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contracts.L2Port];pa"
                  "rtial:bool;firewall:fermion.rpc.contracts.Firewall | None;dvr_mac:str",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];host_routes:list"
                      "[dict[str, str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str | None;ipv6_ra_mod"
                      "e:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[fermion.rpc.contracts"
                    ".DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];subnets:list[fermion.r"
                       "pc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scope:str | None;ipv6_ad"
                      "dress_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str;id:str;revision:int;status:str;qos:fermion.rpc.contracts.QosRules "
                      "| None",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];gateway:f"
                  "ermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;floating_ips:list[fer"
                  "mion.rpc.contracts.FloatingIp];routes:list[list[str]];conntrack_helpers:list[fermion.rpc.contracts."
                  "ConntrackHelper];ha:fermion.rpc.contracts.HaRouter | None;distributed:fermion.rpc.contracts.DvrRout"
                  "er | None;gateway_qos:fermion.rpc.contracts.QosRules | None;firewall_groups:list[fermion.rpc.contra"
                  "cts.FirewallGroup];metering_labels:list[fermion.rpc.contracts.MeteringLabel];port_forwardings:list["
                  "fermion.rpc.contracts.PortForwarding]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool;dvr_mac:str;fip_gateways:list[ferm"
                  "ion.rpc.contracts.FipGateway]",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
        "FloatingIpStatus": "revision:int;status:str",
        "FloatingIpReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FloatingIpStatus]",
        "Neighbor": "ip:str;mac:str",
        "DvrRouter": "local:bool;central:bool;snat_ports:list[fermion.rpc.contracts.RouterPort];neighbors:list[fermion"
                     ".rpc.contracts.Neighbor]",
        "FipGateway": "network_id:str;port:RouterPort;gateway_ip:str | None",
        "BandwidthLimit": "max_kbps:int;max_burst_kbps:int",
        "QosRules": "policy_id:str;egress:fermion.rpc.contracts.BandwidthLimit | None;ingress:fermion.rpc.contracts.Ba"
                    "ndwidthLimit | None;dscp_mark:int | None",
        "FirewallRule": "action:str;ip_version:int;protocol:int | None;source_ip:str | None;destination_ip:str | None;"
                        "source_port:str | None;destination_port:str | None",
        "FirewallGroup": "id:str;revision:int;ports:list[str];ingress:list[fermion.rpc.contracts.FirewallRule] | None;"
                         "egress:list[fermion.rpc.contracts.FirewallRule] | None;admin_state_up:bool;status:str",
        "FirewallStatus": "revision:int;status:str",
        "FirewallReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FirewallStatus]",
        "MeteringRule": "direction:str;excluded:bool;remote_ip_prefix:str | None;source_ip_prefix:str | None;destinati"
                        "on_ip_prefix:str | None",
        "MeteringLabel": "id:str;rules:list[fermion.rpc.contracts.MeteringRule]",
        "MeteringCounter": "router_id:str;label_id:str;packets:int;bytes:int;epoch:str",
        "MeteringReport": "host:str;counters:list[fermion.rpc.contracts.MeteringCounter]",
        "PortForwarding": "id:str;floating_ip:str;protocol:str;external_port:str;internal_ip:str;internal_port:str",
    },
    "1.14": {
        "Hint": "kind:str;id:str;revision:int;network_id:str | None;host:str | None",
        "ViewRequest": "host:str;agent_type:str;network_ids:list[str] | None",
        "StateReport": "host:str;agent_type:str;binary:str;topic:str;configurations:dict[str, typing.Any];start_flag:b"
                       "ool;availability_zone:str",
        "PortReport": "host:str;up:dict[str, int];down:list[str]",
        "Segment": "network_type:str;physical_network:str | None;segmentation_id:int | None",
        "RemotePort": "mac:str;ips:list[str];vtep:str",
        "L2Network": "id:str;mtu:int;admin_state_up:bool;segment:Segment;vteps:list[str];remote_ports:list[fermion.rpc"
                     ".contracts.RemotePort]",
        "L2Port": "id:str;network_id:str;mac:str;revision:int;admin_state_up:bool;device_owner:str;qos:fermion.rpc.con"
                  "tracts.QosRules | None;trunk_id:str;parent_id:str;segmentation_id:int;ips:list[str]",
        "SecurityRule": "direction:str;ethertype:str;protocol:int | None;port_min:int | None;port_max:int | None;remot"
                        "e_ip_prefix:str | None;remote_group:str | None;remote_address_group:str | None",
        "SecurityGroup": "id:str;stateful:bool;rules:list[fermion.rpc.contracts.SecurityRule]",
        "PortSecurity": "id:str;mac:str;ips:list[str];allowed_pairs:list[list[str]];groups:list[str];port_security:boo"
                        "l;network_id:str",
        "Firewall": "ports:list[fermion.rpc.contracts.PortSecurity];groups:list[fermion.rpc.contracts.SecurityGroup];m"
                    "embers:dict[str, list[str]];address_groups:dict[str, list[str]]",
        "L2View": "host:str;networks:list[fermion.rpc.contracts.L2Network];ports:list[fermion.rpc.contracts.L2Port];pa"
                  "rtial:bool;firewall:fermion.rpc.contracts.Firewall | None;dvr_mac:str",
        "DhcpSubnet": "id:str;cidr:str;ip_version:int;gateway_ip:str | None;dns_nameservers:list[str];host_routes:list"
                      "[dict[str, str]];allocation_pools:list[dict[str, str]];ipv6_address_mode:str | None;ipv6_ra_mod"
                      "e:str | None",
        "DhcpOption": "name:str;value:str;ip_version:int",
        "DhcpHost": "port_id:str;mac:str;ip:str;subnet_id:str;hostname:str;fqdn:str;options:list[fermion.rpc.contracts"
                    ".DhcpOption]",
        "DhcpNetwork": "id:str;mtu:int;revision:int;port_id:str;port_mac:str;port_ips:list[str];subnets:list[fermion.r"
                       "pc.contracts.DhcpSubnet];hosts:list[fermion.rpc.contracts.DhcpHost];dns_domain:str",
        "DhcpView": "host:str;networks:list[fermion.rpc.contracts.DhcpNetwork];partial:bool",
        "RouterPort": "id:str;network_id:str;mac:str;mtu:int;addresses:list[str];ipv4_address_scope:str | None;ipv6_ad"
                      "dress_scope:str | None",
        "FloatingIp": "floating_ip:str;fixed_ip:str;id:str;revision:int;status:str;qos:fermion.rpc.contracts.QosRules "
                      "| None",
        "ConntrackHelper": "protocol:str;port:int;helper:str",
        "Router": "id:str;revision:int;admin_state_up:bool;interfaces:list[fermion.rpc.contracts.RouterPort];gateway:f"
                  "ermion.rpc.contracts.RouterPort | None;gateway_ip:str | None;enable_snat:bool;floating_ips:list[fer"
                  "mion.rpc.contracts.FloatingIp];routes:list[list[str]];conntrack_helpers:list[fermion.rpc.contracts."
                  "ConntrackHelper];ha:fermion.rpc.contracts.HaRouter | None;distributed:fermion.rpc.contracts.DvrRout"
                  "er | None;gateway_qos:fermion.rpc.contracts.QosRules | None;firewall_groups:list[fermion.rpc.contra"
                  "cts.FirewallGroup];metering_labels:list[fermion.rpc.contracts.MeteringLabel];port_forwardings:list["
                  "fermion.rpc.contracts.PortForwarding]",
        "L3View": "host:str;routers:list[fermion.rpc.contracts.Router];partial:bool;dvr_mac:str;fip_gateways:list[ferm"
                  "ion.rpc.contracts.FipGateway]",
        "HaRouter": "vr_id:int;interface:RouterPort;state:str",
        "HaStateReport": "host:str;states:dict[str, str]",
        "FloatingIpStatus": "revision:int;status:str",
        "FloatingIpReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FloatingIpStatus]",
        "Neighbor": "ip:str;mac:str",
        "DvrRouter": "local:bool;central:bool;snat_ports:list[fermion.rpc.contracts.RouterPort];neighbors:list[fermion"
                     ".rpc.contracts.Neighbor]",
        "FipGateway": "network_id:str;port:RouterPort;gateway_ip:str | None",
        "BandwidthLimit": "max_kbps:int;max_burst_kbps:int",
        "QosRules": "policy_id:str;egress:fermion.rpc.contracts.BandwidthLimit | None;ingress:fermion.rpc.contracts.Ba"
                    "ndwidthLimit | None;dscp_mark:int | None",
        "FirewallRule": "action:str;ip_version:int;protocol:int | None;source_ip:str | None;destination_ip:str | None;"
                        "source_port:str | None;destination_port:str | None",
        "FirewallGroup": "id:str;revision:int;ports:list[str];ingress:list[fermion.rpc.contracts.FirewallRule] | None;"
                         "egress:list[fermion.rpc.contracts.FirewallRule] | None;admin_state_up:bool;status:str",
        "FirewallStatus": "revision:int;status:str",
        "FirewallReport": "host:str;statuses:dict[str, fermion.rpc.contracts.FirewallStatus]",
        "MeteringRule": "direction:str;excluded:bool;remote_ip_prefix:str | None;source_ip_prefix:str | None;destinati"
                        "on_ip_prefix:str | None",
        "MeteringLabel": "id:str;rules:list[fermion.rpc.contracts.MeteringRule]",
        "MeteringCounter": "router_id:str;label_id:str;packets:int;bytes:int;epoch:str",
        "MeteringReport": "host:str;counters:list[fermion.rpc.contracts.MeteringCounter]",
        "PortForwarding": "id:str;floating_ip:str;protocol:str;external_port:str;internal_ip:str;internal_port:str",
        "ProbeRequest": "host:str;ports:list[str];filters:list[str];routers:list[str]",
        "ProbeResult": "checked:list[str];missing:list[str];extra:list[str]",
        "ProbeReply": "host:str;agent_type:str;results:dict[str, fermion.rpc.contracts.ProbeResult]",
    },
}


def current_fingerprints() -> dict[str, str]:
    return {cls.__name__: fingerprint(cls) for cls in MESSAGES}


def _table(prints: dict[str, str]) -> str:
    return "\n".join(f'        "{name}": "{fp}",' for name, fp in prints.items())


def test_schemas_do_not_change_without_a_version_bump() -> None:
    version = contracts.VERSION
    current = current_fingerprints()
    if version not in RECORDED:
        pytest.fail(f"fermion.rpc.contracts.VERSION is {version}, which has no recorded fingerprints. If you bumped "
                    f"VERSION on purpose, record the schemas of version {version} in RECORDED in this test "
                    f"(keep the older entries):\n    \"{version}\": {{\n{_table(current)}\n    }},")
    recorded = RECORDED[version]
    changed = sorted(name for name in set(current) | set(recorded) if current.get(name) != recorded.get(name))
    details = "\n".join(f"  {name}:\n    recorded {recorded.get(name)}\n    now      {current.get(name)}"
                        for name in changed)
    assert not changed, (
        f"RPC message schema(s) changed while VERSION is still {version}:\n{details}\n"
        "Bump fermion.rpc.contracts.VERSION (minor for an added optional field, major when an old agent could no "
        "longer talk to a new server or the reverse), add a HISTORY entry describing the change, and record the "
        "new fingerprints under the new version in RECORDED in this test.")


def test_recorded_versions_have_distinct_schemas() -> None:
    """A version entry copied without a real schema change is a sign the table was edited by hand wrongly."""
    tables = [tuple(sorted(t.items())) for t in RECORDED.values()]
    assert len(set(tables)) == len(tables)


def test_version_is_in_history_and_well_formed() -> None:
    assert re.fullmatch(r"\d+\.\d+", contracts.VERSION)
    assert contracts.VERSION in contracts.HISTORY, "add a HISTORY entry for the current VERSION"
    for version, text in contracts.HISTORY.items():
        assert re.fullmatch(r"\d+\.\d+", version), version
        assert isinstance(text, str) and text.strip(), version
    newest = max(contracts.HISTORY, key=lambda v: tuple(int(x) for x in v.split(".")))
    assert newest == contracts.VERSION, "VERSION must be the newest HISTORY entry"
    for version in RECORDED:
        assert version in contracts.HISTORY, f"recorded version {version} is missing from HISTORY"


def test_compatibility_is_by_major_version() -> None:
    major = contracts.VERSION.split(".")[0]
    assert contracts.compatible(contracts.VERSION)
    assert contracts.compatible(f"{major}.99")
    assert not contracts.compatible(f"{int(major) + 1}.0")
    assert not contracts.compatible("")


# ---------------------------------------------------------------- the codec
SEGMENT = Segment(network_type="vxlan", physical_network=None, segmentation_id=1042)
REMOTE = RemotePort(mac="fa:16:3e:00:00:02", ips=["10.0.0.5", "2001:db8::5"], vtep="198.18.0.12")
L2NET = L2Network(id="net-1", mtu=1450, admin_state_up=True, segment=SEGMENT, vteps=["198.18.0.12"],
                  remote_ports=[REMOTE])
L2PORT = L2Port(id="port-1", network_id="net-1", mac="fa:16:3e:00:00:01", revision=3, admin_state_up=False,
                device_owner="compute:nova")
DSUBNET = DhcpSubnet(id="sub-1", cidr="10.0.0.0/24", ip_version=4, gateway_ip="10.0.0.1",
                     dns_nameservers=["198.18.0.53"], host_routes=[{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}],
                     allocation_pools=[{"start": "10.0.0.2", "end": "10.0.0.254"}])
DSUBNET6 = DhcpSubnet(id="sub-2", cidr="2001:db8::/64", ip_version=6, gateway_ip=None, dns_nameservers=[],
                      host_routes=[], allocation_pools=[], ipv6_address_mode="dhcpv6-stateful",
                      ipv6_ra_mode="dhcpv6-stateful")
DOPT = DhcpOption(name="bootfile-name", value="pxelinux.0", ip_version=4)
DHOST = DhcpHost(port_id="port-1", mac="fa:16:3e:00:00:01", ip="10.0.0.5", subnet_id="sub-1", hostname="vm1",
                 fqdn="vm1.example.org.", options=[DOPT, DhcpOption(name="tag:ipxe,bootfile-name", value="x")])
DNET = DhcpNetwork(id="net-1", mtu=1450, revision=7, port_id="port-9", port_mac="fa:16:3e:00:00:09",
                   port_ips=["10.0.0.2/24"], subnets=[DSUBNET, DSUBNET6], hosts=[DHOST], dns_domain="example.org.")

RULE = SecurityRule(direction="ingress", ethertype="IPv4", protocol=6, port_min=22, port_max=22,
                    remote_group="sg-1")
GROUP = SecurityGroup(id="sg-1", stateful=True, rules=[RULE, SecurityRule(direction="egress", ethertype="IPv6")])
PORTSEC = PortSecurity(id="port-1", mac="fa:16:3e:00:00:01", ips=["10.0.0.5"],
                       allowed_pairs=[["10.0.0.100/32", "fa:16:3e:00:00:01"]], groups=["sg-1"], port_security=True)
FIREWALL = Firewall(ports=[PORTSEC], groups=[GROUP], members={"sg-1": ["10.0.0.5", "10.0.0.100/32"]})
RPORT = RouterPort(id="port-7", network_id="net-1", mac="fa:16:3e:00:00:07", mtu=1450, addresses=["10.0.0.1/24"])
FIP = FloatingIp(floating_ip="198.18.100.20", fixed_ip="10.0.0.5", id="fip-1", revision=3, status="DOWN")
CTHELPER = ConntrackHelper(protocol="tcp", port=21, helper="ftp")
ROUTER = Router(id="router-1", revision=4, admin_state_up=True, interfaces=[RPORT],
                gateway=RouterPort(id="port-8", network_id="ext", mac="fa:16:3e:00:00:08", mtu=1500,
                                   addresses=["198.18.100.10/24"]),
                gateway_ip="198.18.100.1", enable_snat=True, floating_ips=[FIP],
                routes=[["10.9.0.0/24", "10.0.0.254"]], conntrack_helpers=[CTHELPER])
HAROUTER = HaRouter(vr_id=1, interface=RouterPort(id="port-9", network_id="ha-net", mac="fa:16:3e:00:00:09",
                                                  mtu=1450, addresses=["169.254.192.3/18"]), state="standby")
NEIGHBOR = Neighbor(ip="10.0.0.5", mac="fa:16:3e:00:00:01")
DVR = DvrRouter(local=True, central=False, neighbors=[NEIGHBOR],
                snat_ports=[RouterPort(id="port-10", network_id="net-1", mac="fa:16:3e:00:00:10", mtu=1450,
                                       addresses=["10.0.0.3/24"])])
FIPGW = FipGateway(network_id="ext", port=RouterPort(id="port-11", network_id="ext", mac="fa:16:3e:00:00:11",
                                                     mtu=1500, addresses=["198.18.100.11/24"]),
                   gateway_ip="198.18.100.1")
QOS = QosRules(policy_id="qos-1", egress=BandwidthLimit(20000, 2000), ingress=BandwidthLimit(10000), dscp_mark=10)
FWRULE = FirewallRule(action="deny", ip_version=4, protocol=6, source_ip="198.18.0.0/16", destination_port="80")
FWGROUP = FirewallGroup(id="fwg-1", revision=2, ports=["port-7"], ingress=[FWRULE, FirewallRule("allow", 4)],
                        egress=None, status="PENDING_CREATE")
MRULE = MeteringRule(direction="ingress", remote_ip_prefix="198.18.0.0/16")
MLABEL = MeteringLabel(id="label-1", rules=[MRULE, MeteringRule(direction="egress", excluded=True,
                                                                 destination_ip_prefix="10.0.0.0/8")])
PFWD = PortForwarding(id="pf-1", floating_ip="198.18.100.20", protocol="tcp", external_port="8022",
                      internal_ip="10.0.0.5", internal_port="22")

SAMPLES: list[Any] = [
    CTHELPER,
    Hint(kind="port", id="port-1", revision=4, network_id="net-1", host="compute-1"),
    Hint(kind="agent", id="agent-1", revision=0),
    ProbeRequest(host="compute-1", ports=["port-1"], filters=["port-1"], routers=["router-1"]),
    ProbeResult(),
    ProbeReply(host="compute-1", agent_type="Linux bridge agent", results={
        "port port-1": ProbeResult(checked=["tap port-1"], missing=["fdb fa:16:3e:00:00:02 dst 198.18.0.12"])}),
    ViewRequest(host="compute-1", agent_type="Linux bridge agent", network_ids=["net-1", "net-2"]),
    ViewRequest(host="compute-1", agent_type="DHCP agent"),
    StateReport(host="compute-1", agent_type="Linux bridge agent", binary="fermion-linuxbridge-agent", topic="N/A",
                configurations={"tunneling_ip": "198.18.0.11", "tunnel_types": ["vxlan"],
                                "interface_mappings": {"physnet1": "eth1"}, "devices": 3, "netns": None},
                start_flag=True),
    PortReport(host="compute-1", up={"port-1": 3, "port-2": 0}, down=["port-3"]),
    SEGMENT,
    Segment(network_type="flat", physical_network="physnet1", segmentation_id=None),
    REMOTE,
    L2NET,
    L2PORT,
    L2View(host="compute-1", networks=[L2NET], ports=[L2PORT], partial=True),
    L2View(host="compute-1", networks=[], ports=[]),
    DSUBNET,
    DSUBNET6,
    DOPT,
    DHOST,
    DhcpHost(port_id="port-2", mac="fa:16:3e:00:00:02", ip="10.0.0.6", subnet_id="sub-1"),
    DNET,
    DhcpView(host="net-1", networks=[DNET], partial=False),
    RULE,
    GROUP,
    PORTSEC,
    FIREWALL,
    L2View(host="compute-1", networks=[L2NET], ports=[L2PORT], firewall=FIREWALL),
    L2View(host="compute-1", networks=[L2NET], dvr_mac="fa:16:3f:00:00:01",
           ports=[L2Port(id="port-7", network_id="net-1", mac="fa:16:3e:00:00:07", revision=1, admin_state_up=True,
                         device_owner="network:router_interface_distributed", ips=["10.0.0.1", "2001:db8::1"])]),
    RPORT,
    FIP,
    ROUTER,
    L3View(host="network-1", routers=[ROUTER], partial=True),
    HAROUTER,
    dataclasses.replace(ROUTER, ha=HAROUTER),
    HaStateReport(host="network-1", states={"router-1": "active", "router-2": "standby"}),
    FloatingIp(floating_ip="198.18.100.21", fixed_ip="10.0.0.6"),  # from a 1.8 server
    FloatingIpStatus(revision=3, status="ACTIVE"),
    FloatingIpReport(host="network-1", statuses={"fip-1": FloatingIpStatus(3, "ACTIVE"),
                                                 "fip-2": FloatingIpStatus(1, "ERROR")}),
    NEIGHBOR,
    DVR,
    dataclasses.replace(ROUTER, distributed=DVR, ha=HAROUTER),
    FIPGW,
    L3View(host="compute-1", routers=[dataclasses.replace(ROUTER, distributed=DVR)], dvr_mac="fa:16:3f:00:00:01",
           fip_gateways=[FIPGW]),
    BandwidthLimit(max_kbps=20000),
    QOS,
    dataclasses.replace(L2PORT, qos=QOS),
    dataclasses.replace(FIP, qos=QosRules(policy_id="qos-2", dscp_mark=26)),
    FWRULE,
    FWGROUP,
    MRULE,
    MLABEL,
    PFWD,
    dataclasses.replace(ROUTER, gateway_qos=QOS, firewall_groups=[FWGROUP], metering_labels=[MLABEL],
                        port_forwardings=[PFWD]),
    FirewallStatus(revision=2, status="ACTIVE"),
    FirewallReport(host="network-1", statuses={"fwg-1": FirewallStatus(2, "ACTIVE")}),
    MeteringCounter(router_id="router-1", label_id="label-1", packets=10, bytes=840, epoch="e1"),
    MeteringReport(host="network-1", counters=[MeteringCounter("router-1", "label-1", 10, 840, "e1")]),
]


def test_the_samples_cover_every_message() -> None:
    assert {type(s) for s in SAMPLES} == set(MESSAGES)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip(msg: Any) -> None:
    data = encode(msg)
    assert decode(type(msg), data) == msg
    # what a transport carries: JSON text
    assert decode(type(msg), orjson.loads(orjson.dumps(data))) == msg


def test_omitted_optional_fields_take_their_defaults() -> None:
    assert decode(Hint, {"kind": "network", "id": "n", "revision": 0}) == Hint("network", "n", 0, None, None)
    assert decode(PortReport, {"host": "h"}) == PortReport("h", {}, [])
    view = decode(L2View, {"host": "h", "networks": [], "ports": []})
    assert view.partial is False
    assert view.dvr_mac == ""  # a 1.12 server's view: the OVS agent plans no DVR flows
    # a 1.8 server's floating IP: no id, so the agent reports nothing for it
    assert decode(FloatingIp, {"floating_ip": "198.18.100.20", "fixed_ip": "10.0.0.5"}) == FloatingIp(
        "198.18.100.20", "10.0.0.5", id="", revision=0, status="")


def test_unknown_keys_are_ignored() -> None:
    """A newer minor version may add optional fields: an older reader ignores them, at every level."""
    data = encode(Hint(kind="port", id="p", revision=2, network_id="n"))
    data["future_field"] = {"anything": [1, 2]}
    assert decode(Hint, data) == Hint(kind="port", id="p", revision=2, network_id="n")
    view = encode(L2View(host="h", networks=[L2NET], ports=[L2PORT]))
    view["extra"] = 1
    view["networks"][0]["qos"] = "gold"
    view["networks"][0]["segment"]["vlan_transparent"] = True
    view["networks"][0]["remote_ports"][0]["ips_v2"] = []
    view["ports"][0]["security_groups"] = ["sg"]
    assert decode(L2View, view) == L2View(host="h", networks=[L2NET], ports=[L2PORT])


@pytest.mark.parametrize("cls,data", [
    (Hint, {"kind": "port", "id": "p", "revision": "1"}),
    (Hint, {"kind": "port", "id": "p", "revision": True}),
    (Hint, {"kind": "port", "id": "p", "revision": 1.0}),
    (Hint, {"kind": "port", "id": 5, "revision": 1}),
    (Hint, {"kind": None, "id": "p", "revision": 1}),
    (Hint, {"kind": "port", "id": "p", "revision": 1, "network_id": 7}),
    (Hint, ["port", "p", 1]),
    (Hint, "port"),
    (ViewRequest, {"host": "h", "agent_type": "a", "network_ids": "net-1"}),
    (ViewRequest, {"host": "h", "agent_type": "a", "network_ids": [1]}),
    (StateReport, {"host": "h", "agent_type": "a", "binary": "b", "topic": "t", "configurations": [],
                   "start_flag": False}),
    (StateReport, {"host": "h", "agent_type": "a", "binary": "b", "topic": "t", "start_flag": "yes"}),
    (PortReport, {"host": "h", "up": {"p": "1"}}),
    (PortReport, {"host": "h", "up": ["p"]}),
    (PortReport, {"host": "h", "down": "p"}),
    (FloatingIpReport, {"host": "h", "statuses": {"f": {"revision": "1", "status": "ACTIVE"}}}),
    (FloatingIpReport, {"host": "h", "statuses": {"f": {"status": "ACTIVE"}}}),
    (FloatingIpReport, {"host": "h", "statuses": [{"revision": 1, "status": "ACTIVE"}]}),
    (L2View, {"host": "h", "networks": {}, "ports": []}),
    (L2View, {"host": "h", "networks": [{"id": "n", "mtu": 1450, "admin_state_up": True,
                                         "segment": {"network_type": "vxlan", "physical_network": None,
                                                     "segmentation_id": "1042"}}], "ports": []}),
    (L2View, {"host": "h", "networks": ["n"], "ports": []}),
    (L2Network, {"id": "n", "mtu": 1450, "admin_state_up": 1, "segment": {"network_type": "local",
                                                                          "physical_network": None,
                                                                          "segmentation_id": None}}),
    (DhcpSubnet, {"id": "s", "cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": None, "dns_nameservers": [],
                  "host_routes": [{"destination": "0.0.0.0/0", "nexthop": None}], "allocation_pools": []}),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_wrong_types_are_refused_with_value_error(cls: type, data: Any) -> None:
    with pytest.raises(ValueError):
        decode(cls, data)


def test_missing_required_fields_are_refused_with_value_error() -> None:
    with pytest.raises(ValueError):
        decode(Hint, {"kind": "port"})


def test_an_incomplete_message_is_answered_as_invalid_over_the_transport() -> None:
    transport = InProcTransport()
    transport.serve({"report_state": lambda body: encode(decode(StateReport, body))})
    with pytest.raises(RpcError) as err:
        transport.call("report_state", {"host": "compute-1"})
    assert err.value.type == "InvalidMessage"


def test_a_wrongly_typed_message_is_answered_as_invalid_over_the_transport() -> None:
    transport = InProcTransport()
    transport.serve({"report_ports": lambda body: encode(decode(PortReport, body))})
    with pytest.raises(RpcError) as err:
        transport.call("report_ports", {"host": "compute-1", "up": {"p": "3"}})
    assert err.value.type == "InvalidMessage"
    assert "PortReport.up" in str(err.value)
    ok = transport.call("report_ports", encode(PortReport(host="compute-1", up={"p": 3})))
    assert ok == encode(PortReport(host="compute-1", up={"p": 3}))
