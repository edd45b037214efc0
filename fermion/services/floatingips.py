"""Floating IPs: an address on an external network, its port, and its 1:1 association with a fixed IP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, insert, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.base import AUTO
from fermion.resources.floatingip import FLOATINGIP
from fermion.services import common, port_forwardings, qos_bindings
from fermion.services.ports import service_subnets
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.routers import (
    FLOATINGIP_OWNER,
    GATEWAY_OWNER,
    INTERFACE_OWNER,
    INTERFACE_TYPES,
    RouterService,
    caller_project,
    require_external,
)

DETAIL_KEYS = ("name", "network_id", "mac_address", "admin_state_up", "status", "device_id", "device_owner")


class FloatingIpCollection(Collection):
    def __init__(self) -> None:
        super().__init__(FLOATINGIP, m.floatingips)
        self.columns["port_id"] = m.floatingips.c.fixed_port_id

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        idx = self._index
        fixed = {r[idx["fixed_port_id"]] for r in rows} - {None}
        p = m.ports.c
        details = {r.id: {k: getattr(r, k) for k in DETAIL_KEYS} for r in conn.execute(
            select(p.id, *(p[k] for k in DETAIL_KEYS)).where(p.id.in_(list(fixed))))} if fixed else {}
        forwardings = port_forwardings.exposed(conn, [item["id"] for item in items])
        for row, item in zip(rows, items, strict=True):
            port_id = row[idx["fixed_port_id"]]
            item["port_id"] = port_id
            item["port_details"] = details.get(port_id)
            item["port_forwardings"] = forwardings.get(item["id"], [])
            # dns-integration: kept only for an external DNS service, which Fermion has not
            item["dns_name"] = item["dns_domain"] = ""


def bad_fip(message: str) -> BadRequest:
    return BadRequest(f"Bad floatingip request: {message}.", type="BadRequest")


class FloatingIpService:
    def __init__(self, quotas: QuotaService, routers: RouterService | None = None) -> None:
        self.collection = FloatingIpCollection()
        self.quotas = quotas
        self.routers = routers or RouterService(quotas)
        self.ports = self.routers.ports

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        """Insert the floating IPs; their ports (and addresses) are made as one bulk (see PortService.create)."""
        fips = []
        for item in items:
            qos_bindings.usable(conn, item.get("qos_policy_id"), ctx)
            row = common.standard_row(item)
            row.pop("name")
            fips.append((item, row, self._address_wanted(conn, item, ctx)))
        ports = self.routers.create_ports(conn, [(item["floating_network_id"], "", row["id"], FLOATINGIP_OWNER,
                                                  [want], None) for item, row, want in fips])
        rows = []
        for (item, row, _), port in zip(fips, ports, strict=True):
            row.update(floating_ip_address=port["fixed_ips"][0]["ip_address"],
                       floating_network_id=item["floating_network_id"], floating_port_id=port["id"],
                       fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN",
                       qos_policy_id=item.get("qos_policy_id"))
            rows.append(row)
        conn.execute(insert(m.floatingips), rows)
        common.add_tags(conn, [(row["id"], item.get("tags") or []) for item, row, _ in fips])
        out = []
        for (item, row, _) in fips:
            if item.get("port_id"):
                self._associate(conn, row, item["port_id"], item.get("fixed_ip_address"), ctx, item.get("router_id"))
            elif item.get("router_id"):
                self._check_host(conn, row, item["router_id"], ctx)  # no port: nothing to translate yet
                conn.execute(update(m.floatingips).where(m.floatingips.c.id == row["id"])
                             .values(router_id=item["router_id"]))
            if item.get("port_id") or item.get("router_id"):
                row = dict(conn.execute(select(m.floatingips).where(m.floatingips.c.id == row["id"])).one()._mapping)
            out.append({**row, "name": "", "tags": sorted(set(item.get("tags") or []))})
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "floatingip", count)
        return out

    def _address_wanted(self, conn: Connection, item: dict[str, Any], ctx: Context | None) -> dict[str, str]:
        """The fixed_ips entry of the floating IP's port: the address or subnet asked for, else the external
        network's first IPv4 subnet that serves floating IPs (subnet-service-types)."""
        net_id = item["floating_network_id"]
        require_external(conn, net_id, bad_fip, caller_project(ctx))
        want: dict[str, str] = {}
        if item.get("subnet_id"):
            want["subnet_id"] = item["subnet_id"]
        if item["floating_ip_address"] is not AUTO:
            want["ip_address"] = item["floating_ip_address"]
        if not want:
            v4 = [s for s in self.ports.subnets_of(conn, net_id) if s["ip_version"] == 4]
            if not v4:
                raise bad_fip(f"Network {net_id} has no IPv4 subnet for floating IPs")
            port = {"device_owner": "network:floatingip", "network_id": net_id}
            want["subnet_id"] = service_subnets(port, v4)[0]["id"]
        return want

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values = {k: changes[k] for k in ("description",) if k in changes}
        common.bump(conn, m.floatingips, orig["id"], values, expect_revision)
        qos_bindings.fip_updated(conn, orig, changes, ctx)
        if changes and not {"port_id", "fixed_ip_address", "router_id"} & set(changes):
            return  # a description alone leaves the association as it is
        row = dict(conn.execute(select(m.floatingips).where(m.floatingips.c.id == orig["id"])).one()._mapping)
        old_port, old_router = row["fixed_port_id"], row["router_id"]
        if changes.get("fixed_ip_address") and not changes.get("port_id"):
            raise bad_fip("fixed_ip_address cannot be specified without a port_id")
        # as Neutron: an empty update ({}) disassociates; one that names no port_id keeps the port
        port_id = changes["port_id"] if "port_id" in changes else (old_port if changes else None)
        if port_id and port_id == old_port and not {"router_id", "fixed_ip_address"} & set(changes):
            return  # the same port again: the association, and the router that hosts it, do not change
        if port_id:
            router_id = changes.get("router_id")
            self._associate(conn, row, port_id, changes.get("fixed_ip_address"), ctx, router_id)
            new_router = router_id or self._row_router(conn, orig["id"])
        else:
            # with no port, the router is the one the client names (null clears it); without one named, it
            # goes with the port it served, and stays on a floating IP that had no port (as Neutron)
            if changes.get("router_id"):
                self._check_host(conn, row, changes["router_id"], ctx)
            new_router = changes["router_id"] if "router_id" in changes else (None if old_port else old_router)
            conn.execute(update(m.floatingips).where(m.floatingips.c.id == orig["id"]).values(
                fixed_port_id=None, fixed_ip_address=None, router_id=new_router, status="DOWN"))
        if old_router and old_port and (old_router != new_router or not port_id):
            self.routers.changed(conn, old_router)  # it no longer translates for this floating IP

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        if expect_revision is not None:
            common.bump(conn, m.floatingips, orig["id"], {}, expect_revision)
        row = conn.execute(select(m.floatingips).where(m.floatingips.c.id == orig["id"])).one()
        port_forwardings.check_unused(conn, orig)
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == orig["id"]))
        conn.execute(delete(m.floatingips).where(m.floatingips.c.id == orig["id"]))
        port = self.ports.collection.get(conn, row.floating_port_id)
        if port is not None:
            self.ports.delete(conn, port, None)
        self.quotas.release(conn, orig["project_id"], "floatingip")
        if row.router_id:
            self.routers.changed(conn, row.router_id)

    def _associate(self, conn: Connection, fip: dict[str, Any], port_id: str, fixed_ip: str | None,
                   ctx: Context | None, router_id: str | None = None) -> None:
        """Associate the port's fixed IP; the hosting router is `router_id` when the client names one
        (floating-ip-router-writable: not checked for a path to the port), else the one on the port's subnet."""
        port_forwardings.check_unused(conn, fip)
        port = self.ports.collection.get(conn, port_id)
        if port is None or (ctx is not None and not ctx.is_admin and not _sees_port(conn, port, ctx)):
            raise NotFound(f"Port {port_id} could not be found.", type="PortNotFound")
        if port["project_id"] != fip["project_id"] and not (ctx is not None and ctx.is_admin):
            raise bad_fip(f"Cannot create floating IP and bind it to Port {port_id}, since that port is owned by "
                          "a different tenant")
        if port["device_owner"] in (INTERFACE_OWNER, GATEWAY_OWNER, FLOATINGIP_OWNER) \
                or port["device_owner"].startswith("network:"):
            raise bad_fip(f"Port {port_id} has owner {port['device_owner']} and therefore cannot be assigned to "
                          "a floating IP")
        v4 = [f for f in port["fixed_ips"] if netaddr.IPAddress(f["ip_address"]).version == 4]
        if fixed_ip is not None:
            chosen = next((f for f in v4 if f["ip_address"] == fixed_ip), None)
            if chosen is None:
                raise bad_fip(f"Port {port_id} does not have fixed ip {fixed_ip}")
        elif not v4:
            raise bad_fip(f"Port {port_id} does not have any IPv4 address; a floating IP needs one")
        elif len(v4) > 1:
            raise bad_fip(f"Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 "
                          "address when assigning a floating IP")
        else:
            chosen = v4[0]
        if router_id is not None:
            self._check_host(conn, fip, router_id, ctx)
        else:
            router_id = self._router_for(conn, fip["floating_network_id"], chosen["subnet_id"])
        if router_id is None:
            raise NotFound(f"External network {fip['floating_network_id']} is not reachable from subnet "
                           f"{chosen['subnet_id']}.  Therefore, cannot associate Port {port_id} with a Floating IP.",
                           type="ExternalGatewayForFloatingIPNotFound")
        f = m.floatingips.c
        taken = conn.execute(select(f.id).where(f.floating_network_id == fip["floating_network_id"],
                                                f.fixed_port_id == port_id, f.fixed_ip_address == chosen["ip_address"],
                                                f.id != fip["id"])).first()
        if taken is not None:
            raise Conflict(f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) with port "
                           f"{port_id} using fixed IP {chosen['ip_address']}, as that fixed IP already has a "
                           f"floating IP on external network {fip['floating_network_id']}.",
                           type="FloatingIPPortAlreadyAssociated")
        # DOWN until the L3 agent serving the router reports it realized (fip_status.py)
        conn.execute(update(m.floatingips).where(f.id == fip["id"]).values(
            fixed_port_id=port_id, fixed_ip_address=chosen["ip_address"], router_id=router_id, status="DOWN"))
        self.routers.changed(conn, router_id)

    def _check_host(self, conn: Connection, fip: dict[str, Any], router_id: str, ctx: Context | None) -> None:
        """A router the client names exists and is visible to it (404), and has its gateway on the floating
        IP's network (409, as Neutron's floating-ip-router-writable specifies)."""
        r = m.routers.c
        router = conn.execute(select(r.project_id, r.gw_port_id).where(r.id == router_id)).first()
        if router is None or (ctx is not None and not ctx.is_admin and router.project_id != ctx.project_id):
            raise NotFound(f"Router {router_id} could not be found.", type="RouterNotFound")
        gw_net = conn.execute(select(m.ports.c.network_id).where(m.ports.c.id == router.gw_port_id)).scalar() \
            if router.gw_port_id else None
        if gw_net != fip["floating_network_id"]:
            raise Conflict(f"Router {router_id} has no external gateway on network {fip['floating_network_id']}. "
                           f"Therefore, it cannot host floating IP {fip['floating_ip_address']} ({fip['id']}).",
                           type="RouterExternalGatewayNotOnFloatingNetwork")

    @staticmethod
    def _row_router(conn: Connection, fip_id: str) -> str | None:
        return conn.execute(select(m.floatingips.c.router_id).where(m.floatingips.c.id == fip_id)).scalar()

    def _router_for(self, conn: Connection, network_id: str, subnet_id: str) -> str | None:
        """The router with a gateway on the floating IP's network and an interface on the fixed IP's subnet."""
        r, rp, a, p = m.routers.c, m.router_ports.c, m.ip_allocations.c, m.ports.c
        stmt = (select(r.id).join(m.ports, p.id == r.gw_port_id)
                .where(p.network_id == network_id,
                       r.id.in_(select(rp.router_id).join(m.ip_allocations, a.port_id == rp.port_id)
                                .where(rp.port_type.in_(INTERFACE_TYPES), a.subnet_id == subnet_id)))
                .order_by(r.created_at, r.id))
        row = conn.execute(stmt).first()
        return None if row is None else str(row[0])


def _sees_port(conn: Connection, port: dict[str, Any], ctx: Context) -> bool:
    """Whether a non-admin may see the port: its own, or one on a network it owns (as Neutron's port query)."""
    if port["project_id"] == ctx.project_id:
        return True
    owner = conn.execute(select(m.networks.c.project_id).where(m.networks.c.id == port["network_id"])).scalar()
    return owner is not None and owner == ctx.project_id
