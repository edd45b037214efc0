"""The Open vSwitch mechanism driver: br-int with a host-local VLAN per network, br-tun for VXLAN, GRE and
Geneve tunnels, br-<physnet> bridges for flat and VLAN provider networks (docs/ovs.md). OVS runs its
userspace (netdev) datapath here, so it carries the segment types this kernel cannot (802.1Q, GRE, Geneve).

There is no OpenFlow security-group firewall yet: a port with port security enabled is not bound to an OVS
host (binding_failed, the reason says why) rather than bound there unfiltered."""

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
    filters_ports = False  # no OpenFlow firewall yet

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
        # as Neutron's for a netdev datapath without the OpenFlow firewall (no hybrid plugging)
        return {"port_filter": False, "ovs_hybrid_plug": False, "datapath_type": "netdev",
                "bridge_name": "br-int", "connectivity": "l2"}
