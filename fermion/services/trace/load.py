"""The part of the database a trace needs, read in one transaction: the two endpoints' ports and networks, the
routers reachable from their networks through router interfaces (a few levels), the external networks, floating
IPs and port forwardings on those routers, the endpoints' security groups (rules converted as the L2 agents get
them, agentviews.py), the FWaaS groups on the routers' interfaces (rules as the L3 agents get them,
fwaas_views.py), and the agents of the hosts involved."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, select

from fermion.db import models as m
from fermion.rpc.contracts import SecurityGroup as ViewGroup
from fermion.services import dvr, l3_ha
from fermion.services.agents import AgentService
from fermion.services.agentviews import address_group_cidrs, remote_members, security_rules
from fermion.services.fwaas import policy_rules
from fermion.services.fwaas_views import rule_view
from fermion.services.ports import load_fixed_ips, load_port_groups
from fermion.services.query import chunks
from fermion.services.routers import GATEWAY_OWNER, INTERFACE_TYPES
from fermion.services.trace.model import (
    Agent,
    Binding,
    FirewallGroup,
    FixedIp,
    FloatingIp,
    Forwarding,
    FwRule,
    Model,
    Network,
    Port,
    Router,
    SecurityGroup,
    SgRule,
    Subnet,
)

DEPTH = 4  # routers chained behind routers: how far the model reaches from the endpoints' networks


def load(conn: Connection, agents: AgentService, port_ids: Sequence[str]) -> Model:
    model = Model()
    endpoints = _ports(conn, port_ids)
    model.ports.update(endpoints)
    networks = {p.network_id for p in endpoints.values()}
    _routers(conn, agents, model, networks)
    n = m.networks.c
    networks |= {r[0] for r in conn.execute(select(n.id).where(n.router_external.is_(True)))}
    networks |= {p.network_id for p in model.ports.values()}
    _networks(conn, model, networks)
    _floating_ips(conn, model, list(endpoints))
    _security_groups(conn, model, sorted({g for p in endpoints.values() for g in p.groups}))
    _firewall_groups(conn, model)
    hosts = {p.host for p in endpoints.values() if p.host} | {b.host for r in model.routers.values()
                                                              for b in r.bindings}
    hosts |= {h for r in model.routers.values() for h in r.copies}
    for host, found in agents.by_host(conn, sorted(hosts)).items():
        model.agents[host] = tuple(Agent(a.host, a.agent_type, a.alive) for a in found)
    return model


def _ports(conn: Connection, ids: Iterable[str]) -> dict[str, Port]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    p = m.ports.c
    rows = [r for part in chunks(wanted) for r in conn.execute(select(m.ports).where(p.id.in_(part)))]
    ips = load_fixed_ips(conn, wanted)
    groups = load_port_groups(conn, wanted)
    out = {}
    for r in rows:
        # ports the network itself owns (router, DHCP) are not filtered, as in the agents' firewall view
        secured = bool(r.port_security_enabled) and not r.device_owner.startswith("network:")
        out[r.id] = Port(
            id=r.id, name=r.name, project_id=r.project_id, network_id=r.network_id, mac=r.mac_address,
            admin_state_up=bool(r.admin_state_up), status=r.status, device_owner=r.device_owner,
            device_id=r.device_id, host=r.binding_host_id or "", revision=r.revision_number,
            fixed_ips=tuple(FixedIp(f["subnet_id"], f["ip_address"]) for f in ips.get(r.id, [])),
            allowed_pairs=tuple((a["ip_address"], a.get("mac_address") or r.mac_address)
                                for a in r.allowed_address_pairs or []),
            port_security=secured, groups=tuple(groups.get(r.id, [])) if secured else ())
    return out


def _routers(conn: Connection, agents: AgentService, model: Model, networks: set[str]) -> None:
    """Routers with an interface on the networks, and those behind them, DEPTH levels deep."""
    rp, p, r = m.router_ports.c, m.ports.c, m.routers.c
    seen_networks: set[str] = set()
    frontier = set(networks)
    for _ in range(DEPTH):
        frontier -= seen_networks
        if not frontier:
            break
        seen_networks |= frontier
        found = {row[0] for part in chunks(sorted(frontier)) for row in conn.execute(
            select(rp.router_id).join(m.ports, p.id == rp.port_id)
            .where(p.network_id.in_(part), rp.port_type.in_(INTERFACE_TYPES)))} - set(model.routers)
        if not found:
            break
        owned: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for router_id, port_id, port_type in conn.execute(select(rp.router_id, rp.port_id, rp.port_type)
                                                          .where(rp.router_id.in_(sorted(found)))):
            owned[router_id].append((port_id, port_type))
        ports = _ports(conn, [pid for v in owned.values() for pid, _ in v])
        model.ports.update(ports)
        bindings = l3_ha.bindings(conn, sorted(found))
        alive = _alive_agents(conn, agents, [b["agent_id"] for v in bindings.values() for b in v])
        copies = dvr.local_hosts(conn, sorted(found))
        for row in conn.execute(select(m.routers).where(r.id.in_(sorted(found)))):
            mine = owned.get(row.id, [])
            model.routers[row.id] = Router(
                id=row.id, name=row.name, admin_state_up=bool(row.admin_state_up),
                interfaces=tuple(sorted(pid for pid, kind in mine if kind in INTERFACE_TYPES and pid in ports)),
                gateway=row.gw_port_id if row.gw_port_id in ports and any(
                    kind == GATEWAY_OWNER for pid, kind in mine if pid == row.gw_port_id) else None,
                enable_snat=bool(row.enable_snat),
                routes=tuple((x["destination"], x["nexthop"]) for x in row.routes or []),
                distributed=bool(row.distributed), ha=bool(row.ha),
                bindings=tuple(Binding(b["host"], alive.get(b["agent_id"], False), b["ha_state"])
                               for b in bindings.get(row.id, [])),
                copies=tuple(copies.get(row.id, [])))
        frontier = {ports[pid].network_id for v in owned.values() for pid, kind in v
                    if kind in INTERFACE_TYPES and pid in ports}


def _alive_agents(conn: Connection, service: AgentService, agent_ids: list[str]) -> dict[str, bool]:
    if not agent_ids:
        return {}
    a = m.agents.c
    rows = conn.execute(select(a.id, a.heartbeat_timestamp).where(a.id.in_(sorted(set(agent_ids))))).all()
    return {r.id: service.alive(r.heartbeat_timestamp) for r in rows}


def _networks(conn: Connection, model: Model, ids: set[str]) -> None:
    if not ids:
        return
    n, s, sp = m.networks.c, m.subnets.c, m.subnetpools.c
    for part in chunks(sorted(ids)):
        for net in conn.execute(select(n.id, n.name, n.admin_state_up, n.router_external).where(n.id.in_(part))):
            model.networks[net.id] = Network(net.id, net.name, bool(net.admin_state_up), bool(net.router_external))
        for row in conn.execute(select(s.id, s.name, s.network_id, s.cidr, s.ip_version, s.gateway_ip, s.host_routes,
                                       sp.address_scope_id)
                                .select_from(m.subnets.outerjoin(m.subnetpools, sp.id == s.subnetpool_id))
                                .where(s.network_id.in_(part))):
            model.subnets[row.id] = Subnet(
                id=row.id, name=row.name, network_id=row.network_id, cidr=row.cidr, ip_version=row.ip_version,
                gateway_ip=row.gateway_ip, host_routes=tuple((x["destination"], x["nexthop"])
                                                             for x in row.host_routes or []),
                address_scope=row.address_scope_id)


def _floating_ips(conn: Connection, model: Model, endpoints: list[str]) -> None:
    """The routers' floating IPs (SNAT of their instances, DNAT towards the endpoints) and the port forwardings
    of those routers' floating IPs to the endpoints."""
    routers = sorted(model.routers)
    if not routers:
        return
    f, pf = m.floatingips.c, m.port_forwardings.c
    found = [row for part in chunks(routers) for row in conn.execute(select(m.floatingips)
                                                                     .where(f.router_id.in_(part)))]
    model.floating_ips = tuple(FloatingIp(r.id, r.floating_ip_address, r.floating_network_id, r.fixed_port_id,
                                          r.fixed_ip_address, r.router_id, r.status) for r in found)
    ids = [r.id for r in found]
    if not ids or not endpoints:
        return
    model.forwardings = tuple(
        Forwarding(r.id, r.floatingip_id, r.protocol, (r.external_port_start, r.external_port_end),
                   r.internal_port_id, r.internal_ip_address, (r.internal_port_start, r.internal_port_end))
        for part in chunks(ids) for r in conn.execute(select(m.port_forwardings).where(
            pf.floatingip_id.in_(part), pf.internal_port_id.in_(endpoints))))


