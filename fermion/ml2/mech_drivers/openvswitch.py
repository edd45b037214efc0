"""The Open vSwitch mechanism driver: br-int with a host-local VLAN per network, br-tun for VXLAN, GRE and
Geneve tunnels, br-<physnet> bridges for flat and VLAN provider networks (docs/ovs.md). OVS runs its
userspace (netdev) datapath here, so it carries the segment types this kernel cannot (802.1Q, GRE, Geneve).

Security groups are enforced by the agent's OpenFlow firewall on br-int (conntrack zones per network, as
Neutron's "openvswitch" firewall driver; fermion/agent/ovs/firewall.py)."""

from __future__ import annotations

from typing import Any

from fermion.ml2.binding import AgentInfo
from fermion.ml2.segments import Segment

AGENT_TYPE = "Open vSwitch agent"
TUNNEL_TYPES = ("vxlan", "gre", "geneve")


class OpenvswitchDriver:
    name = "openvswitch"
    agent_type = AGENT_TYPE
    vif_type = "ovs"
    filters_ports = True  # the OpenFlow firewall on br-int

    def check_segment(self, segment: Segment, agent: AgentInfo) -> str | None:
        conf = agent.configurations
        kind = segment.network_type
        if kind == "local":
            return None
        if kind in ("flat", "vlan"):
            mappings = conf.get("bridge_mappings") or {}
            if segment.physical_network in mappings:
                return None
            return (f"physical network {segment.physical_network} is not mapped to a bridge on host "
                    f"{agent.host} (bridge_mappings: {sorted(mappings) or 'none'})")
        if kind in TUNNEL_TYPES:
            if kind in (conf.get("tunnel_types") or []) and conf.get("tunneling_ip"):
                return None
            return f"the {AGENT_TYPE} on host {agent.host} has no {kind} tunnels configured"
        return f"segment type {kind} is not supported by the {AGENT_TYPE}"

    def vif_details(self, segment: Segment) -> dict[str, Any]:
        # as Neutron's for a netdev datapath with its OpenFlow firewall (no hybrid plugging)
        return {"port_filter": True, "ovs_hybrid_plug": False, "datapath_type": "netdev",
                "bridge_name": "br-int", "connectivity": "l2"}
