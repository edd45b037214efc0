"""Distributed routers (dvr), as Neutron's: a router copy on every host whose L3 agent runs in dvr or dvr_snat
mode and that has instances (compute ports) on the router's subnets, and a centralized SNAT part scheduled
onto dvr_snat agents like a router (several when the router is also HA).

Copies are computed, never stored: a host has one while a compute port bound there has an address on one of
the router's interface subnets. The interface ports (`network:router_interface_distributed`) are bound to no
host; every host with a copy plugs them. The SNAT part has one port per interface port
(`network:router_centralized_snat`), bound like the gateway port. Each host running copies has a DVR MAC
(dvr_host_macs, unique), and each host carrying floating IPs of distributed routers a floating-IP agent gateway
port per external network (`network:floatingip_agent_gateway`). Both are made when the host's L3 agent asks
for its view (the agent's need, as in Neutron), with keys that make a concurrent maker lose and run again."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from fermion.db import models as m
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict
from fermion.rpc.contracts import Hint
from fermion.services import common

DVR_INTERFACE_OWNER = "network:router_interface_distributed"
SNAT_OWNER = "network:router_centralized_snat"
FIP_GATEWAY_OWNER = "network:floatingip_agent_gateway"
COMPUTE_PREFIX = "compute:"
L3_AGENT = "L3 agent"
LEGACY, DVR, DVR_SNAT, DVR_NO_EXTERNAL = "legacy", "dvr", "dvr_snat", "dvr_no_external"
COPY_MODES = (DVR, DVR_SNAT)  # agents that run copies of distributed routers
BASE_MAC = "fa:16:3f:00:00:00"  # Neutron's dvr_base_mac: the first three bytes are kept


class NeedsWrite(Exception):
    """The view cannot be answered from a read transaction: the host's DVR MAC or gateway ports must change."""


def agent_mode(configurations: dict[str, Any] | None) -> str:
    return str((configurations or {}).get("agent_mode") or LEGACY)


def can_host(mode: str, distributed: bool) -> bool:
    """Whether an agent in this mode may be bound to a router: a centralized one (legacy, dvr_snat), or the
    SNAT part of a distributed one (dvr_snat only)."""
    return mode == DVR_SNAT or (mode == LEGACY and not distributed)


def change_refused() -> BadRequest:
    return BadRequest("Bad router request: Cannot change the 'distributed' attribute of active routers. Please set "
                      "router admin_state_up to False prior to upgrade.", type="BadRequest")


def check_agent(agent: dict[str, Any], router_id: str, distributed: bool) -> None:
    """What Neutron refuses when an admin binds a router to an agent by hand (409s)."""
    mode = agent_mode(agent["configurations"])
    if mode in (DVR, DVR_NO_EXTERNAL):
        raise Conflict("Not allowed to manually assign a router to an agent in 'dvr' mode.",
                       type="DVRL3CannotAssignToDvrAgent")
    if mode == LEGACY and distributed:
        raise Conflict(f"Cannot host distributed router {router_id} on legacy L3 agent {agent['id']}.",
                       type="RouterL3AgentMismatch")


def snat_port_id(router_id: str, interface_id: str) -> str:
    """The SNAT port of an interface: one id, so two requests making it meet on the key."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fermion:snat:{router_id}:{interface_id}"))


def fip_gateway_id(agent_id: str, network_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fermion:fip-gateway:{agent_id}:{network_id}"))


# ---------------------------------------------------------------- where the copies are
def copy_agents(conn: Connection, hosts: Iterable[str] | None = None) -> dict[str, str]:
    """host -> L3 agent id, for the agents that run copies (dvr, dvr_snat)."""
    a = m.agents.c
    stmt = select(a.id, a.host, a.configurations).where(a.agent_type == L3_AGENT)
    if hosts is not None:
        stmt = stmt.where(a.host.in_(list(hosts)))
    return {h: i for i, h, c in conn.execute(stmt) if agent_mode(c) in COPY_MODES}


def _copies(router_ids: Sequence[str] | None = None, host: str | None = None) -> Any:
    """(router, host) for each compute port with an address on a distributed router's interface subnet."""
    rp, ia = m.router_ports.c, m.ip_allocations.alias("ia").c
    ca, cp = m.ip_allocations.alias("ca").c, m.ports.alias("cp").c
    stmt = (select(rp.router_id, cp.binding_host_id).distinct()
            .join(ia.port_id.table, ia.port_id == rp.port_id)
            .join(ca.port_id.table, ca.subnet_id == ia.subnet_id).join(cp.id.table, cp.id == ca.port_id)
            .where(rp.port_type == DVR_INTERFACE_OWNER, cp.device_owner.like(COMPUTE_PREFIX + "%"),
                   cp.binding_host_id != ""))
    if router_ids is not None:
        stmt = stmt.where(rp.router_id.in_(list(router_ids)))
    if host is not None:
        stmt = stmt.where(cp.binding_host_id == host)
    return stmt


def local_hosts(conn: Connection, router_ids: Sequence[str]) -> dict[str, list[str]]:
    """The hosts with a copy of each of the routers (only distributed ones have any)."""
    if not router_ids:
        return {}
    found = conn.execute(_copies(router_ids=router_ids)).all()
    agents = copy_agents(conn, {h for _, h in found})
    out: dict[str, list[str]] = defaultdict(list)
    for router_id, host in sorted(found):
        if host in agents:
            out[router_id].append(host)
    return out


