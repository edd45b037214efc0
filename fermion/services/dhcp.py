"""DHCP: scheduling networks to DHCP agents, their DHCP ports, and the DHCP agent's host view."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import netaddr
from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.ml2.binding import AgentInfo
from fermion.resources.base import AUTO
from fermion.rpc.contracts import DhcpHost, DhcpNetwork, DhcpOption, DhcpSubnet, DhcpView, Hint
from fermion.services import common, routed, zones
from fermion.services.agents import DHCP_AGENT, AgentService
from fermion.services.networks import DHCP_OWNER
from fermion.services.ports import PortService, dns_assignment, load_fixed_ips

RESERVED_PORT = "reserved_dhcp_port"  # Neutron's device_id of a DHCP port kept for the next agent


class NeedsWrite(Exception):
    """The view cannot be answered from a read transaction: a DHCP port must be created or completed."""


def dhcp_device_id(host: str, network_id: str) -> str:
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


def _pick(candidates: list[dict[str, Any]], zones_used: set[str], load: dict[str, int], need: int) -> list[str]:
    """Up to `need` of the candidate agents: one in each zone not used yet first (a zone lost keeps the
    others), then the least loaded."""
    if need <= 0:
        return []
    ordered = sorted(candidates, key=lambda a: (load.get(a["id"], 0), a["id"]))
    used, first = set(zones_used), []
    for agent in ordered:
        if agent["availability_zone"] not in used:
            first.append(agent["id"])
            used.add(agent["availability_zone"])
    return (first + [a["id"] for a in ordered if a["id"] not in first])[:need]


_a, _d = m.agents.c, m.network_dhcp_agents.c
# every DHCP agent, once per network of b_ids it hosts (hosted_network), or once with none
_DHCP_AGENTS_HOSTING = Prepared(
    select(m.agents, _d.network_id.label("hosted_network"))
    .select_from(m.agents.outerjoin(m.network_dhcp_agents, and_(
        _d.dhcp_agent_id == _a.id, _d.network_id.in_(bindparam("b_ids", expanding=True)))))
    .where(_a.agent_type == DHCP_AGENT))


class DhcpService:
    def __init__(self, agents: AgentService, ports: PortService, agents_per_network: int = 1) -> None:
        self.agents = agents
        self.ports = ports
        self.per_network = agents_per_network

    # ---------------------------------------------------------------- scheduling
    def schedule(self, conn: Connection, network_id: str) -> None:
        """Give the network DHCP agents up to agents_per_network, least loaded first; a routed network that
        many for each of its segments with DHCP subnets, from the agents whose host reaches the segment."""
        self._schedule(conn, [network_id])

    def schedule_unhosted(self, conn: Connection, fill: bool = False) -> None:
        """The networks with DHCP subnets no agent hosts, and the routed ones (a segment may lack agents).
        fill: also those with fewer than agents_per_network agents (an agent appeared or came back: it may
        take networks that had to do with fewer, e.g. its own after it was dead)."""
        s, d = m.subnets.c, m.network_dhcp_agents.c
        enough = 1 if not fill else self.per_network
        hosted = select(d.network_id).group_by(d.network_id).having(func.count() >= enough)
        rows = conn.execute(select(s.network_id).where(s.enable_dhcp.is_(True)).distinct()
                            .where(or_(s.segment_id.is_not(None), s.network_id.not_in(hosted)))).all()
        if rows:
            self._schedule(conn, sorted(r[0] for r in rows))

    def _schedule(self, conn: Connection, network_ids: list[str]) -> None:
        d, n = m.network_dhcp_agents.c, m.networks.c
        # the DHCP agents and which of the networks each hosts, in one read; without a live one (a cloud
        # without DHCP agents) there is nothing more to read
        hosting: dict[str, set[str]] = defaultdict(set)
        agents: dict[str, dict[str, Any]] = {}
        for row in _DHCP_AGENTS_HOSTING.dicts(conn, {"b_ids": network_ids}):
            hosted = row.pop("hosted_network")
            agents.setdefault(row["id"], row)
            if hosted is not None:
                hosting[hosted].add(row["id"])
        everyone = list(agents.values())
        alive = set(self.agents.ids_alive(everyone))
        if not alive:
            return
        segments = self._dhcp_segments(conn, network_ids)
        network_ids = [i for i in network_ids if i in segments or len(hosting[i]) < self.per_network]
        if not network_ids:
            return
        network_ids = [i for i in network_ids if i in segments or alive - hosting[i]]
        if not network_ids:
            return
        hints = {i: h for i, h in conn.execute(select(n.id, n.availability_zone_hints).where(n.id.in_(network_ids)))}
        load = {i: c for i, c in conn.execute(select(d.dhcp_agent_id, func.count()).group_by(d.dhcp_agent_id))}
        reached = self._reached(conn, everyone, [g for v in segments.values() for g in v]) if segments else {}
        for network_id in network_ids:
            if network_id not in hints:
                continue
            # a plain network: one group of every DHCP agent; a routed one: a group per segment, its agents
            # those whose host reaches it
            groups = [everyone] if network_id not in segments else [
                [a for a in everyone if seg_id in reached.get(a["host"], ())] for seg_id, _, _ in segments[network_id]]
            for able in groups:
                here = [a for a in able if a["id"] in hosting[network_id]]
                candidates = [a for a in zones.in_hinted_zones(able, hints[network_id])
                              if a["id"] in alive and a["id"] not in hosting[network_id]]
                for agent_id in _pick(candidates, {a["availability_zone"] for a in here}, load,
                                      self.per_network - len(here)):
                    hosting[network_id].add(agent_id)
                    load[agent_id] = load.get(agent_id, 0) + 1
                    if insert_if_absent(conn, m.network_dhcp_agents,
                                        {"network_id": network_id, "dhcp_agent_id": agent_id}):
                        common.emit(conn, Hint("network", network_id, 0, network_id))

    @staticmethod
    def _dhcp_segments(conn: Connection, network_ids: list[str]) -> dict[str, list[tuple[str, str, str | None]]]:
        """Of those networks the routed ones: their segments (id, type, physical network) with DHCP subnets."""
        s, g = m.subnets.c, m.network_segments.c
        out: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
        for network_id, seg_id, kind, physnet in conn.execute(
                select(s.network_id, g.id, g.network_type, g.physical_network).distinct()
                .join(m.network_segments, g.id == s.segment_id)
                .where(s.network_id.in_(network_ids), s.enable_dhcp.is_(True)).order_by(s.network_id, g.id)):
            out[network_id].append((seg_id, kind, physnet))
        return out

    def _reached(self, conn: Connection, dhcp_agents: list[dict[str, Any]],
                 segments: list[tuple[str, str, str | None]]) -> dict[str, set[str]]:
        """Per host of a DHCP agent: which of the segments it reaches (by the reports of all its agents)."""
        on_host = self.agents.by_host(conn, sorted({a["host"] for a in dhcp_agents}))
        return {host: {i for i, kind, physnet in segments if routed.reaches(kind, physnet, agents)}
                for host, agents in on_host.items()}

    def add(self, conn: Connection, agent_id: str, network_id: str) -> None:
        agent = self.agents.get(conn, agent_id)
        if agent["agent_type"] != DHCP_AGENT or not agent["admin_state_up"]:
            raise BadRequest(f"Agent {agent_id} is not a valid DHCP Agent or has been disabled",
                             type="InvalidDHCPAgent")
        if conn.execute(select(m.networks.c.id).where(m.networks.c.id == network_id)).first() is None:
            raise NotFound(f"Network {network_id} could not be found.", type="NetworkNotFound")
        if not insert_if_absent(conn, m.network_dhcp_agents, {"network_id": network_id, "dhcp_agent_id": agent_id}):
            raise Conflict(f"The network {network_id} has been already hosted by the DHCP Agent {agent_id}.",
                           type="NetworkHostedByDHCPAgent")
        common.emit(conn, Hint("network", network_id, 0, network_id))

    def remove(self, conn: Connection, agent_id: str, network_id: str) -> None:
        agent = self.agents.get(conn, agent_id)
        d = m.network_dhcp_agents.c
        res = conn.execute(delete(m.network_dhcp_agents).where(d.dhcp_agent_id == agent_id,
                                                               d.network_id == network_id))
        if res.rowcount == 0:
            raise Conflict(f"The network {network_id} is not hosted by the DHCP agent {agent_id}.",
                           type="NetworkNotHostedByDhcpAgent")
        port = self.ports.collection.get(conn, self._port_id(conn, agent["host"], network_id) or "")
        if port is not None:
            self.ports.delete(conn, port, None)
        common.emit(conn, Hint("network", network_id, 0, network_id))

    def network_ids(self, conn: Connection, agent_id: str) -> list[str]:
        d = m.network_dhcp_agents.c
        return [r[0] for r in conn.execute(select(d.network_id).where(d.dhcp_agent_id == agent_id))]

    def agent_ids(self, conn: Connection, network_id: str) -> list[str]:
        d = m.network_dhcp_agents.c
        return [r[0] for r in conn.execute(select(d.dhcp_agent_id).where(d.network_id == network_id))]

    # ---------------------------------------------------------------- failover (allow_automatic_dhcp_failover)
    @staticmethod
    def dead_bindings(conn: Connection, cutoff: datetime) -> list[tuple[str, str]]:
        """(network, agent) for each network on an enabled DHCP agent with no heartbeat since cutoff."""
        a, d = m.agents.c, m.network_dhcp_agents.c
        rows = conn.execute(select(d.network_id, d.dhcp_agent_id).join(m.agents, a.id == d.dhcp_agent_id)
                            .where(a.agent_type == DHCP_AGENT, a.admin_state_up.is_(True),
                                   a.heartbeat_timestamp < cutoff)
                            .order_by(a.heartbeat_timestamp, d.network_id)).all()
        return [(x.network_id, x.dhcp_agent_id) for x in rows]

    def move_off(self, conn: Connection, network_id: str, agent_id: str) -> bool:
        """Take the network from its dead agent, as Neutron: the agent's DHCP port is reserved (unbound, so a
        stale dnsmasq left on a live host is cut off) for the next agent to take with its address, and the
        network goes to a live agent not serving it yet, if any. False when there was nothing to do (the
        agent is back, or another server process did it first)."""
        dead = self.agents.still_dead(conn, agent_id)
        if dead is None:
            return False
        d = m.network_dhcp_agents.c
        gone = conn.execute(delete(m.network_dhcp_agents).where(d.network_id == network_id,
                                                                d.dhcp_agent_id == agent_id))
        if not gone.rowcount:
            return False
        port = self.ports.collection.get(conn, self._port_id(conn, dead["host"], network_id) or "")
        if port is not None:
            self.ports.update(conn, port, {"device_id": RESERVED_PORT, "binding:host_id": ""}, None)
        self._schedule(conn, [network_id])
        return True

    # ---------------------------------------------------------------- the DHCP agent's view
    def _port_id(self, conn: Connection, host: str, network_id: str) -> str | None:
        p = m.ports.c
        row = conn.execute(select(p.id).where(p.network_id == network_id,
                                              p.device_id == dhcp_device_id(host, network_id))).first()
        return None if row is None else row[0]

    def sync(self, conn: Connection, host: str, network_ids: Sequence[str] | None, write: bool = True) -> DhcpView:
        """The networks this host's DHCP agent serves, creating or completing their DHCP ports first (the
        server does what Neutron's agent asks for with create_dhcp_port). write=False: raise NeedsWrite
        instead of writing (callers try a cheap read transaction first)."""
        a, d = m.agents.c, m.network_dhcp_agents.c
        stmt = (select(d.network_id).join(m.agents, a.id == d.dhcp_agent_id)
                .where(a.host == host, a.agent_type == DHCP_AGENT))
        if network_ids is not None:
            stmt = stmt.where(d.network_id.in_(list(network_ids)))
        wanted = sorted(r[0] for r in conn.execute(stmt))
        nets = {r.id: r for r in conn.execute(select(m.networks.c.id, m.networks.c.mtu,
                                                     m.networks.c.revision_number,
                                                     m.networks.c.port_security_enabled)
                                              .where(m.networks.c.id.in_(wanted)))} if wanted else {}
        subnets: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if wanted:
            for r in conn.execute(select(m.subnets).where(m.subnets.c.network_id.in_(wanted),
                                                          m.subnets.c.enable_dhcp.is_(True))
                                  .order_by(m.subnets.c.created_at, m.subnets.c.id)):
                subnets[r.network_id].append(dict(r._mapping))
        out = []
        here: list[AgentInfo] | None = None
        for network_id in wanted:
            served = subnets[network_id]
            if network_id not in nets or not served:
                continue
            if routed.is_routed(served):
                # as Neutron's get_network_info: only the subnets of the segments this host reaches
                here = self.agents.on_host(conn, host) if here is None else here
                reached = routed.host_segments(conn, network_id, here)
                served = [s for s in served if s["segment_id"] in reached]
                if not served:
                    self._release_port(conn, host, network_id, write)
                    continue
            elsewhere = {s["id"] for s in subnets[network_id]} - {s["id"] for s in served}
            port = self._ensure_port(conn, host, nets[network_id], served, elsewhere, write)
            out.append(self._network(conn, nets[network_id], port, served))
        return DhcpView(host=host, networks=out, partial=network_ids is not None)

    def _release_port(self, conn: Connection, host: str, network_id: str, write: bool) -> None:
        """The host serves nothing of the network (its segments are out of reach): no DHCP port there."""
        if self._port_id(conn, host, network_id) is None:
            return
        if not write:
            raise NeedsWrite()
        self._lock(conn, host, network_id)
        port = self.ports.collection.get(conn, self._port_id(conn, host, network_id) or "")
        if port is not None:
            self.ports.delete(conn, port, None)

    @staticmethod
    def _lock(conn: Connection, host: str, network_id: str) -> None:
        """Concurrent pulls for one network must not both create (or delete) the host's DHCP port: they
        take turns on its scheduling row. SQLite has one writer at a time anyway."""
        if conn.dialect.name != "sqlite":
            a, d = m.agents.c, m.network_dhcp_agents.c
            conn.execute(select(d.network_id).join(m.agents, a.id == d.dhcp_agent_id)
                         .where(d.network_id == network_id, a.host == host, a.agent_type == DHCP_AGENT)
                         .with_for_update(of=m.network_dhcp_agents))

    def _ensure_port(self, conn: Connection, host: str, net: Any, subnets: list[dict[str, Any]],
                     elsewhere: set[str], write: bool) -> dict[str, Any]:
        """The host's DHCP port on the network, with an address on each of the subnets and none on those
        elsewhere (a routed network's subnets on segments the host does not reach)."""
        served = [s for s in subnets if s["ip_version"] == 4 or s["ipv6_address_mode"] != "slaac"]
        if write:
            self._lock(conn, host, net.id)
        port_id = self._port_id(conn, host, net.id)
        if port_id is None:
            if not write:
                raise NeedsWrite()
            port_id = self._claim_reserved(conn, host, net.id)
        if port_id is None:
            project = conn.execute(select(m.networks.c.project_id).where(m.networks.c.id == net.id)).scalar_one()
            item = {"project_id": project, "name": "", "description": "", "tags": [], "network_id": net.id,
                    "admin_state_up": True, "device_id": dhcp_device_id(host, net.id), "device_owner": DHCP_OWNER,
                    "port_security_enabled": False, "allowed_address_pairs": [], "security_groups": [],
                    "binding:host_id": host, "binding:vnic_type": "normal", "binding:profile": {},
                    "mac_address": AUTO, "fixed_ips": [{"subnet_id": s["id"]} for s in served]}
            row = self.ports.create(conn, [item], {net.id: {"id": net.id, "port_security_enabled": False}})[0]
            port_id = row["id"]
        port = self.ports.collection.get(conn, port_id)
        assert port is not None
        have = {f["subnet_id"] for f in port["fixed_ips"]}
        missing = [s["id"] for s in served if s["id"] not in have]
        kept = [f for f in port["fixed_ips"] if f["subnet_id"] not in elsewhere]
        changed = bool(missing) or len(kept) < len(port["fixed_ips"])
        if (changed or port["binding:vif_type"] == "binding_failed") and not write:
            raise NeedsWrite()
        if changed:
            self.ports.update(conn, port, {"fixed_ips": [*kept, *({"subnet_id": s} for s in missing)]}, None)
            port = self.ports.collection.get(conn, port_id)
            assert port is not None
        elif port["binding:vif_type"] == "binding_failed":
            self.ports.rebind_host(conn, host)
        return port

    def _claim_reserved(self, conn: Connection, host: str, network_id: str) -> str | None:
        """A DHCP port a dead agent left on the network, made this host's (its address stays the DHCP
        server's, which the instances' leases name); the conditional update lets one taker win."""
        p = m.ports.c
        reserved = conn.execute(select(p.id).where(p.network_id == network_id, p.device_owner == DHCP_OWNER,
                                                   p.device_id == RESERVED_PORT).order_by(p.id)).all()
        for (port_id,) in reserved:
            port = self.ports.collection.get(conn, port_id)
            taken = conn.execute(update(m.ports).where(p.id == port_id, p.device_id == RESERVED_PORT)
                                 .values(device_id=dhcp_device_id(host, network_id)))
            if port is not None and taken.rowcount:
                self.ports.update(conn, port, {"device_id": dhcp_device_id(host, network_id),
                                               "binding:host_id": host}, None)
                return str(port_id)
        return None

    def _network(self, conn: Connection, net: Any, port: dict[str, Any],
                 subnets: list[dict[str, Any]]) -> DhcpNetwork:
        by_id = {s["id"]: s for s in subnets}
        p = m.ports.c
        ports = conn.execute(select(p.id, p.mac_address, p.dns_name, p.extra_dhcp_opts)
                             .where(p.network_id == net.id)).all()
        ips = load_fixed_ips(conn, [r.id for r in ports])
        domain = self.ports.collection.dns_domain
        hosts = []
        for r in ports:
            options = [DhcpOption(name=o["opt_name"], value=o["opt_value"], ip_version=o["ip_version"])
                       for o in r.extra_dhcp_opts or []]
            own = [f for f in ips.get(r.id, []) if f["subnet_id"] in by_id]
            for f, names in zip(own, dns_assignment(r.dns_name, own, domain), strict=True):
                hosts.append(DhcpHost(port_id=r.id, mac=r.mac_address, ip=f["ip_address"], subnet_id=f["subnet_id"],
                                      hostname=names["hostname"], fqdn=names["fqdn"], options=options))
        hosts.sort(key=lambda h: (h.subnet_id, netaddr.IPAddress(h.ip)))
        port_ips = [f"{f['ip_address']}/{netaddr.IPNetwork(by_id[f['subnet_id']]['cidr']).prefixlen}"
                    for f in port["fixed_ips"] if f["subnet_id"] in by_id]
        return DhcpNetwork(
            id=net.id, mtu=net.mtu, revision=net.revision_number, port_id=port["id"], port_mac=port["mac_address"],
            port_ips=port_ips, hosts=hosts, dns_domain=domain,
            subnets=[DhcpSubnet(id=s["id"], cidr=s["cidr"], ip_version=s["ip_version"], gateway_ip=s["gateway_ip"],
                                dns_nameservers=list(s["dns_nameservers"]), host_routes=list(s["host_routes"]),
                                allocation_pools=list(s["allocation_pools"]),
                                ipv6_address_mode=s["ipv6_address_mode"], ipv6_ra_mode=s["ipv6_ra_mode"])
                     for s in subnets])
