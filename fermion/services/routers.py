"""Routers: gateway, interfaces, extra routes, and their scheduling to L3 agents."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, func, insert, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.db.engine import RetryRequest
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.base import AUTO
from fermion.resources.router import ROUTER, ROUTES
from fermion.rpc.contracts import Hint
from fermion.services import common, conntrack_helpers, dvr, fip_status, l3_ha, qos_bindings, zones
from fermion.services.agents import L3_AGENT, AgentService
from fermion.services.dvr import DVR_INTERFACE_OWNER, SNAT_OWNER
from fermion.services.flavors import FlavorService
from fermion.services.l3_ha import HaRouters
from fermion.services.ports import PortService, load_fixed_ips
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.rbac_access import EXTERNAL, SHARED, has_access
from fermion.validation import InvalidValue, uuid_str

INTERFACE_OWNER = "network:router_interface"
GATEWAY_OWNER = "network:router_gateway"
FLOATINGIP_OWNER = "network:floatingip"
INTERFACE_TYPES = (INTERFACE_OWNER, DVR_INTERFACE_OWNER)  # a router's interfaces (not its SNAT ports)
MAX_ROUTES = 30


class NoLiveAgent(Exception):
    """No live L3 agent can take the router (none, or none in its hinted zones): it stays where it is."""


def caller_project(ctx: Context | None) -> str | None:
    """The project whose RBAC grants limit what the call may reach; None for an admin or the service itself."""
    return None if ctx is None or ctx.is_admin else (ctx.project_id or "")


def require_external(conn: Connection, network_id: str, bad: Callable[[str], BadRequest],
                     project_id: str | None = None) -> None:
    """The network exists (404) and is external (else `bad` words the 400) for a gateway or floating IP.
    With project_id, the network must also be visible to that project: its own, or granted to it (or to
    every project) as shared or external; otherwise it does not exist for the caller (404), as in Neutron."""
    n = m.networks.c
    net = conn.execute(select(n.id, n.project_id, n.router_external).where(n.id == network_id)).first()
    if net is not None and project_id is not None and net.project_id != project_id and not has_access(
            conn, "network", network_id, project_id, (EXTERNAL, SHARED)):
        net = None
    if net is None:
        raise NotFound(f"Network {network_id} could not be found.", type="NetworkNotFound")
    if not net.router_external:
        raise bad(f"The network {network_id} is not a valid external network")


def bad_router(message: str) -> BadRequest:
    return BadRequest(f"Bad router request: {message}.", type="BadRequest")


class RouterCollection(Collection):
    def __init__(self) -> None:
        super().__init__(ROUTER, m.routers)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        gw_ports = {r[self._index["gw_port_id"]] for r in rows} - {None}
        ips = load_fixed_ips(conn, list(gw_ports)) if gw_ports else {}
        nets = {x[0]: x[1] for x in conn.execute(select(m.ports.c.id, m.ports.c.network_id)
                                                 .where(m.ports.c.id.in_(list(gw_ports))))} if gw_ports else {}
        hosted = zones.hosting_zones(conn, "router", [i["id"] for i in items])
        for row, item in zip(rows, items, strict=True):
            item["availability_zone_hints"] = row[self._index["availability_zone_hints"]] or []
            item["availability_zones"] = hosted.get(item["id"], [])
            gw = row[self._index["gw_port_id"]]
            item["external_gateway_info"] = None if gw is None else {
                "network_id": nets.get(gw), "enable_snat": row[self._index["enable_snat"]],
                "external_fixed_ips": ips.get(gw, []), "qos_policy_id": row[self._index["gw_qos_policy_id"]]}
            item["routes"] = list(row[self._index["routes"]] or [])
            item["distributed"] = bool(row[self._index["distributed"]])
            item["ha"] = bool(row[self._index["ha"]])
        helpers = conntrack_helpers.exposed(conn, [item["id"] for item in items])
        for item in items:
            item["conntrack_helpers"] = helpers.get(item["id"], [])


class RouterService:
    def __init__(self, quotas: QuotaService, ports: PortService | None = None,
                 agents: AgentService | None = None, flavors: FlavorService | None = None,
                 ha: HaRouters | None = None, distributed_default: bool = False) -> None:
        self.collection = RouterCollection()
        self.flavors = flavors or FlavorService()
        self.quotas = quotas
        self.ports = ports or PortService(quotas)
        self.agents = agents or AgentService()
        self.ha = ha  # None: HA routers cannot be made (a service built without networks, in unit tests)
        self.distributed_default = distributed_default  # [l3] router_distributed

    # ---------------------------------------------------------------- CRUD
    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = common.standard_row(item)
            hints = zones.check_hints(item.get("availability_zone_hints") or [])
            zones.validate_hints(conn, "router", hints)
            flavor = item.get("flavor_id")
            row.update(admin_state_up=item["admin_state_up"], status="ACTIVE", gw_port_id=None, enable_snat=True,
                       routes=[], availability_zone_hints=hints,
                       distributed=self._wants_distributed(item.get("distributed", AUTO)),
                       flavor_id=self.flavors.router_flavor(conn, flavor) if flavor is not None else None)
            conn.execute(insert(m.routers).values(**row))
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            if self._wants_ha(item.get("ha", AUTO)):
                assert self.ha is not None
                self.ha.enable(conn, row)
                row = dict(conn.execute(select(m.routers).where(m.routers.c.id == row["id"])).one()._mapping)
            self.schedule(conn, row["id"])
            if item.get("external_gateway_info"):
                self._set_gateway(conn, row, item["external_gateway_info"], ctx)
                self._sync_snat_ports(conn, row["id"])
                row = dict(conn.execute(select(m.routers).where(m.routers.c.id == row["id"])).one()._mapping)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
            self.changed(conn, row["id"])
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "router", count)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values: dict[str, Any] = {}
        for key in ("name", "description", "admin_state_up"):
            if key in changes:
                values[key] = changes[key]
        if "routes" in changes:
            values["routes"] = self._check_routes(conn, orig["id"], changes["routes"])
        common.bump(conn, m.routers, orig["id"], values, expect_revision)
        up = values.get("admin_state_up", orig["admin_state_up"])
        ha = self._wants_ha(changes["ha"]) if "ha" in changes else orig["ha"]
        distributed = changes.get("distributed")
        distributed = orig["distributed"] if distributed is None else distributed
        if distributed != orig["distributed"] and (orig["admin_state_up"] or up):
            # router-admin-state-down-before-update: down before this request, and staying down
            raise dvr.change_refused()
        if ha != orig["ha"] or distributed != orig["distributed"]:
            self._convert(conn, orig["id"], up, ha if ha != orig["ha"] else None,
                          distributed if distributed != orig["distributed"] else None)
        if "external_gateway_info" in changes:
            row = dict(conn.execute(select(m.routers).where(m.routers.c.id == orig["id"])).one()._mapping)
            info = changes["external_gateway_info"]
            if info:
                self._set_gateway(conn, row, info, ctx)
            else:
                self._clear_gateway(conn, row)
        if distributed or orig["distributed"]:
            self._sync_snat_ports(conn, orig["id"])
        self.changed(conn, orig["id"])

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        rid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.routers, rid, {}, expect_revision)
        rp = m.router_ports.c
        busy = conn.execute(select(rp.port_id).where(rp.router_id == rid, rp.port_type.in_(INTERFACE_TYPES))
                            .limit(1)).first()
        if busy is not None:
            raise Conflict(f"Router {rid} still has ports", type="RouterInUse")
        row = dict(conn.execute(select(m.routers).where(m.routers.c.id == rid)).one()._mapping)
        self._clear_gateway(conn, row)
        self._sync_snat_ports(conn, rid)
        hosts = self.hosts_of(conn, rid)
        self._unbind_all(conn, rid)
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == rid))
        conn.execute(delete(m.routers).where(m.routers.c.id == rid))
        if row["ha"] and self.ha is not None:
            self.ha.disable(conn, row)
        self.quotas.release(conn, orig["project_id"], "router")
        emit_to(conn, hosts, Hint("router", rid, orig["revision_number"] + 1))

    def _wants_ha(self, asked: Any) -> bool:
        if asked is AUTO or asked is None:
            return self.ha is not None and self.ha.settings.default
        if asked and self.ha is None:
            raise BadRequest("HA routers are not available", type="BadRequest")
        return bool(asked)

    def _wants_distributed(self, asked: Any) -> bool:
        return self.distributed_default if asked is AUTO or asked is None else bool(asked)

    def _convert(self, conn: Connection, router_id: str, admin_state_up: bool, ha: bool | None,
                 distributed: bool | None) -> None:
        """Legacy <-> HA and centralized <-> distributed (each given as the new value, None: unchanged), as
        Neutron: only while the router is down; it leaves its agents and is scheduled again, its interfaces
        change owner, its SNAT ports come or go (the caller syncs them)."""
        if ha is not None and admin_state_up:
            raise l3_ha.change_refused()
        hosts = self.hosts_of(conn, router_id)
        self._unbind_all(conn, router_id)
        fip_status.reset(conn, [router_id])
        row = dict(conn.execute(select(m.routers).where(m.routers.c.id == router_id)).one()._mapping)
        if ha is not None:
            assert self.ha is not None
            if ha:
                self.ha.enable(conn, row)
            else:
                self.ha.disable(conn, row)
        if distributed is not None:
            conn.execute(update(m.routers).where(m.routers.c.id == router_id).values(distributed=distributed))
            self._migrate_interfaces(conn, router_id, distributed)
        for host in hosts:  # the agents it leaves remove it
            common.emit(conn, Hint("router", router_id, 0, None, host))
        self.schedule(conn, router_id)

    # ---------------------------------------------------------------- gateway
    def _set_gateway(self, conn: Connection, router: dict[str, Any], info: dict[str, Any],
                     ctx: Context | None) -> None:
        rid, net_id = router["id"], info["network_id"]
        require_external(conn, net_id, bad_router, caller_project(ctx))
        snat = info.get("enable_snat", True)
        fixed = info.get("external_fixed_ips")
        current = self._gateway_port(conn, router)
        if current is not None and current["network_id"] != net_id:
            self._clear_gateway(conn, router)
            current = None
        if current is None:
            subnets = conn.execute(select(m.subnets.c.id).where(m.subnets.c.network_id == net_id)).first()
            # as Neutron: an external network without subnets still takes a gateway, a port with no address
            want = fixed or (AUTO if subnets is not None else [])
            port = self.create_port(conn, net_id, "", rid, GATEWAY_OWNER, want, self.host_of(conn, rid))
            conn.execute(insert(m.router_ports).values(port_id=port["id"], router_id=rid, port_type=GATEWAY_OWNER))
            gw_port_id = port["id"]
        else:
            gw_port_id = current["id"]
            if fixed is not None and _fixed_set(fixed) != _fixed_set(current["fixed_ips"]):
                self.ports.update(conn, current, {"fixed_ips": fixed}, None)
        conn.execute(update(m.routers).where(m.routers.c.id == rid).values(gw_port_id=gw_port_id, enable_snat=snat))
        qos_bindings.gateway_policy(conn, router, info, ctx)

    def _clear_gateway(self, conn: Connection, router: dict[str, Any]) -> None:
        port = self._gateway_port(conn, router)
        if port is None:
            return
        f = m.floatingips.c
        used = conn.execute(select(f.id).where(f.router_id == router["id"],
                                               f.floating_network_id == port["network_id"]).limit(1)).first()
        if used is not None:
            raise Conflict(f"Gateway cannot be updated for router {router['id']}, since a gateway to external "
                           f"network {port['network_id']} is required by one or more floating IPs.",
                           type="RouterExternalGatewayInUseByFloatingIp")
        conn.execute(update(m.routers).where(m.routers.c.id == router["id"]).values(gw_port_id=None,
                                                                                  gw_qos_policy_id=None))
        conn.execute(delete(m.router_ports).where(m.router_ports.c.port_id == port["id"]))
        self.ports.delete(conn, port, None)

    def _gateway_port(self, conn: Connection, router: dict[str, Any]) -> dict[str, Any] | None:
        if not router.get("gw_port_id"):
            return None
        return self.ports.collection.get(conn, router["gw_port_id"])

    def create_port(self, conn: Connection, network_id: str, project: str, device_id: str, owner: str,
                    fixed_ips: Any, host: str | None) -> dict[str, Any]:
        """A port the service owns (router interface, gateway, floating IP)."""
        row = self.create_ports(conn, [(network_id, project, device_id, owner, fixed_ips, host)])[0]
        port = self.ports.collection.get(conn, row["id"])
        assert port is not None
        return port

    def create_ports(self, conn: Connection, wanted: list[tuple[str, str, str, str, Any, str | None]],
                     ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Ports the service owns, given (network, project, device id, owner, fixed IPs, host), created
        together as one bulk; their rows as PortService.create returns them (fixed IPs included). With ids,
        the ports take those (a concurrent maker of the same id makes the transaction run again)."""
        items = [{"project_id": project, "name": "", "description": "", "tags": [], "network_id": network_id,
                  "admin_state_up": True, "device_id": device_id, "device_owner": owner,
                  "port_security_enabled": False, "allowed_address_pairs": [], "security_groups": [],
                  "binding:host_id": host or "", "binding:vnic_type": "normal", "binding:profile": {},
                  "mac_address": AUTO, "fixed_ips": fixed_ips}
                 for network_id, project, device_id, owner, fixed_ips, host in wanted]
        for item, port_id in zip(items, ids or [], strict=False):
            item["id"] = port_id
        networks = {i["network_id"]: {"id": i["network_id"], "port_security_enabled": False} for i in items}
        return self.ports.create(conn, items, networks)

    # ---------------------------------------------------------------- interfaces
    def add_interface(self, conn: Connection, router: dict[str, Any], body: Any, ctx: Context) -> dict[str, Any]:
        subnet_id, port_id = _interface_args(body)
        rid = router["id"]
        # a distributed router's interfaces are bound to no host: every host with a copy plugs them
        distributed = bool(conn.execute(select(m.routers.c.distributed).where(m.routers.c.id == rid)).scalar())
        owner = DVR_INTERFACE_OWNER if distributed else INTERFACE_OWNER
        host = None if distributed else self.host_of(conn, rid)
        if port_id is not None:
            port = self._visible_port(conn, port_id, ctx)
            if port["device_owner"] or port["device_id"]:
                raise Conflict(f"Unable to complete operation on port {port_id} for network "
                               f"{port['network_id']}. Port already has an attached device "
                               f"{port['device_id'] or port['device_owner']}.", type="PortInUse")
            if not port["fixed_ips"]:
                raise bad_router("Router port must have at least one fixed IP")
            for fip in port["fixed_ips"]:
                self._check_overlap(conn, rid, fip["subnet_id"])
            values = {"device_owner": owner, "device_id": rid, "port_security_enabled": False,
                      "allowed_address_pairs": [], "security_groups": []}
            if host:
                values["binding:host_id"] = host
            conn.execute(delete(m.port_security_groups).where(m.port_security_groups.c.port_id == port_id))
            self.ports.update(conn, port, values, None)
            subnet_ids = [f["subnet_id"] for f in port["fixed_ips"]]
            network_id = port["network_id"]
        else:
            assert subnet_id is not None
            subnet = self._visible_subnet(conn, subnet_id, ctx)
            if not subnet["gateway_ip"]:
                raise bad_router("Subnet for router interface must have a gateway IP")
            self._check_overlap(conn, rid, subnet_id)
            port = self.create_port(conn, subnet["network_id"], subnet["project_id"], rid, owner,
                                    [{"subnet_id": subnet_id, "ip_address": subnet["gateway_ip"]}], host)
            port_id, subnet_ids, network_id = port["id"], [subnet_id], subnet["network_id"]
        conn.execute(insert(m.router_ports).values(port_id=port_id, router_id=rid, port_type=owner))
        common.bump(conn, m.routers, rid, {})
        if distributed:
            self._sync_snat_ports(conn, rid)
        self.changed(conn, rid)
        return _interface_info(router, port_id, subnet_ids, network_id)

    def remove_interface(self, conn: Connection, router: dict[str, Any], body: Any) -> dict[str, Any]:
        subnet_id, port_id = _interface_args(body, both_ok=True)
        rid = router["id"]
        ports = self.interface_ports(conn, [rid]).get(rid, [])
        if port_id is not None:
            port = next((p for p in ports if p["id"] == port_id), None)
            if port is None:
                raise NotFound(f"Router {rid} does not have an interface with id {port_id}",
                               type="RouterInterfaceNotFound")
            if subnet_id is not None and subnet_id not in {f["subnet_id"] for f in port["fixed_ips"]}:
                raise Conflict(f"Subnet {subnet_id} does not match port {port_id}", type="SubnetMismatchForPort")
        else:
            port = next((p for p in ports if subnet_id in {f["subnet_id"] for f in p["fixed_ips"]}), None)
            if port is None:
                raise NotFound(f"Router {rid} has no interface on subnet {subnet_id}",
                               type="RouterInterfaceNotFoundForSubnet")
        subnet_ids = [f["subnet_id"] for f in port["fixed_ips"]]
        self._check_interface_unused(conn, router, port, subnet_ids)
        conn.execute(delete(m.router_ports).where(m.router_ports.c.port_id == port["id"]))
        hosts = self.hosts_of(conn, rid)  # a copy whose last subnet goes hears of it too
        full = self.ports.collection.get(conn, port["id"])
        if full is not None:
            self.ports.delete(conn, full, None)
        common.bump(conn, m.routers, rid, {})
        self._sync_snat_ports(conn, rid)
        emit_to(conn, sorted(set(hosts) | set(self.hosts_of(conn, rid))),
                Hint("router", rid, router["revision_number"] + 1))
        return _interface_info(router, port["id"], subnet_ids, port["network_id"])

    def _check_interface_unused(self, conn: Connection, router: dict[str, Any], port: dict[str, Any],
                                subnet_ids: list[str]) -> None:
        cidrs = [netaddr.IPNetwork(c) for (c,) in conn.execute(select(m.subnets.c.cidr)
                                                                .where(m.subnets.c.id.in_(subnet_ids)))]
        for route in router.get("routes") or []:
            if any(netaddr.IPAddress(route["nexthop"]) in c for c in cidrs):
                raise Conflict(f"Router interface for subnet {subnet_ids[0]} on router {router['id']} cannot be "
                               f"deleted, as it is required by one or more routes.",
                               type="RouterInterfaceInUseByRoute")
        f, a = m.floatingips.c, m.ip_allocations.c
        used = conn.execute(select(f.id).join(m.ip_allocations, (a.port_id == f.fixed_port_id)
                                              & (a.ip_address == f.fixed_ip_address))
                            .where(f.router_id == router["id"], a.subnet_id.in_(subnet_ids)).limit(1)).first()
        if used is not None:
            raise Conflict(f"Router interface for subnet {subnet_ids[0]} on router {router['id']} cannot be "
                           f"deleted, as it is required by one or more floating IPs.",
                           type="RouterInterfaceInUseByFloatingIP")

    def _check_overlap(self, conn: Connection, rid: str, subnet_id: str) -> None:
        s = m.subnets.c
        new = conn.execute(select(s.id, s.cidr).where(s.id == subnet_id)).one()
        ports = self.interface_ports(conn, [rid]).get(rid, [])
        used = [f["subnet_id"] for p in ports for f in p["fixed_ips"]]
        if subnet_id in used:
            raise bad_router(f"Router {rid} already has a port on subnet {subnet_id}")
        for sid, cidr in conn.execute(select(s.id, s.cidr).where(s.id.in_(used))) if used else []:
            a, b = netaddr.IPNetwork(new.cidr), netaddr.IPNetwork(cidr)
            if a in b or b in a:
                raise bad_router(f"Cidr {new.cidr} of subnet {subnet_id} overlaps with cidr {cidr} of subnet {sid}")

    def _visible_subnet(self, conn: Connection, subnet_id: str, ctx: Context) -> dict[str, Any]:
        row = conn.execute(select(m.subnets).where(m.subnets.c.id == subnet_id)).first()
        if row is not None and not ctx.is_admin and row.project_id != ctx.project_id and not has_access(
                conn, "network", row.network_id, ctx.project_id):
            row = None
        if row is None:
            raise NotFound(f"Subnet {subnet_id} could not be found.", type="SubnetNotFound")
        return dict(row._mapping)

    def _visible_port(self, conn: Connection, port_id: str, ctx: Context) -> dict[str, Any]:
        port = self.ports.collection.get(conn, port_id)
        if port is None or not (ctx.is_admin or port["project_id"] == ctx.project_id):
            raise NotFound(f"Port {port_id} could not be found.", type="PortNotFound")
        return port

    def interface_ports(self, conn: Connection, router_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        rp = m.router_ports.c
        rows = conn.execute(select(rp.router_id, rp.port_id).where(rp.router_id.in_(list(router_ids)),
                                                                   rp.port_type.in_(INTERFACE_TYPES))).all()
        by_port = {r[1]: r[0] for r in rows}
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if not by_port:
            return out
        p = m.ports.c
        ips = load_fixed_ips(conn, list(by_port))
        for r in conn.execute(select(p.id, p.network_id, p.mac_address, p.project_id)
                              .where(p.id.in_(list(by_port))).order_by(p.created_at, p.id)):
            out[by_port[r.id]].append({"id": r.id, "network_id": r.network_id, "mac_address": r.mac_address,
                                       "project_id": r.project_id, "fixed_ips": ips.get(r.id, [])})
        return out

    # ---------------------------------------------------------------- distributed routers
    def _sync_snat_ports(self, conn: Connection, router_id: str) -> None:
        """A distributed router with a gateway has one SNAT port per interface (project '', an address on
        each of the interface's subnets), bound where its SNAT part is; none otherwise."""
        row = conn.execute(select(m.routers.c.distributed, m.routers.c.gw_port_id)
                           .where(m.routers.c.id == router_id)).one()
        interfaces = self.interface_ports(conn, [router_id]).get(router_id, []) \
            if row.distributed and row.gw_port_id else []
        wanted = {dvr.snat_port_id(router_id, p["id"]): p for p in interfaces}
        rp = m.router_ports.c
        current = set(conn.scalars(select(rp.port_id).where(rp.router_id == router_id, rp.port_type == SNAT_OWNER)))
        for port_id in sorted(current - set(wanted)):
            port = self.ports.collection.get(conn, port_id)
            if port is not None:
                self.ports.delete(conn, port, None)
        missing = sorted(set(wanted) - current)
        if not missing:
            return
        host = self.host_of(conn, router_id)
        self.create_ports(conn, [(wanted[i]["network_id"], "", router_id, SNAT_OWNER,
                                  [{"subnet_id": s} for s in dict.fromkeys(
                                      f["subnet_id"] for f in wanted[i]["fixed_ips"])], host)
                                 for i in missing], ids=missing)
        conn.execute(insert(m.router_ports), [{"port_id": i, "router_id": router_id, "port_type": SNAT_OWNER}
                                              for i in missing])

    def _migrate_interfaces(self, conn: Connection, router_id: str, distributed: bool) -> None:
        """The interfaces change owner; a distributed router's are bound to no host (schedule() binds a
        centralized router's to its host)."""
        old, new = (INTERFACE_OWNER, DVR_INTERFACE_OWNER) if distributed else (DVR_INTERFACE_OWNER, INTERFACE_OWNER)
        rp = m.router_ports.c
        for port_id in conn.scalars(select(rp.port_id).where(rp.router_id == router_id, rp.port_type == old)).all():
            port = self.ports.collection.get(conn, port_id)
            if port is not None:
                changes: dict[str, Any] = {"device_owner": new}
                if distributed:
                    changes["binding:host_id"] = ""
                self.ports.update(conn, port, changes, None)
        conn.execute(update(m.router_ports).where(rp.router_id == router_id, rp.port_type == old)
                     .values(port_type=new))

    def sync_fip_gateways(self, conn: Connection, host: str, write: bool) -> dict[str, str]:
        """The host's floating-IP agent gateway ports (network id -> port id): one per external network of
        the floating IPs of distributed routers whose instances are bound here, made or removed as that
        changes. Raises dvr.NeedsWrite when something must change and `write` is False."""
        agent_id = dvr.copy_agents(conn, [host]).get(host)
        current = dvr.fip_gateway_ports(conn, agent_id) if agent_id else {}
        wanted = dvr.fip_networks(conn, host) if agent_id else set()
        if set(current) == wanted:
            return current
        if not write:
            raise dvr.NeedsWrite(host)
        assert agent_id is not None or not wanted
        for net in sorted(set(current) - wanted):
            port = self.ports.collection.get(conn, current.pop(net))
            if port is not None:
                self.ports.delete(conn, port, None)
        missing = sorted(wanted - set(current))
        if missing and agent_id is not None:
            ids = [dvr.fip_gateway_id(agent_id, net) for net in missing]
            self.create_ports(conn, [(net, "", agent_id, dvr.FIP_GATEWAY_OWNER, AUTO, host) for net in missing],
                              ids=ids)
            current.update(zip(missing, ids, strict=True))
        return current

    def agent_deleted(self, conn: Connection, agent_id: str) -> None:
        """An L3 agent is being deleted: its floating-IP gateway ports go with it."""
        p = m.ports.c
        for port_id in conn.scalars(select(p.id).where(p.device_owner == dvr.FIP_GATEWAY_OWNER,
                                                       p.device_id == agent_id)).all():
            port = self.ports.collection.get(conn, port_id)
            if port is not None:
                self.ports.delete(conn, port, None)

    # ---------------------------------------------------------------- extra routes
    def _check_routes(self, conn: Connection, rid: str, routes: list[dict[str, str]]) -> list[dict[str, str]]:
        if len(routes) > MAX_ROUTES:
            raise BadRequest(f"Unable to complete operation for {rid}. The number of routes exceeds the "
                             f"maximum {MAX_ROUTES}.", type="RoutesExhausted")
        ports = self.interface_ports(conn, [rid]).get(rid, [])
        gw = conn.execute(select(m.routers.c.gw_port_id).where(m.routers.c.id == rid)).scalar()
        ips = [f for p in ports for f in p["fixed_ips"]]
        if gw:
            ips += load_fixed_ips(conn, [gw]).get(gw, [])
        cidrs = {x[0]: x[1] for x in conn.execute(select(m.subnets.c.id, m.subnets.c.cidr)
                                                  .where(m.subnets.c.id.in_([f["subnet_id"] for f in ips])))}
        own = {f["ip_address"] for f in ips}
        for route in routes:
            hop = netaddr.IPAddress(route["nexthop"])
            if not any(hop in netaddr.IPNetwork(c) for c in cidrs.values()):
                raise BadRequest(f"Invalid format for routes: {[route]}, the nexthop is not connected with router",
                                 type="InvalidRoutes")
            if route["nexthop"] in own:
                raise BadRequest(f"Invalid format for routes: {[route]}, the nexthop is used by router",
                                 type="InvalidRoutes")
            if netaddr.IPNetwork(route["destination"]).version != hop.version:
                raise BadRequest(f"Invalid format for routes: {[route]}, destination and nexthop differ in IP "
                                 "version", type="InvalidRoutes")
        return [{"destination": r["destination"], "nexthop": r["nexthop"]} for r in routes]

    def edit_routes(self, conn: Connection, router: dict[str, Any], body: Any, add: bool) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("router"), dict) \
                or set(body["router"]) != {"routes"}:
            raise BadRequest("Body must be {\"router\": {\"routes\": [...]}}", type="HTTPBadRequest")
        try:
            given = ROUTES(body["router"]["routes"])
        except InvalidValue as err:
            raise BadRequest(f"Invalid input for routes. Reason: {err}.", type="InvalidInput") from None
        current = list(router["routes"])
        if add:
            routes = current + [r for r in given if r not in current]
        else:
            routes = [r for r in current if r not in given]
        self.update(conn, router, {"routes": routes}, None)

    # ---------------------------------------------------------------- L3 agents
    def _l3_agents(self, conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(select(m.agents).where(m.agents.c.agent_type == L3_AGENT)).all()
        return [dict(r._mapping) for r in rows]

    def host_of(self, conn: Connection, router_id: str) -> str | None:
        """The host the router's ports are bound to: its agent's, or an HA router's active instance's."""
        return l3_ha.primary_host(l3_ha.bindings(conn, [router_id]).get(router_id, []))

    def serving_host(self, conn: Connection, router_id: str) -> str | None:
        """The host whose agent's reports make the router's floating IPs ACTIVE (l3_ha.serving_host)."""
        return l3_ha.serving_host(l3_ha.bindings(conn, [router_id]).get(router_id, []))

    def hosts_of(self, conn: Connection, router_id: str) -> list[str]:
        """The hosts carrying the router: its agents', and those with a copy of a distributed router."""
        bound = [b["host"] for b in l3_ha.bindings(conn, [router_id]).get(router_id, [])]
        return bound + [h for h in dvr.local_hosts(conn, [router_id]).get(router_id, []) if h not in bound]

    def schedule(self, conn: Connection, router_id: str) -> str | None:
        """Put the router on the least loaded live L3 agent unless it has one (an HA router: on as many as
        [l3] max_l3_agents_per_router asks, adding agents as they come); returns the primary host."""
        r = m.routers.c
        router = conn.execute(select(r.availability_zone_hints, r.ha, r.project_id, r.distributed)
                              .where(r.id == router_id)).one()
        current = l3_ha.bindings(conn, [router_id]).get(router_id, [])
        # a centralized router on legacy or dvr_snat agents, a distributed router's SNAT part on dvr_snat ones
        agents = zones.in_hinted_zones([a for a in self._l3_agents(conn) if a["admin_state_up"] and dvr.can_host(
            dvr.agent_mode(a["configurations"]), router.distributed)], router.availability_zone_hints)
        live = set(self.agents.ids_alive(agents))
        alive = [a for a in agents if a["id"] in live]
        wanted = self.ha.wanted_agents(len(alive)) if router.ha and self.ha is not None else 1
        taken = {b["agent_id"] for b in current}
        free = [a for a in alive if a["id"] not in taken]
        if len(current) >= wanted or not free:
            return l3_ha.primary_host(current)
        r = m.router_l3_agents.c
        load: dict[str, int] = dict(conn.execute(select(r.l3_agent_id, func.count()).group_by(r.l3_agent_id)).all())
        indexes = iter(i for i in range(1, 1 + wanted + len(current)) if i not in {b["binding_index"]
                                                                                    for b in current})
        for agent in sorted(free, key=lambda a: (load.get(a["id"], 0), a["host"]))[:wanted - len(current)]:
            self._bind(conn, router_id, agent, next(indexes), router.ha, router.project_id)
        host = self.host_of(conn, router_id)
        if host is not None:
            self._rebind(conn, router_id, host)
        if self.serving_host(conn, router_id) != l3_ha.serving_host(current):  # e.g. moved off a dead agent
            fip_status.reset(conn, [router_id])
        return host

    def _bind(self, conn: Connection, router_id: str, agent: dict[str, Any], index: int, ha: bool,
              project: str) -> None:
        """One binding; a concurrent scheduler taking the same index (or agent) makes the transaction run
        again, so a legacy router never gets two agents."""
        values = {"router_id": router_id, "binding_index": index, "l3_agent_id": agent["id"],
                  "ha_state": l3_ha.STANDBY if ha else None, "ha_port_id": None}
        if not insert_if_absent(conn, m.router_l3_agents, values):
            raise RetryRequest(f"router {router_id} was scheduled concurrently")
        if ha and self.ha is not None:
            network_id = self.ha.network(conn, project)
            port = self.create_ports(conn, [(network_id, "", router_id, l3_ha.HA_OWNER, AUTO, agent["host"])])[0]
            conn.execute(update(m.ports).where(m.ports.c.id == port["id"]).values(name=l3_ha.HA_PORT_NAME % project))
            r = m.router_l3_agents.c
            conn.execute(update(m.router_l3_agents).where(r.router_id == router_id, r.l3_agent_id == agent["id"])
                         .values(ha_port_id=port["id"]))

    def _unbind(self, conn: Connection, router_id: str, agent_id: str) -> bool:
        r = m.router_l3_agents.c
        port_id = conn.execute(select(r.ha_port_id).where(r.router_id == router_id, r.l3_agent_id == agent_id)
                               ).scalar()
        res = conn.execute(delete(m.router_l3_agents).where(r.router_id == router_id, r.l3_agent_id == agent_id))
        if port_id is not None:
            port = self.ports.collection.get(conn, port_id)
            if port is not None:
                self.ports.delete(conn, port, None)
        return bool(res.rowcount)

    def _unbind_all(self, conn: Connection, router_id: str) -> None:
        for agent_id in self.agent_ids(conn, router_id):
            self._unbind(conn, router_id, agent_id)

    def schedule_unhosted(self, conn: Connection) -> None:
        """Routers without an agent, and HA routers on fewer agents than they want, onto live agents."""
        r, b = m.routers.c, m.router_l3_agents.c
        counts = select(b.router_id, func.count().label("n")).group_by(b.router_id).subquery()
        rows = conn.execute(select(r.id, r.ha, func.coalesce(counts.c.n, 0))
                            .outerjoin(counts, counts.c.router_id == r.id)).all()
        want_ha = self.ha.wanted_agents(len(self.agents.ids_alive(self._l3_agents(conn)))) if self.ha else 1
        for rid, ha, n in rows:
            if n == 0 or (ha and n < want_ha):
                before = set(self.hosts_of(conn, rid))
                self.schedule(conn, rid)
                if set(self.hosts_of(conn, rid)) != before:
                    self.changed(conn, rid)

    # ---------------------------------------------------------------- failover (allow_automatic_l3agent_failover)
    @staticmethod
    def dead_bindings(conn: Connection, cutoff: datetime) -> list[tuple[str, str]]:
        """(router, agent) for each legacy router on an enabled L3 agent with no heartbeat since cutoff.
        HA routers are left alone, as Neutron does: keepalived moves their traffic."""
        a, b, r = m.agents.c, m.router_l3_agents.c, m.routers.c
        rows = conn.execute(select(b.router_id, b.l3_agent_id).join(m.agents, a.id == b.l3_agent_id)
                            .join(m.routers, r.id == b.router_id)
                            .where(a.agent_type == L3_AGENT, a.admin_state_up.is_(True), a.heartbeat_timestamp < cutoff,
                                   r.ha.is_(False), b.ha_state.is_(None))
                            .order_by(a.heartbeat_timestamp, b.router_id)).all()
        return [(x.router_id, x.l3_agent_id) for x in rows]

    def reschedule(self, conn: Connection, router_id: str, agent_id: str) -> str | None:
        """Move a legacy router off its dead agent to the least loaded live one (in its hinted zones); its
        ports follow, and both hosts hear of it. Returns the new host; None when there is nothing to do (the
        agent is back, or another server process moved the router first: the binding is gone). Raises
        NoLiveAgent when no agent can take it: the caller rolls back and the router stays."""
        dead = self.agents.still_dead(conn, agent_id)
        if dead is None:
            return None
        r = m.router_l3_agents.c
        gone = conn.execute(delete(m.router_l3_agents).where(r.router_id == router_id, r.l3_agent_id == agent_id,
                                                             r.ha_state.is_(None)))
        if not gone.rowcount:
            return None
        host = self.schedule(conn, router_id)
        if host is None:
            raise NoLiveAgent(router_id)
        common.emit(conn, Hint("router", router_id, 0, None, dead["host"]))  # when it comes back, it removes it
        self.changed(conn, router_id)
        return host

    def _rebind(self, conn: Connection, router_id: str, host: str) -> None:
        """Bind the router's ports to the host that carries it (the L2 agent there plugs their taps)."""
        rp = m.router_ports.c
        for (pid,) in conn.execute(select(rp.port_id).where(rp.router_id == router_id,
                                                            rp.port_type != DVR_INTERFACE_OWNER)).all():
            port = self.ports.collection.get(conn, pid)
            if port is not None and port["binding:host_id"] != host:
                self.ports.update(conn, port, {"binding:host_id": host}, None)

    def add_to_agent(self, conn: Connection, agent_id: str, router_id: str) -> None:
        agent = self.agents.get(conn, agent_id)
        if agent["agent_type"] != L3_AGENT or not agent["admin_state_up"]:
            raise BadRequest(f"Agent {agent_id} is not a L3 Agent or has been disabled", type="InvalidL3Agent")
        router = conn.execute(select(m.routers.c.ha, m.routers.c.project_id, m.routers.c.distributed)
                              .where(m.routers.c.id == router_id)).first()
        if router is None:
            raise NotFound(f"Router {router_id} could not be found.", type="RouterNotFound")
        dvr.check_agent(agent, router_id, router.distributed)
        current = l3_ha.bindings(conn, [router_id]).get(router_id, [])
        if agent_id in {b["agent_id"] for b in current}:
            raise Conflict(f"The router {router_id} has been already hosted by the L3 Agent {agent_id}.",
                           type="RouterHostedByL3Agent")
        if current and not router.ha:
            raise Conflict(f"Failed scheduling router {router_id} to the L3 Agent {agent_id}: the router is "
                           f"already hosted by another L3 agent.", type="RouterReschedulingFailed")
        index = min(set(range(1, len(current) + 2)) - {b["binding_index"] for b in current})
        self._bind(conn, router_id, agent, index, router.ha, router.project_id)
        host = self.host_of(conn, router_id)
        if host is not None:
            self._rebind(conn, router_id, host)
        self.changed(conn, router_id)

    def remove_from_agent(self, conn: Connection, agent_id: str, router_id: str) -> None:
        agent = self.agents.get(conn, agent_id)
        serving = self.serving_host(conn, router_id)
        if not self._unbind(conn, router_id, agent_id):
            raise Conflict(f"The router {router_id} is not hosted by L3 agent {agent_id}.",
                           type="RouterNotHostedByL3Agent")
        if self.serving_host(conn, router_id) != serving:
            fip_status.reset(conn, [router_id])
        common.emit(conn, Hint("router", router_id, 0, None, agent["host"]))
        host = self.host_of(conn, router_id)
        if host is not None:  # an HA router that lost its active instance: its ports follow another
            self._rebind(conn, router_id, host)
            self.changed(conn, router_id)

    def set_ha_states(self, conn: Connection, host: str, states: dict[str, str]) -> None:
        """An L3 agent's VRRP transitions ({router id: active|standby}); the router's ports follow the host
        that became active, so L2 population sends their traffic there. When the active instance gives the
        router up, the router's hosts hear of it: one that kept or took it (two masters meeting after a
        partition: the other stays) says so at once."""
        a, r = m.agents.c, m.router_l3_agents.c
        agent_id = conn.execute(select(a.id).where(a.host == host, a.agent_type == L3_AGENT)).scalar()
        if agent_id is None:
            return
        for router_id, state in sorted(states.items()):
            if state not in l3_ha.STATES:
                continue
            serving = self.serving_host(conn, router_id)
            res = conn.execute(update(m.router_l3_agents).where(
                r.router_id == router_id, r.l3_agent_id == agent_id, r.ha_state.is_not(None),
                r.ha_state != state).values(ha_state=state))
            if res.rowcount and state == l3_ha.ACTIVE:
                # the others are standby now, whatever they last said (a dead host cannot say it)
                conn.execute(update(m.router_l3_agents).where(
                    r.router_id == router_id, r.l3_agent_id != agent_id, r.ha_state.is_not(None))
                    .values(ha_state=l3_ha.STANDBY))
                self._rebind(conn, router_id, host)
            elif res.rowcount:
                self.changed(conn, router_id)
            if res.rowcount and self.serving_host(conn, router_id) != serving:
                # DOWN until the host now serving them reports them (its agent does, right after its transition)
                fip_status.reset(conn, [router_id])

    def router_ids(self, conn: Connection, agent_id: str) -> list[str]:
        """The routers the agent hosts: bound to it, and the distributed ones with a copy on its host."""
        r = m.router_l3_agents.c
        bound = [x[0] for x in conn.execute(select(r.router_id).where(r.l3_agent_id == agent_id))]
        host = conn.execute(select(m.agents.c.host).where(m.agents.c.id == agent_id)).scalar()
        local = dvr.local_routers(conn, host) if host is not None else []
        return bound + [x for x in local if x not in bound]

    def agent_ids(self, conn: Connection, router_id: str) -> list[str]:
        """The agents the router is bound to (a distributed router's: those of its SNAT part)."""
        return [b["agent_id"] for b in l3_ha.bindings(conn, [router_id]).get(router_id, [])]

    def hosting_agent_ids(self, conn: Connection, router_id: str) -> list[str]:
        """What GET /routers/{id}/l3-agents lists: the bound agents, then those of the hosts with a copy."""
        bound = self.agent_ids(conn, router_id)
        local = dvr.local_hosts(conn, [router_id]).get(router_id, [])
        agents = dvr.copy_agents(conn, local)
        return bound + [agents[h] for h in local if agents[h] not in bound]

    def ha_states(self, conn: Connection, router_id: str) -> dict[str, str]:
        """An HA router's VRRP state per hosting agent id ({} for a legacy router)."""
        return {b["agent_id"]: b["ha_state"] for b in l3_ha.bindings(conn, [router_id]).get(router_id, [])
                if b["ha_state"] is not None}

    def changed(self, conn: Connection, router_id: str) -> None:
        rev = conn.execute(select(m.routers.c.revision_number).where(m.routers.c.id == router_id)).scalar() or 0
        emit_to(conn, self.hosts_of(conn, router_id), Hint("router", router_id, rev))


def emit_to(conn: Connection, hosts: list[str], hint: Hint) -> None:
    """The hint for each host carrying the router (every L3 agent when none does)."""
    for host in hosts:
        common.emit(conn, dataclasses.replace(hint, host=host))
    if not hosts:
        common.emit(conn, hint)


def _interface_args(body: Any, both_ok: bool = False) -> tuple[str | None, str | None]:
    if not isinstance(body, dict) or set(body) - {"subnet_id", "port_id"}:
        raise BadRequest("Bad router request: Either subnet_id or port_id must be specified.", type="BadRequest")
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    if subnet_id is None and port_id is None:
        raise bad_router("Either subnet_id or port_id must be specified")
    if subnet_id is not None and port_id is not None and not both_ok:
        raise bad_router("Cannot specify both subnet-id and port-id")
    try:
        return (uuid_str(subnet_id) if subnet_id is not None else None,
                uuid_str(port_id) if port_id is not None else None)
    except InvalidValue as err:
        raise BadRequest(f"Invalid input for operation: {err}.", type="InvalidInput") from None


def _interface_info(router: dict[str, Any], port_id: str, subnet_ids: list[str], network_id: str) -> dict[str, Any]:
    return {"id": router["id"], "tenant_id": router["project_id"], "project_id": router["project_id"],
            "port_id": port_id, "network_id": network_id, "subnet_id": subnet_ids[0] if subnet_ids else None,
            "subnet_ids": subnet_ids}


def _fixed_set(fixed: list[dict[str, str]]) -> set[tuple[str | None, str | None]]:
    return {(f.get("subnet_id"), f.get("ip_address")) for f in fixed}
