"""What an L2 agent must build on its host: the ports bound there, their networks with the segment the
agent carries, and (L2 population) where the other ports of those networks live."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Connection, select

from fermion.db import models as m
from fermion.ml2.binding import PortBinder
from fermion.ml2.manager import load_segments
from fermion.ml2.mech_drivers.linuxbridge import AGENT_TYPE as LINUXBRIDGE
from fermion.ml2.mech_drivers.openvswitch import AGENT_TYPE as OPENVSWITCH
from fermion.rpc.contracts import L2Network, L2Port, L2View, RemotePort, Segment
from fermion.services import dvr, qos_views
from fermion.services.agents import AgentService
from fermion.services.dvr import DVR_INTERFACE_OWNER
from fermion.services.ports import load_fixed_ips

TUNNEL_TYPES = ("vxlan", "gre", "geneve")
L2_AGENTS = (LINUXBRIDGE, OPENVSWITCH)
VIF_TYPES = ("bridge", "ovs")  # the ports an L2 agent plugs (Linux bridge or Open vSwitch)


def l2_view(conn: Connection, agents: AgentService, binder: PortBinder, host: str,
            network_ids: Sequence[str] | None = None, write: bool = False) -> L2View:
    """On a host running distributed routers' copies the view carries the host's DVR MAC (made on first need:
    dvr.NeedsWrite when that cannot be done, write False) and the copies' interface addresses."""
    p = m.ports.c
    cols = (p.id, p.network_id, p.mac_address, p.revision_number, p.admin_state_up, p.device_owner)
    stmt = select(*cols).where(p.binding_host_id == host, p.binding_vif_type.in_(VIF_TYPES))
    # an HA router's ports are bound to its active host, but every host carrying the router plugs them (the
    # standby keeps them down until keepalived makes it active)
    rp, b, a = m.router_ports.c, m.router_l3_agents.c, m.agents.c
    replicated = (select(*cols).join(m.router_ports, rp.port_id == p.id)
                  .join(m.router_l3_agents, b.router_id == rp.router_id).join(m.agents, a.id == b.l3_agent_id)
                  .where(a.host == host, b.ha_state.is_not(None), p.binding_host_id != host,
                         p.binding_vif_type.in_(VIF_TYPES), rp.port_type != DVR_INTERFACE_OWNER))
    # a distributed router's interfaces are bound to no host: every host with a copy of it plugs them
    copies = dvr.local_routers(conn, host)
    distributed = (select(*cols).join(m.router_ports, rp.port_id == p.id)
                   .where(rp.router_id.in_(copies), rp.port_type == DVR_INTERFACE_OWNER))
    queries = [stmt, replicated] + ([distributed] if copies else [])
    if network_ids is not None:
        queries = [q.where(p.network_id.in_(list(network_ids))) for q in queries]
    ports = [L2Port(id=r[0], network_id=r[1], mac=r[2], revision=r[3], admin_state_up=r[4], device_owner=r[5])
             for q in queries for r in conn.execute(q)]
    net_ids = sorted({port.network_id for port in ports})
    me = next((a for a in agents.on_host(conn, host) if a.agent_type in L2_AGENTS), None)
    dvr_mac = dvr.host_mac(conn, host, write) if copies else ""  # host-wide: in partial views too
    if not net_ids or me is None:
        return L2View(host=host, networks=[], ports=[], partial=network_ids is not None, dvr_mac=dvr_mac)
    n = m.networks.c
    nets = conn.execute(select(n.id, n.mtu, n.admin_state_up).where(n.id.in_(net_ids))).all()
    segments = load_segments(conn, net_ids)
    remote = _remote_ports(conn, agents, host, net_ids, me.configurations.get("tunnel_types") or [])
    networks, carried = [], set()
    for net_id, mtu, admin_up in nets:
        seg = binder.segment_for(segments.get(net_id, []), me)
        if seg is None:
            continue
        carried.add(net_id)
        rports = remote.get(net_id, []) if seg.network_type in TUNNEL_TYPES else []
        networks.append(L2Network(id=net_id, mtu=mtu, admin_state_up=admin_up,
                                  segment=Segment(seg.network_type, seg.physical_network, seg.segmentation_id),
                                  vteps=sorted({r.vtep for r in rports}), remote_ports=rports))
    ports = _trunks(conn, qos_views.l2_ports(conn, [x for x in ports if x.network_id in carried]))
    if copies:
        ports = _router_addresses(conn, ports)
    return L2View(host=host, networks=networks, ports=ports, partial=network_ids is not None, dvr_mac=dvr_mac)


