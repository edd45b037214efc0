"""Distributed routers on an Open vSwitch host: the flows that keep the fabric from seeing the router copies'
shared gateway MACs and addresses (docs/dvr.md), as Neutron's OVS DVR does on br-tun and br-<physnet>.

Every host with a copy of a distributed router has its qr- ports on br-int with the same MACs and addresses.
Frames leaving for the fabric (br-tun from patch-int, a physical bridge from phy-br-X) go through this host's
DVR process flows first: the copies' frames get the host's DVR MAC as source, their ARP and neighbour
discovery stay home, and so do frames to a copy's MAC and the instances' ARP and neighbour solicitations for
its addresses (the local copy answers them). Frames from the fabric to a copy's MAC, with a copy's MAC as
source (which would teach br-int that the gateway is remote) or asking for a copy's address (a Linux-bridge
host does not drop its instances' ARP for the gateway) are dropped; everything else, other hosts' DVR MACs
included, is delivered as before. Pure: the planner adds these flows to its own."""

from __future__ import annotations

import ipaddress

from fermion.rpc.contracts import L2Network, L2Port, L2View

INTERFACE_OWNER = "network:router_interface_distributed"
PROCESS = 1  # br-tun: frames from br-int before table 2 classifies them (Neutron's DVR_PROCESS)
ND_TYPES = (133, 134, 135, 136, 137)  # ICMPv6 router and neighbour solicitation/advertisement, redirect


def interfaces(view: L2View) -> dict[str, list[L2Port]]:
    """network id -> the local router copies' ports on it; none without a DVR MAC (no copy, or an old server)."""
    out: dict[str, list[L2Port]] = {}
    if not view.dvr_mac:
        return out
    for port in sorted(view.ports, key=lambda p: p.id):
        if port.device_owner == INTERFACE_OWNER:
            out.setdefault(port.network_id, []).append(port)
    return out


def _kept_home(port: L2Port) -> list[str]:
    """Matches of what a copy's port must not send to the fabric (besides frames from its MAC, rewritten)."""
    mac = port.mac.lower()
    out = [f"dl_dst={mac}", f"arp,dl_src={mac}"]
    out += [f"icmp6,dl_src={mac},icmp_type={t}" for t in ND_TYPES]
    return out + _asking_for(port)


def _asking_for(port: L2Port) -> list[str]:
    """ARP and neighbour solicitations for the port's addresses."""
    out = []
    for ip in sorted(port.ips):
        if ipaddress.ip_address(ip).version == 4:
            out.append(f"arp,arp_tpa={ip}")
        else:
            out.append(f"icmp6,icmp_type=135,nd_target={ip}")
    return out


def _not_accepted(port: L2Port) -> list[str]:
    """Matches of what the fabric must not deliver to this host's copy."""
    mac = port.mac.lower()
    return [f"dl_dst={mac}", f"dl_src={mac}", *_asking_for(port)]


def tunnel_flows(ports: list[L2Port], net: L2Network, lv: int, table: int, dvr_mac: str) -> list[str]:
    """br-tun: egress in the DVR process table (tagged with the local VLAN), ingress in the tunnel type's table
    (before its flow of the network's tunnel ID, priority 1)."""
    vni = f"{net.segment.segmentation_id:#x}"
    return _flows(ports, f"table={PROCESS},priority=3,dl_vlan={lv}", f"table={PROCESS},priority=2,dl_vlan={lv}",
                  "resubmit(,2)", f"table={table},priority=2,tun_id={vni}", dvr_mac)


def physical_flows(ports: list[L2Port], net: L2Network, lv: int, phy_end: str, dvr_mac: str) -> list[str]:
    """A physical bridge: egress from phy-br-X above the network's VLAN flow (priority 4), ingress from the wire
    at priority 1 (under every flow of phy-br-X's, which ends at its priority-2 drop)."""
    seg = net.segment
    vlan = f"dl_vlan={seg.segmentation_id}" if seg.network_type == "vlan" else "vlan_tci=0x0000/0x1fff"
    to_wire = f"mod_vlan_vid:{seg.segmentation_id}" if seg.network_type == "vlan" else "strip_vlan"
    leaving = f"in_port={phy_end},dl_vlan={lv}"
    return _flows(ports, f"table=0,priority=6,{leaving}", f"table=0,priority=5,{leaving}", f"{to_wire},NORMAL",
                  f"table=0,priority=1,{vlan}", dvr_mac)


def _flows(ports: list[L2Port], kept: str, rewritten: str, then: str, refused: str, dvr_mac: str) -> list[str]:
    """kept, rewritten, refused: the table, priority and network match of the flows keeping a port's frames
    home, rewriting its source MAC (whose actions go on with then) and refusing what arrives for it."""
    out = []
    for port in ports:
        out += [f"{kept},{m},actions=drop" for m in _kept_home(port)]
        out.append(f"{rewritten},dl_src={port.mac.lower()},actions=mod_dl_src:{dvr_mac.lower()},{then}")
        out += [f"{refused},{m},actions=drop" for m in _not_accepted(port)]
    return out
