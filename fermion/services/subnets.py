"""Subnets: validation of geometry, pools, gateway and overlap on the network."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import netaddr
from sqlalchemy import BindParameter, Connection, bindparam, delete, insert, literal, null, select, union_all

from fermion.context import Context
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.errors import BadRequest, Conflict, InvalidInput
from fermion.resources.base import AUTO
from fermion.resources.subnet import SUBNET
from fermion.rpc.contracts import Hint
from fermion.services import common, ipam
from fermion.services.address_scopes import accessible
from fermion.services.networks import DHCP_OWNER, MIN_MTU, mtu_conflict
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.segments import check_subnet_segment
from fermion.services.subnetpools import SubnetPoolService, pool_not_found

_st = m.subnet_service_types.c
_s, _n = m.subnets.c, m.networks.c
# what a new subnet must agree with, in one round trip: the network's MTU (a first row, 0, with the MTU in
# the third column), then its subnets (1, id, ip_version, cidr, pool, segment): no overlap, one pool per IP
# version, on segments all or none
_NETWORK_AND_SUBNETS = Prepared(union_all(
    select(literal(0), null(), _n.mtu, null(), null(), null()).where(_n.id == bindparam("b_network")),
    select(literal(1), _s.id, _s.ip_version, _s.cidr, _s.subnetpool_id, _s.segment_id)
    .where(_s.network_id == bindparam("b_network"))))
_INSERT_SUBNET = Prepared(insert(m.subnets))
_t = m.tags.c
_ids: BindParameter[Any] = bindparam("b_ids", expanding=True)
# the tags (0) and service types (1) of a page of up to 500 subnets in one round trip
_SUBNETS_PARTS = Prepared(union_all(
    select(literal(1), _st.subnet_id, _st.service_type).where(_st.subnet_id.in_(_ids)),
    select(literal(0), _t.resource_id, _t.tag).where(_t.resource_id.in_(_ids))))
_PARTS_AT_ONCE = 500
_ROUTER_INTERFACES = ("network:router_interface", "network:router_interface_distributed",
                      "network:ha_router_replicated_interface")


class SubnetCollection(Collection):
    def __init__(self) -> None:
        super().__init__(SUBNET, m.subnets)
        n = m.networks.c
        self.columns["shared"] = select(n.shared).where(n.id == m.subnets.c.network_id).scalar_subquery()

    def where(self, q: Any) -> list[Any]:
        wanted = q.filters.get("service_types")
        if wanted is None:
            return super().where(q)
        rest = dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k != "service_types"})
        conds = super().where(rest)
        for service_type in wanted:
            conds.append(m.subnets.c.id.in_(select(_st.subnet_id).where(_st.service_type == service_type)))
        return conds

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        for item, values in zip(items, inserted, strict=True):  # SubnetService.create keeps what it stored
            item["service_types"] = values["service_types"]

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        """A page of up to 500 subnets (a show, a list) in one extra statement instead of two."""
        if not rows or len(rows) > _PARTS_AT_ONCE or tags is not None or not complete:
            return super().to_dicts(conn, rows, tags, complete)
        parts: tuple[dict[str, list[str]], dict[str, list[str]]] = (defaultdict(list), defaultdict(list))
        for kind, subnet_id, value in _SUBNETS_PARTS.rows(conn, {"b_ids": [r[0] for r in rows]}):
            parts[kind][subnet_id].append(value)
        for found in parts:
            for values in found.values():
                values.sort()
        items = self.dicts(rows, parts[0])
        for item in items:
            item["service_types"] = parts[1].get(item["id"]) or []
        return items

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        types = load_service_types(conn, [i["id"] for i in items])
        for item in items:
            item["service_types"] = types.get(item["id"], [])


def load_service_types(conn: Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return out
    stmt = select(_st.subnet_id, _st.service_type).order_by(_st.subnet_id, _st.service_type)
    if len(ids) <= 500:
        stmt = stmt.where(_st.subnet_id.in_(list(ids)))
    wanted = set(ids)
    for sid, service_type in conn.execute(stmt):
        if sid in wanted:
            out[sid].append(service_type)
    return out


def _set_service_types(conn: Connection, subnet_id: str, types: list[str], fresh: bool) -> None:
    if not fresh:
        conn.execute(delete(m.subnet_service_types).where(_st.subnet_id == subnet_id))
    if types:
        conn.execute(insert(m.subnet_service_types),
                     [{"subnet_id": subnet_id, "service_type": t} for t in sorted(set(types))])


def check_geometry(item: dict[str, Any]) -> netaddr.IPNetwork:
    net = netaddr.IPNetwork(item["cidr"])
    if net.version != item["ip_version"]:
        raise InvalidInput("cidr and ip_version do not match")
    if net.ip != net.network:
        raise InvalidInput(f"'{item['cidr']}' isn't a recognized IP subnet cidr, '{net.cidr}' is recommended")
    if net.prefixlen == 0:
        raise InvalidInput(f"0 is not allowed as CIDR prefix length: {item['cidr']}")
    for dns in item.get("dns_nameservers") or []:
        if netaddr.IPAddress(dns).version != net.version:
            raise InvalidInput(f"DNS nameserver {dns} does not match the subnet's IP version")
    for route in item.get("host_routes") or []:
        if (netaddr.IPNetwork(route["destination"]).version != net.version
                or netaddr.IPAddress(route["nexthop"]).version != net.version):
            raise InvalidInput(f"Host route {route} does not match the subnet's IP version")
    ra, addr = item.get("ipv6_ra_mode"), item.get("ipv6_address_mode")
    if net.version == 4 and (ra or addr):
        raise InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4")
    if ra and addr and ra != addr:
        raise InvalidInput(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not valid. "
                           "If both attributes are set, they must be the same value")
    if addr in ("slaac", "dhcpv6-stateless") and net.prefixlen != 64:
        raise InvalidInput(f"Invalid CIDR {net} for IPv6 address mode. OpenStack uses the EUI-64 address "
                           "format, which requires the prefix to be /64")
    return net


def check_mtu(network_id: str, mtu: int | None, version: int) -> None:
    """A subnet needs its network's MTU to be at least its IP version's minimum (Neutron: 409)."""
    if mtu is not None and mtu < MIN_MTU[version]:
        raise mtu_conflict(network_id, MIN_MTU[version])


class SubnetService:
    def __init__(self, quotas: QuotaService,
                 on_dhcp_change: Callable[[Connection, str], None] | None = None,
                 pools: SubnetPoolService | None = None) -> None:
        self.collection = SubnetCollection()
        self.quotas = quotas
        self.pools = pools or SubnetPoolService(quotas)
        # DHCP scheduling hook (services.dhcp): runs in the transaction when a subnet's DHCP may change
        self.on_dhcp_change = on_dhcp_change

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        """Insert the items; return the inserted rows (to answer without reading them back)."""
        self._lock_networks(conn, {item["network_id"] for item in items})
        wanted = [self._pool_id(conn, item, ctx) for item in items]
        locked = self.pools.lock(conn, [p for p in wanted if p])
        rows = []
        for item, pool_id in zip(items, wanted, strict=True):
            if pool_id:
                pool = locked.get(pool_id)
                if pool is None or not accessible(conn, "subnetpool", pool, ctx):
                    raise pool_not_found(pool_id)
                if item["cidr"] is AUTO and item["allocation_pools"] is not AUTO:
                    raise BadRequest("allocation_pools allowed only for specific subnet requests.")
                if item["cidr"] is not AUTO:
                    check_geometry(item)
                item["cidr"] = str(self.pools.allocate(conn, pool, item))
            net = check_geometry(item)
            gateway = item["gateway_ip"]
            if gateway is AUTO:
                gateway = ipam.default_gateway(net)
            elif gateway is not None:
                ipam.validate_gateway(net, gateway)
            pools = item["allocation_pools"]
            if pools is AUTO:
                pools = ipam.default_pools(net, gateway)
            else:
                ipam.validate_pools(net, pools, gateway)
                pools = [{"start": p["start"], "end": p["end"]} for p in pools]
            rows_ = _NETWORK_AND_SUBNETS.rows(conn, {"b_network": item["network_id"]})
            siblings = [r[1:] for r in rows_ if r[0] == 1]  # (id, ip_version, cidr, pool, segment)
            self._check_overlap(item["network_id"], net, siblings, pool_id)
            check_subnet_segment(conn, item["network_id"], item.get("segment_id"), [r[4] for r in siblings])
            check_mtu(item["network_id"], next((r[2] for r in rows_ if r[0] == 0), None), net.version)
            row = common.standard_row(item)
            row.update(network_id=item["network_id"], ip_version=net.version, cidr=str(net),
                       gateway_ip=gateway, allocation_pools=pools,
                       dns_nameservers=item["dns_nameservers"], host_routes=item["host_routes"],
                       enable_dhcp=item["enable_dhcp"], ipv6_ra_mode=item["ipv6_ra_mode"],
                       ipv6_address_mode=item["ipv6_address_mode"], subnetpool_id=pool_id,
                       segment_id=item.get("segment_id"),
                       dns_publish_fixed_ip=item.get("dns_publish_fixed_ip", False))
            _INSERT_SUBNET.run(conn, row)
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            _set_service_types(conn, row["id"], item.get("service_types") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or [])),
                         "service_types": sorted(set(item.get("service_types") or []))})
            self._changed(conn, row["network_id"], row["id"], 1, row["enable_dhcp"])
            common.bump(conn, m.networks, row["network_id"], {})  # as Neutron: the network's subnets changed
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "subnet", count)
        return rows

    def _pool_id(self, conn: Connection, item: dict[str, Any], ctx: Context | None) -> str | None:
        """The pool a subnet comes from: the one named, the default one, or none (a cidr is then needed)."""
        has_cidr, has_len = item["cidr"] is not AUTO, item.get("prefixlen", AUTO) is not AUTO
        if has_cidr and has_len:
            raise BadRequest("cidr and prefixlen must not be supplied together")
        pool_id = item.get("subnetpool_id")
        if item.get("use_default_subnetpool"):
            if pool_id:
                raise BadRequest("subnetpool_id and use_default_subnetpool cannot both be specified")
            version = netaddr.IPNetwork(item["cidr"]).version if has_cidr else item["ip_version"]
            pool_id = self.pools.default_pool(conn, version, ctx)
        if not pool_id and not has_cidr:
            raise BadRequest("A cidr must be specified in the absence of a subnet pool")
        return pool_id or None

    @staticmethod
    def _lock_networks(conn: Connection, network_ids: set[str]) -> None:
        """That the subnets of a network do not overlap is no unique key: creates on one network take
        turns, holding its row until commit (in id order; FOR NO KEY UPDATE on PostgreSQL, which the
        foreign keys of new ports do not wait for). SQLite has one writer at a time anyway."""
        if conn.dialect.name != "sqlite":
            n = m.networks.c
            conn.execute(select(n.id).where(n.id.in_(sorted(network_ids))).order_by(n.id)
                         .with_for_update(key_share=True))

    @staticmethod
    def _check_overlap(network_id: str, net: netaddr.IPNetwork, siblings: Sequence[Any],
                       pool_id: str | None = None) -> None:
        """No two subnets of a network overlap, and (Neutron) those of one IP version come from one pool;
        siblings: the network's other subnets, (id, ip_version, cidr, subnetpool_id, ...) each."""
        for _sid, version, cidr, other_pool, *_ in siblings:
            if net in netaddr.IPNetwork(cidr) or netaddr.IPNetwork(cidr) in net:
                raise InvalidInput(f"Requested subnet with cidr: {net} for network: {network_id} overlaps "
                                   "with another subnet")
            if version == net.version and other_pool != pool_id:
                raise BadRequest("Subnets hosted on the same network must be allocated from the same subnet "
                                 "pool.", type="NetworkSubnetPoolAffinityError")

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        net = netaddr.IPNetwork(orig["cidr"])
        merged = {**orig, **changes}
        check_geometry(merged)
        gateway = merged["gateway_ip"]
        if "gateway_ip" in changes and gateway != orig["gateway_ip"] and orig["gateway_ip"] is not None:
            # the router interface on the current gateway keeps it: moved or removed only once detached
            a, p = m.ip_allocations.c, m.ports.c
            holder = conn.execute(select(a.port_id).join(m.ports, p.id == a.port_id).where(
                a.subnet_id == orig["id"], a.ip_address == orig["gateway_ip"],
                p.device_owner.in_(_ROUTER_INTERFACES))).scalar()
            if holder is not None:
                raise Conflict(f"Current gateway ip {orig['gateway_ip']} already in use by port {holder}. Unable "
                               "to update.", type="GatewayIpInUse")
        if "gateway_ip" in changes and gateway is not None:
            ipam.validate_gateway(net, gateway)
            taken = conn.execute(select(m.ip_allocations.c.port_id).where(
                m.ip_allocations.c.subnet_id == orig["id"], m.ip_allocations.c.ip_address == gateway)).first()
            if taken is not None and gateway != orig["gateway_ip"]:
                raise Conflict(f"Gateway ip {gateway} conflicts with an allocated address.",
                               type="GatewayIpInUse")
        if "allocation_pools" in changes or "gateway_ip" in changes:
            pools = merged["allocation_pools"]
            if "allocation_pools" in changes:
                pools = [{"start": p["start"], "end": p["end"]} for p in pools]
                changes["allocation_pools"] = pools
            ipam.validate_pools(net, pools, gateway)
        if "service_types" in changes:
            _set_service_types(conn, orig["id"], changes.pop("service_types") or [], fresh=False)
        common.bump(conn, m.subnets, orig["id"], changes, expect_revision)
        self._changed(conn, orig["network_id"], orig["id"], orig["revision_number"] + 1, merged["enable_dhcp"])

    def _changed(self, conn: Connection, network_id: str, subnet_id: str, revision: int, dhcp: bool) -> None:
        if dhcp and self.on_dhcp_change is not None:
            self.on_dhcp_change(conn, network_id)
        common.emit(conn, Hint("subnet", subnet_id, revision, network_id))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        sid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.subnets, sid, {}, expect_revision)
        a, p = m.ip_allocations.c, m.ports.c
        users = conn.execute(select(a.port_id, p.device_owner, p.binding_host_id)
                             .join(m.ports, p.id == a.port_id).where(a.subnet_id == sid)).all()
        # as Neutron: the addresses of an IPv6 SLAAC/DHCPv6-stateless subnet go with it, except a router's
        auto = ipam.is_auto_address(orig)
        if any(u.device_owner in _ROUTER_INTERFACES if auto else u.device_owner != DHCP_OWNER for u in users):
            raise Conflict(f"Unable to complete operation on subnet {sid}: One or more ports have an IP "
                           "allocation from this subnet.", type="SubnetInUse")
        conn.execute(delete(m.ip_allocations).where(a.subnet_id == sid))
        for u in users if auto else ():
            if u.device_owner != DHCP_OWNER:
                common.bump(conn, m.ports, u.port_id, {})
                rev = conn.execute(select(p.revision_number).where(p.id == u.port_id)).scalar_one()
                common.emit(conn, Hint("port", u.port_id, rev, orig["network_id"], u.binding_host_id or None))
        conn.execute(delete(m.subnet_service_types).where(_st.subnet_id == sid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == sid))
        conn.execute(delete(m.subnets).where(m.subnets.c.id == sid))
        common.bump(conn, m.networks, orig["network_id"], {})
        self.quotas.release(conn, orig["project_id"], "subnet")
        common.emit(conn, Hint("subnet", sid, orig["revision_number"] + 1, orig["network_id"]))
