"""HA routers (l3-ha), as Neutron's: each project's HA routers share one hidden HA network (owned by no
project, Neutron's names), each takes a VRID on it, and each L3 agent hosting one has an HA port there
(`network:router_ha_interface`) over which keepalived instances elect the active one. Agents report VRRP
transitions; the router's ports are bound to the active host so L2 population points at it.

Race-free as the rest: the HA network's row is keyed by project (the loser of a concurrent first use runs
again and finds the winner's), VRIDs are keyed by (network, vrid), bindings by (router, index)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, select, update

from fermion.db import models as m
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict
from fermion.resources.network import NETWORK
from fermion.resources.subnet import SUBNET
from fermion.services.common import create_item
from fermion.services.networks import NetworkService
from fermion.services.subnets import SubnetService

HA_OWNER = "network:router_ha_interface"
HA_NETWORK_NAME = "HA network tenant %s"
HA_SUBNET_NAME = "HA subnet tenant %s"
HA_PORT_NAME = "HA port tenant %s"
VR_IDS = range(1, 255)  # keepalived's 1-255 less 255, as Neutron
ACTIVE, STANDBY = "active", "standby"
STATES = (ACTIVE, STANDBY)
MIN_AGENTS = 2  # VRRP needs a peer


def check_ha(max_agents: int, cidr: str) -> None:
    """[l3] max_l3_agents_per_router and l3_ha_net_cidr, as Neutron checks them at start-up."""
    if max_agents != 0 and max_agents < MIN_AGENTS:
        raise ValueError(f"max_l3_agents_per_router {max_agents} must be 0 (every agent) or at least {MIN_AGENTS}")
    try:
        net = netaddr.IPNetwork(cidr)
    except (netaddr.AddrFormatError, ValueError):
        net = None
    if net is None or "/" not in cidr or net.network != net.ip or net.version != 4:
        raise ValueError(f"l3_ha_net_cidr {cidr!r} is not a valid IPv4 network address, e.g. 169.254.192.0/18")


@dataclass(frozen=True)
class HaSettings:
    default: bool = False  # a new router's `ha` when the request does not say
    max_agents: int = 3  # 0: every live L3 agent
    cidr: str = "169.254.192.0/18"
    network_type: str = ""  # "": the first tenant network type


def change_refused() -> BadRequest:
    return BadRequest("Bad router request: Cannot change HA attribute of active routers. Please set router "
                      "admin_state_up to False prior to upgrade.", type="BadRequest")


class HaRouters:
    def __init__(self, settings: HaSettings, networks: NetworkService, subnets: SubnetService) -> None:
        self.settings = settings
        self.networks = networks
        self.subnets = subnets

    # ---------------------------------------------------------------- the project's HA network
    @staticmethod
    def network_of(conn: Connection, project: str) -> str | None:
        h = m.ha_router_networks.c
        found = conn.execute(select(h.network_id).where(h.project_id == project)).scalar()
        return str(found) if found is not None else None

    def network(self, conn: Connection, project: str) -> str:
        """The project's HA network and subnet, made on first use."""
        found = self.network_of(conn, project)
        if found is not None:
            return found
        raw: dict[str, Any] = {"name": HA_NETWORK_NAME % project, "admin_state_up": True, "shared": False}
        if self.settings.network_type:
            raw["provider:network_type"] = self.settings.network_type
        net = self.networks.create(conn, [create_item(NETWORK, raw, "")])[0]
        if not insert_if_absent(conn, m.ha_router_networks, {"project_id": project, "network_id": net["id"]}):
            raise RetryRequest("another request made this project's HA network first")
        self.subnets.create(conn, [create_item(SUBNET, {
            "name": HA_SUBNET_NAME % project, "network_id": net["id"], "ip_version": 4, "cidr": self.settings.cidr,
            "enable_dhcp": False, "gateway_ip": None}, "")])
        return str(net["id"])

    def drop_network_if_unused(self, conn: Connection, project: str) -> None:
        """The HA network goes with the project's last HA router (its ports are gone by then)."""
        r = m.routers.c
        if conn.execute(select(r.id).where(r.project_id == project, r.ha.is_(True)).limit(1)).first() is not None:
            return
        network_id = self.network_of(conn, project)
        if network_id is None:
            return
        net = self.networks.collection.get(conn, network_id, for_update=True)
        if net is not None:
            self.networks.delete(conn, net, None)
        conn.execute(delete(m.ha_router_networks).where(m.ha_router_networks.c.project_id == project))

    # ---------------------------------------------------------------- VRIDs
    @staticmethod
    def allocate_vrid(conn: Connection, network_id: str, router_id: str) -> int:
        v = m.ha_router_vrid_allocations.c
        taken = {x for (x,) in conn.execute(select(v.vr_id).where(v.network_id == network_id))}
        free = [x for x in VR_IDS if x not in taken]
        if not free:
            raise Conflict(f"No more Virtual Router Identifier (VRID) available when creating router {router_id}. "
                           f"The limit of number of HA Routers per tenant is {len(VR_IDS)}.", type="NoVRIDAvailable")
        for vrid in free[:8]:  # the lowest free first; a concurrent create takes one, we take the next
            if insert_if_absent(conn, m.ha_router_vrid_allocations, {"network_id": network_id, "vr_id": vrid}):
                return vrid
        raise RetryRequest("concurrent HA routers took the free VRIDs")

    @staticmethod
    def release_vrid(conn: Connection, network_id: str | None, vrid: int | None) -> None:
        if network_id is None or vrid is None:
            return
        v = m.ha_router_vrid_allocations.c
        conn.execute(delete(m.ha_router_vrid_allocations).where(v.network_id == network_id, v.vr_id == vrid))

    # ---------------------------------------------------------------- turning HA on and off
    def enable(self, conn: Connection, router: dict[str, Any]) -> None:
        network_id = self.network(conn, router["project_id"])
        vrid = self.allocate_vrid(conn, network_id, router["id"])
        conn.execute(update(m.routers).where(m.routers.c.id == router["id"]).values(ha=True, ha_vr_id=vrid))

    def disable(self, conn: Connection, router: dict[str, Any]) -> None:
        """The router is no longer HA (or is going): its VRID, and the HA network with the last one. Its
        bindings (and their HA ports) must be gone already."""
        self.release_vrid(conn, self.network_of(conn, router["project_id"]), router.get("ha_vr_id"))
        conn.execute(update(m.routers).where(m.routers.c.id == router["id"]).values(ha=False, ha_vr_id=None))
        self.drop_network_if_unused(conn, router["project_id"])

    def wanted_agents(self, alive: int) -> int:
        return alive if self.settings.max_agents == 0 else min(alive, self.settings.max_agents)