def local_routers(conn: Connection, host: str) -> list[str]:
    """The distributed routers with a copy on the host."""
    if not copy_agents(conn, [host]):
        return []
    return sorted({r for r, _ in conn.execute(_copies(host=host))})


def ports_moved(conn: Connection, moved: Sequence[tuple[str, str, Iterable[str]]]) -> None:
    """Ports were made, removed, (re)bound or re-addressed: (network id, device owner, old and new hosts).
    Where distributed routers have an interface on the network, their neighbours (and, for an instance, the
    hosts with copies) change: every host with a copy or their SNAT part hears of each router, and an
    instance's old and new hosts, which may gain or lose a copy, also hear of the router's interface
    networks (their L2 agents plug those ports). One query when no distributed router is concerned."""
    if not moved:
        return
    rp, p = m.router_ports.c, m.ports.c
    on_net: dict[str, set[str]] = defaultdict(set)
    for router_id, net in conn.execute(select(rp.router_id, p.network_id).join(m.ports, p.id == rp.port_id).where(
            rp.port_type == DVR_INTERFACE_OWNER, p.network_id.in_(sorted({x[0] for x in moved}))).distinct()):
        on_net[net].add(router_id)
    if not on_net:
        return
    touched: dict[str, set[str]] = defaultdict(set)  # router -> hosts that may gain or lose a copy
    for net, owner, hosts in moved:
        for router_id in on_net.get(net, ()):
            touched[router_id].update(h for h in hosts if h and owner.startswith(COMPUTE_PREFIX))
    routers = sorted(touched)
    b, a, r = m.router_l3_agents.c, m.agents.c, m.routers.c
    to: dict[str, set[str]] = defaultdict(set)
    for router_id, host in conn.execute(select(b.router_id, a.host).join(m.agents, a.id == b.l3_agent_id)
                                        .where(b.router_id.in_(routers))):
        to[router_id].add(host)
    for router_id, hosts in local_hosts(conn, routers).items():
        to[router_id].update(hosts)
    revisions = dict(conn.execute(select(r.id, r.revision_number).where(r.id.in_(routers))).all())
    for router_id in routers:
        for host in sorted(to[router_id] | touched[router_id]):
            common.emit(conn, Hint("router", router_id, revisions.get(router_id, 0), None, host))
    if any(touched.values()):
        for router_id, pid, net, rev in conn.execute(
                select(rp.router_id, p.id, p.network_id, p.revision_number).join(m.router_ports, rp.port_id == p.id)
                .where(rp.router_id.in_([x for x in routers if touched[x]]), rp.port_type == DVR_INTERFACE_OWNER)):
            for host in sorted(touched[router_id]):
                common.emit(conn, Hint("port", pid, rev, net, host))


def instance_moved(conn: Connection, port_id: str) -> None:
    """The port moved to another host: its floating IPs on distributed routers are served by that host's
    agent now, DOWN until it reports them (fip_status.py)."""
    f, r = m.floatingips.c, m.routers.c
    conn.execute(update(m.floatingips).where(
        f.fixed_port_id == port_id, f.status != "DOWN",
        f.router_id.in_(select(r.id).where(r.distributed.is_(True)))).values(status="DOWN"))


# ---------------------------------------------------------------- DVR MACs
def host_mac(conn: Connection, host: str, write: bool, rng: random.Random | None = None) -> str:
    """The host's DVR MAC, allocated on first need: the base's first three bytes, the rest random; a MAC
    another host took (the unique key) is drawn again, a concurrent first allocation for this host wins."""
    d = m.dvr_host_macs.c
    found = conn.execute(select(d.mac_address).where(d.host == host)).scalar()
    if found is not None:
        return str(found)
    if not write:
        raise NeedsWrite(host)
    rng = rng or random.Random()
    base = BASE_MAC.split(":")[:3]
    for _ in range(16):
        mac = ":".join(base + [f"{rng.randint(0, 255):02x}" for _ in range(3)])
        if insert_if_absent(conn, m.dvr_host_macs, {"host": host, "mac_address": mac}):
            return mac
        found = conn.execute(select(d.mac_address).where(d.host == host)).scalar()
        if found is not None:
            return str(found)
    raise RetryRequest(f"no free DVR MAC drawn for host {host}")


# ---------------------------------------------------------------- floating-IP agent gateways
def fip_networks(conn: Connection, host: str) -> set[str]:
    """The external networks of the floating IPs of distributed routers whose instances are bound here."""
    f, r, p = m.floatingips.c, m.routers.c, m.ports.c
    return set(conn.scalars(select(f.floating_network_id).distinct()
                            .join(m.routers, r.id == f.router_id).join(m.ports, p.id == f.fixed_port_id)
                            .where(r.distributed.is_(True), p.binding_host_id == host)))


def fip_gateway_ports(conn: Connection, agent_id: str) -> dict[str, str]:
    """network id -> port id of the agent's gateway ports."""
    p = m.ports.c
    return {n: i for i, n in conn.execute(select(p.id, p.network_id).where(
        p.device_owner == FIP_GATEWAY_OWNER, p.device_id == agent_id))}