def _security_groups(conn: Connection, model: Model, wanted: list[str]) -> None:
    if not wanted:
        return
    stateful, rules = security_rules(conn, wanted)
    g = m.securitygroups.c
    names = dict(conn.execute(select(g.id, g.name).where(g.id.in_(wanted))).all())
    for gid in wanted:
        if gid in stateful:
            model.groups[gid] = SecurityGroup(gid, names.get(gid, ""), stateful[gid],
                                              tuple(SgRule(rid, rule) for rid, rule in rules.get(gid, [])))
    model.members = {k: tuple(v) for k, v in remote_members(conn, wanted).items()}
    views = [ViewGroup(id=gid, stateful=stateful[gid], rules=[rule for _, rule in rules.get(gid, [])])
             for gid in wanted if gid in stateful]
    model.address_groups = {k: tuple(v) for k, v in address_group_cidrs(conn, views).items()}


def _firewall_groups(conn: Connection, model: Model) -> None:
    """FWaaS v2 groups on the routers' interfaces, their policies' enabled rules in order."""
    interfaces = sorted({pid for r in model.routers.values() for pid in r.interfaces})
    if not interfaces:
        return
    gp, g, fr = m.firewall_group_ports_v2.c, m.firewall_groups_v2.c, m.firewall_rules_v2.c
    placed: dict[str, list[str]] = defaultdict(list)
    for part in chunks(interfaces):
        for gid, port_id in conn.execute(select(gp.firewall_group_id, gp.port_id).where(gp.port_id.in_(part))):
            placed[gid].append(port_id)
    if not placed:
        return
    rows = {r.id: r for r in conn.execute(select(m.firewall_groups_v2).where(g.id.in_(sorted(placed))))}
    policies = sorted({p for r in rows.values() for p in (r.ingress_firewall_policy_id, r.egress_firewall_policy_id)
                       if p})
    ordered = policy_rules(conn, policies) if policies else {}
    rule_ids = sorted({rid for ids in ordered.values() for rid in ids})
    rules: dict[str, FwRule] = {}
    for part in chunks(rule_ids):
        for row in conn.execute(select(m.firewall_rules_v2).where(fr.id.in_(part), fr.enabled.is_(True))):
            rules[row.id] = FwRule(row.id, row.name, rule_view(dict(row._mapping)))

    def direction(policy_id: str | None) -> tuple[FwRule, ...] | None:
        if not policy_id:
            return None
        return tuple(rules[rid] for rid in ordered.get(policy_id, []) if rid in rules)

    for gid, ports in placed.items():
        found = rows.get(gid)
        if found is None:
            continue
        group = FirewallGroup(id=gid, name=found.name, admin_state_up=bool(found.admin_state_up), status=found.status,
                              ports=tuple(sorted(ports)), ingress=direction(found.ingress_firewall_policy_id),
                              egress=direction(found.egress_firewall_policy_id))
        for port_id in ports:
            model.firewall_groups[port_id] = group