# ---------------------------------------------------------------- reading state
def bindings(conn: Connection, router_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each router's agent bindings: {agent_id, host, binding_index, ha_port_id, ha_state}, by index."""
    if not router_ids:
        return {}
    b, a = m.router_l3_agents.c, m.agents.c
    out: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(select(b.router_id, b.l3_agent_id, a.host, b.binding_index, b.ha_port_id, b.ha_state)
                            .join(m.agents, a.id == b.l3_agent_id).where(b.router_id.in_(list(router_ids)))
                            .order_by(b.router_id, b.binding_index)):
        out.setdefault(row.router_id, []).append({
            "agent_id": row.l3_agent_id, "host": row.host, "binding_index": row.binding_index,
            "ha_port_id": row.ha_port_id, "ha_state": row.ha_state})
    return out


def serving_host(found: list[dict[str, Any]]) -> str | None:
    """The host whose instance carries the router's traffic: a legacy router's agent's, an HA router's active
    instance's (None while no instance is active)."""
    for b in found:
        if b["ha_state"] in (None, ACTIVE):
            return str(b["host"])
    return None


def primary_host(found: list[dict[str, Any]]) -> str | None:
    """Where the router's ports are bound: the active instance's host, else the first binding's."""
    for b in found:
        if b["ha_state"] == ACTIVE:
            return str(b["host"])
    return str(found[0]["host"]) if found else None
