"""DHCP: scheduling networks to DHCP agents, their DHCP ports, and the DHCP agent's host view."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, func, select

from fermion.db import models as m
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.base import AUTO
from fermion.rpc.contracts import DhcpHost, DhcpNetwork, DhcpOption, DhcpSubnet, DhcpView, Hint
from fermion.services import common, zones
from fermion.services.agents import DHCP_AGENT, AgentService
from fermion.services.networks import DHCP_OWNER
from fermion.services.ports import PortService, dns_assignment, load_fixed_ips


class NeedsWrite(Exception):
    """The view cannot be answered from a read transaction: a DHCP port must be created or completed."""


def dhcp_device_id(host: str, network_id: str) -> str:
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


class DhcpService:
    def __init__(self, agents: AgentService, ports: PortService, agents_per_network: int = 1) -> None:
        self.agents = agents
        self.ports = ports
        self.per_network = agents_per_network

    # ---------------------------------------------------------------- scheduling
    def _dhcp_agents(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(select(m.agents).where(m.agents.c.agent_type == DHCP_AGENT)).all()
        return [dict(r._mapping) for r in rows]

    def schedule(self, conn: Connection, network_id: str) -> None:
        """Give the network DHCP agents up to agents_per_network, least loaded first."""
        d = m.network_dhcp_agents.c
        hosting = {r[0] for r in conn.execute(select(d.dhcp_agent_id).where(d.network_id == network_id))}
        if len(hosting) >= self.per_network:
            return
        hints = conn.execute(select(m.networks.c.availability_zone_hints)
                             .where(m.networks.c.id == network_id)).scalar()
        everyone = self._dhcp_agents(conn)
        candidates = zones.in_hinted_zones([a for a in everyone if a["id"] not in hosting], hints)
        alive = set(self.agents.ids_alive(candidates))
        if not alive:
            return
        load: dict[str, int] = {r[0]: r[1] for r in conn.execute(
            select(d.dhcp_agent_id, func.count()).group_by(d.dhcp_agent_id))}
        # spread a network's agents over zones first (a zone lost keeps the others), then the least loaded
        zones_used = {a["availability_zone"] for a in everyone if a["id"] in hosting}
        ordered = sorted((a for a in candidates if a["id"] in alive), key=lambda a: (load.get(a["id"], 0), a["id"]))
        first = []
        for agent in ordered:
            if agent["availability_zone"] not in zones_used:
                first.append(agent["id"])
                zones_used.add(agent["availability_zone"])
        chosen = first + [a["id"] for a in ordered if a["id"] not in first]
        for agent_id in chosen[: self.per_network - len(hosting)]:
            if insert_if_absent(conn, m.network_dhcp_agents, {"network_id": network_id, "dhcp_agent_id": agent_id}):
                common.emit(conn, Hint("network", network_id, 0, network_id))

    def schedule_unhosted(self, conn: Connection) -> None:
        s, d = m.subnets.c, m.network_dhcp_agents.c
        rows = conn.execute(select(s.network_id).where(s.enable_dhcp.is_(True)).distinct()
                            .where(s.network_id.not_in(select(d.network_id)))).all()
        for (network_id,) in rows:
            self.schedule(conn, network_id)

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
        for network_id in wanted:
            if network_id not in nets or not subnets[network_id]:
                continue
            port = self._ensure_port(conn, host, nets[network_id], subnets[network_id], write)
            out.append(self._network(conn, nets[network_id], port, subnets[network_id]))
        return DhcpView(host=host, networks=out, partial=network_ids is not None)

    def _ensure_port(self, conn: Connection, host: str, net: Any, subnets: list[dict[str, Any]],
                     write: bool) -> dict[str, Any]:
        served = [s for s in subnets if s["ip_version"] == 4 or s["ipv6_address_mode"] != "slaac"]
        if write and conn.dialect.name != "sqlite":
            # concurrent pulls for one network must not both create a DHCP port: lock its scheduling row
            a, d = m.agents.c, m.network_dhcp_agents.c
            conn.execute(select(d.network_id).join(m.agents, a.id == d.dhcp_agent_id)
                         .where(d.network_id == net.id, a.host == host, a.agent_type == DHCP_AGENT)
                         .with_for_update(of=m.network_dhcp_agents))
        port_id = self._port_id(conn, host, net.id)
        if port_id is None:
            if not write:
                raise NeedsWrite()
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
        if (missing or port["binding:vif_type"] == "binding_failed") and not write:
            raise NeedsWrite()
        if missing:
            self.ports.update(conn, port, {"fixed_ips": [*port["fixed_ips"], *({"subnet_id": s} for s in missing)]},
                              None)
            port = self.ports.collection.get(conn, port_id)
            assert port is not None
        elif port["binding:vif_type"] == "binding_failed":
            self.ports.rebind_host(conn, host)
        return port

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
