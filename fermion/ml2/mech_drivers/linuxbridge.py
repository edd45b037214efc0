"""The Linux-bridge mechanism driver: one kernel bridge per network, VXLAN in the kernel, flat networks on a
physical interface. Kernel facts (docs/kernel.md): no 802.1Q devices and no GRE/Geneve here, so
VLAN, GRE and Geneve segments cannot be bound by this agent (Open vSwitch will carry them)."""

from __future__ import annotations

from typing import Any

from fermion.ml2.binding import AgentInfo
from fermion.ml2.segments import Segment

AGENT_TYPE = "Linux bridge agent"


class LinuxBridgeDriver:
    name = "linuxbridge"
    agent_type = AGENT_TYPE
    vif_type = "bridge"
    filters_ports = True

    def check_segment(self, segment: Segment, agent: AgentInfo) -> str | None:
        conf = agent.configurations
        kind = segment.network_type
        if kind == "local":
            return None
        if kind == "flat":
            mappings = conf.get("interface_mappings") or {}
            if segment.physical_network in mappings:
                return None
            return (f"physical network {segment.physical_network} is not mapped to an interface on host "
                    f"{agent.host} (interface_mappings: {sorted(mappings) or 'none'})")
        if kind == "vxlan":
            if "vxlan" in (conf.get("tunnel_types") or []) and conf.get("tunneling_ip"):
                return None
            return f"the agent on host {agent.host} has no VXLAN tunnel address configured"
        if kind == "vlan":
            why = "VLAN segments need 802.1Q devices or bridge vlan_filtering, which this kernel lacks"
        else:
            why = f"{kind} tunnels are not available in this kernel for Linux bridges"
        return (f"{why}; the {AGENT_TYPE} on host {agent.host} carries {_carried(conf)} segments; "
                f"Open vSwitch hosts carry {kind} (`fermion agent ovs`; in the lab `--hosts NAME:ovs`)")

    def vif_details(self, segment: Segment) -> dict[str, Any]:
        return {"port_filter": True, "connectivity": "l2"}


def _carried(conf: dict[str, Any]) -> str:
    """The segment types an agent with this configuration carries, for binding failures to point at."""
    kinds = ["local"]
    mappings = conf.get("interface_mappings") or {}
    if mappings:
        kinds.append(f"flat (physical networks {', '.join(sorted(mappings))})")
    if "vxlan" in (conf.get("tunnel_types") or []) and conf.get("tunneling_ip"):
        kinds.append("vxlan")
    return ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
