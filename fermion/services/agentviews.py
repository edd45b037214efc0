"""What the L3 agent builds on its host (routers) and what the L2 agent filters there (security groups)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, select

from fermion.db import models as m
from fermion.rpc.contracts import (
    ConntrackHelper,
    DvrRouter,
    FipGateway,
    Firewall,
    FloatingIp,
    HaRouter,
    L3View,
    Neighbor,
    PortSecurity,
    Router,
    RouterPort,
    SecurityGroup,
    SecurityRule,
)
from fermion.services import conntrack_helpers, dvr, fwaas_views, metering, port_forwardings, qos_views
from fermion.services.address_groups import load_addresses
from fermion.services.ports import load_fixed_ips, load_port_groups
from fermion.services.routers import L3_AGENT, RouterService

# IANA numbers for the protocol names the API accepts (Neutron's list)
PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "icmpv6": 58, "igmp": 2,
             "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60,
             "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17,
             "udplite": 136, "vrrp": 112}


def protocol_number(protocol: str | None, ethertype: str) -> int | None:
    if protocol is None or protocol in ("", "any"):
        return None
    number = int(protocol) if protocol.isdigit() else PROTOCOLS[protocol.lower()]
    if ethertype == "IPv6" and number == 1:
        return 58  # "icmp" in an IPv6 rule means ICMPv6, as in Neutron
    return number


# ---------------------------------------------------------------- L3
def l3_view(conn: Connection, routers: RouterService, host: str, router_ids: Sequence[str] | None,
            write: bool = False) -> L3View:
    """The routers bound to the host's L3 agent (centralized ones, and the SNAT parts of distributed ones)
    and the distributed routers with a copy here. On a host running copies, its DVR MAC and floating-IP
    gateway ports are made or removed as needed: dvr.NeedsWrite when that cannot be done (write False)."""
    a, b, r = m.agents.c, m.router_l3_agents.c, m.routers.c
    stmt = (select(m.routers, b.ha_port_id, b.ha_state).join(m.router_l3_agents, b.router_id == r.id)
            .join(m.agents, a.id == b.l3_agent_id).where(a.host == host, a.agent_type == L3_AGENT))
    if router_ids is not None:
        stmt = stmt.where(r.id.in_(list(router_ids)))
    rows = [dict(x._mapping) for x in conn.execute(stmt)]
    central = {x["id"] for x in rows}
    copies = bool(dvr.copy_agents(conn, [host]))
    local = set(dvr.local_routers(conn, host)) if copies else set()
    if router_ids is not None:
        local &= set(router_ids)
    if local - central:
        rows += [{**x._mapping, "ha_port_id": None, "ha_state": None}
                 for x in conn.execute(select(m.routers).where(r.id.in_(sorted(local - central))))]
    ids = [x["id"] for x in rows]
    interfaces = routers.interface_ports(conn, ids) if ids else {}
    snat = _snat_ports(conn, [x["id"] for x in rows if x["distributed"]])
    dvr_mac = dvr.host_mac(conn, host, write) if copies else ""
    fip_gateways = routers.sync_fip_gateways(conn, host, write) if copies else {}
    gw_ids = [x["gw_port_id"] for x in rows if x["gw_port_id"]]
    ha_ids = [x["ha_port_id"] for x in rows if x["ha"] and x["ha_port_id"]]
    port_ids = gw_ids + ha_ids + [p["id"] for ps in interfaces.values() for p in ps] + \
        [p for ps in snat.values() for p in ps] + list(fip_gateways.values())
    ips = load_fixed_ips(conn, port_ids)
    subnet_ids = {f["subnet_id"] for v in ips.values() for f in v}
    s, sp = m.subnets.c, m.subnetpools.c
    subnets = {x.id: x for x in conn.execute(
        select(s.id, s.cidr, s.gateway_ip, s.network_id, sp.address_scope_id)
        .select_from(m.subnets.outerjoin(m.subnetpools, sp.id == s.subnetpool_id))
        .where(s.id.in_(list(subnet_ids))))} if subnet_ids else {}
    p, n = m.ports.c, m.networks.c
    ports = {x.id: x for x in conn.execute(select(p.id, p.network_id, p.mac_address, n.mtu)
                                           .join(m.networks, n.id == p.network_id)
                                           .where(p.id.in_(port_ids)))} if port_ids else {}
    fips = _floating_ips(conn, rows, host, local)
    neighbors = _neighbors(conn, {x["id"]: interfaces.get(x["id"], []) for x in rows if x["distributed"]})
    helpers = conntrack_helpers.exposed(conn, ids)
    forwardings = port_forwardings.router_view(conn, ids)

    def router_port(port_id: str) -> RouterPort:
        row = ports[port_id]
        addresses = [f"{x['ip_address']}/{netaddr.IPNetwork(subnets[x['subnet_id']].cidr).prefixlen}"
                     for x in ips.get(port_id, []) if x["subnet_id"] in subnets]
        scopes: dict[bool, str | None] = {}
        for x in ips.get(port_id, []):
            if x["subnet_id"] in subnets:
                scopes.setdefault(":" in x["ip_address"], subnets[x["subnet_id"]].address_scope_id)
        return RouterPort(id=port_id, network_id=row.network_id, mac=row.mac_address, mtu=row.mtu,
                          addresses=addresses, ipv4_address_scope=scopes.get(False),
                          ipv6_address_scope=scopes.get(True))

    def gateway_ip(port_id: str) -> str | None:
        for x in ips.get(port_id, []):
            sub = subnets.get(x["subnet_id"])
            if sub is not None and sub.gateway_ip and netaddr.IPAddress(sub.gateway_ip).version == 4:
                return str(sub.gateway_ip)
        return None

    out = []
    for row in rows:
        gateway, gw_ip = None, None
        if row["gw_port_id"] in ports:
            gateway, gw_ip = router_port(row["gw_port_id"]), gateway_ip(row["gw_port_id"])
        shared = None
        if row["distributed"]:
            shared = DvrRouter(local=row["id"] in local, central=row["id"] in central,
                               snat_ports=[router_port(x) for x in snat.get(row["id"], []) if x in ports],
                               neighbors=neighbors.get(row["id"], []))
        out.append(Router(
            id=row["id"], revision=row["revision_number"], admin_state_up=row["admin_state_up"],
            interfaces=[router_port(x["id"]) for x in interfaces.get(row["id"], []) if x["id"] in ports],
            gateway=gateway, gateway_ip=gw_ip, enable_snat=row["enable_snat"],
            floating_ips=fips.get(row["id"], []) if gateway is not None else [],
            routes=[[x["destination"], x["nexthop"]] for x in row["routes"] or []],
            conntrack_helpers=[ConntrackHelper(**h) for h in helpers.get(row["id"], [])],
            port_forwardings=forwardings.get(row["id"], []) if gateway is not None else [],
            ha=HaRouter(vr_id=row["ha_vr_id"], interface=router_port(row["ha_port_id"]), state=row["ha_state"])
            if row["ha"] and row["ha_port_id"] in ports and row["ha_vr_id"] else None,
            distributed=shared))
    gateways = [FipGateway(network_id=net, port=router_port(pid), gateway_ip=gateway_ip(pid))
                for net, pid in sorted(fip_gateways.items()) if pid in ports]
    out = metering.with_labels(conn, out, {x["id"]: x["project_id"] for x in rows})
    out = fwaas_views.fill(conn, out)
    out = qos_views.l3_routers(conn, out)
    return L3View(host=host, routers=out, partial=router_ids is not None, dvr_mac=dvr_mac, fip_gateways=gateways)


def _snat_ports(conn: Connection, router_ids: list[str]) -> dict[str, list[str]]:
    if not router_ids:
        return {}
    rp, p = m.router_ports.c, m.ports.c
    out: dict[str, list[str]] = defaultdict(list)
    for router_id, port_id in conn.execute(select(rp.router_id, rp.port_id).join(m.ports, p.id == rp.port_id)
                                           .where(rp.router_id.in_(router_ids), rp.port_type == dvr.SNAT_OWNER)
                                           .order_by(p.network_id, p.id)):
        out[router_id].append(port_id)
    return out


def _floating_ips(conn: Connection, rows: list[dict[str, Any]], host: str, local: set[str]
                  ) -> dict[str, list[FloatingIp]]:
    """A centralized router's floating IPs; a distributed router's where its copy is here, of the instances
    bound here."""
    wanted = [x["id"] for x in rows if not x["distributed"] or x["id"] in local]
    distributed = {x["id"] for x in rows if x["distributed"]}
    fips: dict[str, list[FloatingIp]] = defaultdict(list)
    if not wanted:
        return fips
    f, p = m.floatingips.c, m.ports.c
    for fr in conn.execute(select(f.router_id, f.floating_ip_address, f.fixed_ip_address, f.id, f.revision_number,
                                  f.status, p.binding_host_id).join(m.ports, p.id == f.fixed_port_id)
                           .where(f.router_id.in_(wanted)).order_by(f.floating_ip_address)):
        if fr.router_id in distributed and fr.binding_host_id != host:
            continue
        fips[fr.router_id].append(FloatingIp(floating_ip=fr.floating_ip_address, fixed_ip=fr.fixed_ip_address,
                                             id=fr.id, revision=fr.revision_number, status=fr.status))
    return fips


def _neighbors(conn: Connection, interfaces: dict[str, list[dict[str, Any]]]) -> dict[str, list[Neighbor]]:
    """Each distributed router's static neighbours: every port with an address on its interface subnets
    (instances on every host, SNAT and DHCP ports), less its own interfaces."""
    by_subnet: dict[str, set[str]] = defaultdict(set)
    own: set[str] = set()
    for router_id, ports in interfaces.items():
        for port in ports:
            own.add(port["id"])
            for f in port["fixed_ips"]:
                by_subnet[f["subnet_id"]].add(router_id)
    out: dict[str, list[Neighbor]] = defaultdict(list)
    if not by_subnet:
        return out
    a, p = m.ip_allocations.c, m.ports.c
    for subnet_id, ip, mac, port_id in conn.execute(
            select(a.subnet_id, a.ip_address, p.mac_address, p.id).join(m.ports, p.id == a.port_id)
            .where(a.subnet_id.in_(sorted(by_subnet))).order_by(a.ip_address)):
        if port_id not in own:
            for router_id in by_subnet[subnet_id]:
                out[router_id].append(Neighbor(ip=ip, mac=mac))
    return out


# ---------------------------------------------------------------- security groups
def firewall_view(conn: Connection, host: str) -> Firewall:
    """The ports bound to the host, and the interfaces of the distributed routers with a copy here (bound to no
    host, plugged on every host with a copy; the OVS firewall isolates a plugged port it is not told about)."""
    p, rp = m.ports.c, m.router_ports.c
    cols = (p.id, p.network_id, p.mac_address, p.port_security_enabled, p.allowed_address_pairs, p.device_owner)
    rows = list(conn.execute(select(*cols).where(p.binding_host_id == host,
                                                 p.binding_vif_type.in_(("bridge", "ovs")))))
    copies = dvr.local_routers(conn, host)
    if copies:
        rows += conn.execute(select(*cols).join(m.router_ports, rp.port_id == p.id).where(
            rp.router_id.in_(copies), rp.port_type == dvr.DVR_INTERFACE_OWNER))
    rows.sort(key=lambda x: x.id)
    ids = [x.id for x in rows]
    ips = load_fixed_ips(conn, ids)
    groups = load_port_groups(conn, ids)
    ports = []
    for row in rows:
        # ports the network itself owns (router, DHCP) are trusted, as in Neutron
        secured = bool(row.port_security_enabled) and not row.device_owner.startswith("network:")
        ports.append(PortSecurity(
            id=row.id, mac=row.mac_address, ips=[x["ip_address"] for x in ips.get(row.id, [])],
            allowed_pairs=[[x["ip_address"], x["mac_address"]] for x in row.allowed_address_pairs or []],
            groups=groups.get(row.id, []) if secured else [], port_security=secured, network_id=row.network_id))
    wanted = sorted({g for x in ports for g in x.groups})
    rules = _groups(conn, wanted)
    return Firewall(ports=ports, groups=rules, members=remote_members(conn, wanted),
                    address_groups=address_group_cidrs(conn, rules))


def _groups(conn: Connection, wanted: list[str]) -> list[SecurityGroup]:
    stateful, rules = security_rules(conn, wanted)
    return [SecurityGroup(id=sg, stateful=stateful[sg], rules=[rule for _, rule in rules.get(sg, [])])
            for sg in wanted if sg in stateful]


def security_rules(conn: Connection, wanted: Sequence[str]
                   ) -> tuple[dict[str, bool], dict[str, list[tuple[str, SecurityRule]]]]:
    """(group -> stateful, group -> [(rule id, rule as the agents get it)]) of the existing groups among wanted."""
    if not wanted:
        return {}, {}
    g, r = m.securitygroups.c, m.securitygrouprules.c
    stateful = {k: bool(v) for k, v in conn.execute(select(g.id, g.stateful).where(g.id.in_(list(wanted)))).all()}
    rules: dict[str, list[tuple[str, SecurityRule]]] = defaultdict(list)
    for x in conn.execute(select(r.id, r.security_group_id, r.direction, r.ethertype, r.protocol, r.port_range_min,
                                 r.port_range_max, r.remote_ip_prefix, r.remote_group_id,
                                 r.remote_address_group_id)
                          .where(r.security_group_id.in_(list(wanted))).order_by(r.id)):
        prefix = str(netaddr.IPNetwork(x.remote_ip_prefix).cidr) if x.remote_ip_prefix else None
        rules[x.security_group_id].append((x.id, SecurityRule(
            direction=x.direction, ethertype=x.ethertype, protocol=protocol_number(x.protocol, x.ethertype),
            port_min=x.port_range_min, port_max=x.port_range_max, remote_ip_prefix=prefix,
            remote_group=x.remote_group_id, remote_address_group=x.remote_address_group_id)))
    return stateful, rules


def address_group_cidrs(conn: Connection, groups: Sequence[SecurityGroup]) -> dict[str, list[str]]:
    """The CIDRs of each address group the rules name as remote (empty groups included)."""
    wanted = sorted({r.remote_address_group for g in groups for r in g.rules if r.remote_address_group})
    if not wanted:
        return {}
    found = load_addresses(conn, wanted)
    return {ag: found.get(ag, []) for ag in wanted}


def remote_members(conn: Connection, groups: list[str]) -> dict[str, list[str]]:
    """Addresses of the ports in each group that the given groups' rules name as remote."""
    if not groups:
        return {}
    r = m.securitygrouprules.c
    remote = sorted({x[0] for x in conn.execute(select(r.remote_group_id).where(
        r.security_group_id.in_(groups), r.remote_group_id.is_not(None)).distinct())})
    if not remote:
        return {}
    b, p = m.port_security_groups.c, m.ports.c
    rows = conn.execute(select(b.security_group_id, p.id, p.allowed_address_pairs)
                        .join(m.ports, p.id == b.port_id).where(b.security_group_id.in_(remote))).all()
    ips = load_fixed_ips(conn, sorted({x.id for x in rows}))
    out: dict[str, set[str]] = {g: set() for g in remote}
    for sg, port_id, pairs in rows:
        out[sg].update(x["ip_address"] for x in ips.get(port_id, []))
        out[sg].update(_pair_address(x["ip_address"]) for x in pairs or [])
    return {g: sorted(v) for g, v in out.items()}


def _pair_address(value: Any) -> str:
    net = netaddr.IPNetwork(value)
    return str(net.ip) if net.size == 1 else str(net.cidr)