def _router_addresses(conn: Connection, ports: list[L2Port]) -> list[L2Port]:
    """Distributed router interfaces carry their addresses (the OVS agent keeps their ARP off the fabric)."""
    ids = [x.id for x in ports if x.device_owner == DVR_INTERFACE_OWNER]
    ips = load_fixed_ips(conn, ids) if ids else {}
    return [replace(x, ips=[f["ip_address"] for f in ips[x.id]]) if x.id in ips else x for x in ports]


def _trunks(conn: Connection, ports: list[L2Port]) -> list[L2Port]:
    """Trunk parents carry their trunk's id, subports their parent and VLAN (the OVS agent's trunk bridges)."""
    ids = [x.id for x in ports]
    if not ids:
        return ports
    t, sp = m.trunks.c, m.subports.c
    parents = dict(conn.execute(select(t.port_id, t.id).where(t.port_id.in_(ids))).all())
    subs = {r[0]: (r[1], r[2]) for r in conn.execute(
        select(sp.port_id, t.port_id, sp.segmentation_id).join(m.trunks, t.id == sp.trunk_id)
        .where(sp.port_id.in_(ids)))}
    if not parents and not subs:
        return ports
    return [replace(x, trunk_id=parents.get(x.id, ""), parent_id=subs.get(x.id, ("", 0))[0],
                    segmentation_id=subs.get(x.id, ("", 0))[1]) for x in ports]


def _remote_ports(conn: Connection, agents: AgentService, host: str, net_ids: list[str],
                  tunnel_types: list[str]) -> dict[str, list[RemotePort]]:
    """Per network, the ports bound elsewhere, on hosts whose agent shares a tunnel type with this host's
    (a VXLAN network spans Linux-bridge and OVS hosts)."""
    a = m.agents.c
    vteps: dict[str, str] = {}
    for row in conn.execute(select(m.agents).where(a.agent_type.in_(L2_AGENTS), a.host != host)):
        conf = row.configurations or {}
        ip = conf.get("tunneling_ip")
        if ip and set(conf.get("tunnel_types") or []) & set(tunnel_types):
            vteps[row.host] = ip
    p = m.ports.c
    rows = conn.execute(select(p.id, p.network_id, p.mac_address, p.binding_host_id, p.allowed_address_pairs).where(
        p.network_id.in_(net_ids), p.binding_host_id != host, p.binding_host_id != "",
        p.binding_vif_type.in_(VIF_TYPES))).all()
    rows = [r for r in rows if r[3] in vteps]
    ips = load_fixed_ips(conn, [r[0] for r in rows])
    out: dict[str, list[RemotePort]] = defaultdict(list)
    for pid, net_id, mac, other, pairs in rows:
        by_mac: dict[str, list[str]] = defaultdict(list)
        by_mac[mac] = [f["ip_address"] for f in ips.get(pid, [])]
        for pair in pairs or []:  # the ARP responder must answer for allowed address pairs too
            if "/" not in pair["ip_address"] or pair["ip_address"].endswith(("/32", "/128")):
                by_mac[pair["mac_address"]].append(pair["ip_address"].split("/")[0])
        for each_mac, each_ips in by_mac.items():
            out[net_id].append(RemotePort(mac=each_mac, ips=each_ips, vtep=vteps[other]))
    for v in out.values():
        v.sort(key=lambda r: (r.vtep, r.mac))
    return out
