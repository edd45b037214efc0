"""Floating IP port forwardings (floating-ip-port-forwarding): DNAT of a floating IP's TCP/UDP port (range) to a
fixed IP's port (range), as Neutron's port forwarding service plugin.

A floating IP carries forwardings only while it is associated with no port; its router is the one that reaches
the first forwarding's internal port (a gateway on the floating IP's network and an interface on the fixed IP's
subnet), and it goes again with the last forwarding. Ranges: the internal range is as long as the external one
(port N of the external range goes to port N of the internal one), or a single port (N:1)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, and_, delete, or_, select, update

from fermion.db import models as m
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.port_forwarding import PORT_FORWARDING
from fermion.rpc.contracts import PortForwarding
from fermion.services import common
from fermion.services.query import Collection, ListQuery, chunks

_c = m.port_forwardings.c
_f = m.floatingips.c
# the keys a floating IP's own body shows of each forwarding (expose-port-forwarding-in-fip, -detail)
EXPOSED = ("id", "internal_port_id", "internal_ip_address", "protocol", "internal_port", "external_port")


def bad(message: str) -> BadRequest:
    return BadRequest(f"Bad port_forwarding request: {message}.", type="BadRequest")


def _api(r: Any) -> dict[str, Any]:
    """A row as the API shows it: single ports where a side is one port, ranges always."""
    return {"id": r.id, "project_id": r.project_id, "tenant_id": r.project_id, "floatingip_id": r.floatingip_id,
            "internal_port_id": r.internal_port_id, "internal_ip_address": r.internal_ip_address,
            "protocol": r.protocol, "description": r.description,
            "internal_port": r.internal_port_start if r.internal_port_start == r.internal_port_end else None,
            "external_port": r.external_port_start if r.external_port_start == r.external_port_end else None,
            "internal_port_range": f"{r.internal_port_start}:{r.internal_port_end}",
            "external_port_range": f"{r.external_port_start}:{r.external_port_end}"}


class ForwardingCollection(Collection):
    """Plain rows: no timestamps, revision or tags. A single port is a range of one, so the single-port
    filters and sort keys read the range columns."""

    def __init__(self) -> None:
        super().__init__(PORT_FORWARDING, m.port_forwardings)
        self.columns["floatingip_id"] = _c.floatingip_id
        self.columns["external_port"] = self.columns["external_port_range"] = _c.external_port_start

    def where(self, q: ListQuery) -> list[Any]:
        filters = dict(q.filters)
        conds = []
        for value in filters.pop("external_port", []):
            conds.append(and_(_c.external_port_start == value, _c.external_port_end == value))
        for value in filters.pop("external_port_range", []):
            start, _, end = str(value).partition(":")
            conds.append(and_(_c.external_port_start == int(start), _c.external_port_end == int(end or start)))
        rest = super().where(ListQuery(filters=filters))
        return [*rest, or_(*conds)] if conds else rest

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        return [_api(r) for r in rows]


def _range(value: Any) -> tuple[int, int]:
    start, _, end = str(value).partition(":")
    return int(start), int(end or start)


def _ports(item: dict[str, Any], side: str) -> tuple[int, int] | None:
    single, ranged = item.get(f"{side}_port"), item.get(f"{side}_port_range")
    if single is not None:
        return single, single
    return _range(ranged) if ranged is not None else None


def _text(ports: tuple[int, int], short: bool = False) -> str:
    """"start:end"; short: a single port as "port" (the RPC contract's form)."""
    return str(ports[0]) if short and ports[0] == ports[1] else f"{ports[0]}:{ports[1]}"


def check_unused(conn: Connection, fip: dict[str, Any]) -> None:
    """A floating IP with forwardings can be neither associated with a port nor deleted (409)."""
    if conn.execute(select(_c.id).where(_c.floatingip_id == fip["id"]).limit(1)).first() is not None:
        raise Conflict(f"Floating IP {fip['id']} in use by Port Forwarding resources.",
                       type="FipInUseByPortForwarding")


def exposed(conn: Connection, fip_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """expose-port-forwarding-in-fip: each floating IP's forwardings (EXPOSED keys; a side that is a range
    has no single port key, as Neutron)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for part in chunks(fip_ids):
        for r in conn.execute(select(m.port_forwardings).where(_c.floatingip_id.in_(part)).order_by(_c.id)):
            item = _api(r)
            out[r.floatingip_id].append({k: item[k] for k in EXPOSED if item[k] is not None})
    return out


def router_view(conn: Connection, router_ids: list[str]) -> dict[str, list[PortForwarding]]:
    """The L3 view's forwardings: those of each router's floating IPs (none associated with a port)."""
    out: dict[str, list[PortForwarding]] = defaultdict(list)
    for part in chunks(router_ids):
        stmt = (select(_f.router_id, _f.floating_ip_address, m.port_forwardings)
                .join(m.floatingips, _f.id == _c.floatingip_id).where(_f.router_id.in_(part))
                .order_by(_f.floating_ip_address, _c.protocol, _c.external_port_start))
        for r in conn.execute(stmt):
            out[r.router_id].append(PortForwarding(
                id=r.id, floating_ip=r.floating_ip_address, protocol=r.protocol,
                external_port=_text((r.external_port_start, r.external_port_end), short=True),
                internal_ip=r.internal_ip_address,
                internal_port=_text((r.internal_port_start, r.internal_port_end), short=True)))
    return out


def forget_port(conn: Connection, port_id: str, keep: Iterable[str] = ()) -> list[str]:
    """The port is going away, or lost some fixed IPs: its forwardings to addresses not in keep go (a floating
    IP left with none leaves its router). Returns the routers to tell."""
    kept = set(keep)
    rows = [r for r in conn.execute(select(_c.id, _c.floatingip_id, _c.internal_ip_address)
                                    .where(_c.internal_port_id == port_id)) if r.internal_ip_address not in kept]
    if not rows:
        return []
    conn.execute(delete(m.port_forwardings).where(_c.id.in_([r.id for r in rows])))
    return _release(conn, {r.floatingip_id for r in rows})


def _release(conn: Connection, fip_ids: set[str]) -> list[str]:
    """Floating IPs left without forwardings leave their router; returns every router concerned."""
    routers = {r.router_id: r.id for r in conn.execute(select(_f.id, _f.router_id).where(_f.id.in_(fip_ids)))
               if r.router_id}
    used = {r[0] for r in conn.execute(select(_c.floatingip_id).where(_c.floatingip_id.in_(fip_ids)).distinct())}
    for fip_id in sorted(fip_ids - used):
        common.bump(conn, m.floatingips, fip_id, {"router_id": None})
    return sorted(routers)


class PortForwardingService:
    """find_router(conn, network_id, subnet_id): the router with a gateway on the network and an interface on
    the subnet (the floating IP service's); changed(conn, router_id): hint the router's L3 agents."""

    def __init__(self, find_router: Any, changed: Any) -> None:
        self.collection = ForwardingCollection()
        self.find_router = find_router
        self.changed = changed

    def list(self, conn: Connection, fip_id: str, q: ListQuery) -> tuple[list[dict[str, Any]], bool]:
        q.filters["floatingip_id"] = [fip_id]
        return self.collection.page(conn, q, None)

    def get(self, conn: Connection, fip_id: str, ident: str, for_update: bool = False) -> dict[str, Any]:
        item = self.collection.get(conn, ident, _c.floatingip_id == fip_id, for_update=for_update)
        if item is None:
            raise NotFound(f"Port Forwarding {ident} could not be found.", type="PortForwardingNotFound")
        return item

    # ------------------------------------------------------------------------------------------ writes
    def create(self, conn: Connection, fip: dict[str, Any], item: dict[str, Any],
               port: dict[str, Any] | None) -> dict[str, Any]:
        """port: the internal port as the caller sees it (None: not found or not visible)."""
        if fip["port_id"]:
            raise Conflict(f"Cannot associate port {item['internal_port_id']} with floating IP {fip['id']} "
                           f"({fip['floating_ip_address']}): the floating IP is already associated with port "
                           f"{fip['port_id']}.", type="FloatingIPPortAlreadyAssociated")
        new = self._normalize(item, None)
        port = self._internal(conn, fip, new, port, fip["router_id"])
        self._collisions(conn, fip["id"], new, None)
        row = {"id": new_id(), "project_id": item["project_id"], "floatingip_id": fip["id"],
               **self._columns(new)}
        if not insert_if_absent(conn, m.port_forwardings, row):
            raise self._duplicate(fip["id"], new)
        router_id = port["router_id"]
        if fip["router_id"] != router_id:
            common.bump(conn, m.floatingips, fip["id"], {"router_id": router_id})
        self.changed(conn, router_id)
        return self.get(conn, fip["id"], row["id"])

    def update(self, conn: Connection, fip: dict[str, Any], orig: dict[str, Any], changes: dict[str, Any],
               port: dict[str, Any] | None) -> dict[str, Any]:
        new = self._normalize(changes, orig)
        moved = changes.get("internal_port_id", orig["internal_port_id"]) != orig["internal_port_id"]
        if moved and not changes.get("internal_ip_address"):
            new["internal_ip_address"] = None  # the new port's first IPv4 address
        if moved or "internal_ip_address" in changes:
            self._internal(conn, fip, new, port, fip["router_id"])
        self._collisions(conn, fip["id"], new, orig["id"])
        values = self._columns(new)
        if values != self._columns(orig):
            taken = conn.execute(select(_c.id).where(_c.id != orig["id"], _c.floatingip_id == fip["id"],
                                                     _c.protocol == values["protocol"],
                                                     _c.external_port_start == values["external_port_start"],
                                                     _c.external_port_end == values["external_port_end"])).first()
            if taken is not None:
                raise self._duplicate(fip["id"], new)
            conn.execute(update(m.port_forwardings).where(_c.id == orig["id"]).values(**values))
            if fip["router_id"]:
                self.changed(conn, fip["router_id"])
        return self.get(conn, fip["id"], orig["id"])

    def delete(self, conn: Connection, fip: dict[str, Any], orig: dict[str, Any]) -> None:
        conn.execute(delete(m.port_forwardings).where(_c.id == orig["id"]))
        for router_id in _release(conn, {fip["id"]}):
            self.changed(conn, router_id)

    # ------------------------------------------------------------------------------------------ checks
    @staticmethod
    def _normalize(changes: dict[str, Any], orig: dict[str, Any] | None) -> dict[str, Any]:
        """The forwarding after changes, with both sides as (start, end) ports: single ports and ranges may
        not be mixed in one request, and the internal range is one port or as long as the external one."""
        singles = {k for k in ("internal_port", "external_port") if changes.get(k) is not None}
        ranges = {k for k in ("internal_port_range", "external_port_range") if changes.get(k) is not None}
        if singles and ranges:
            raise bad("port ranges (internal_port_range, external_port_range) and single ports (internal_port, "
                      "external_port) cannot be given together")
        new = {**(orig or {}), **{k: v for k, v in changes.items() if v is not None}}
        for side in ("internal", "external"):
            given = _ports(changes, side)
            if given is None and orig is None:
                raise BadRequest(f"Failed to parse request. Required attribute '{side}_port' or "
                                 f"'{side}_port_range' not specified")
            new[side] = given if given is not None else _range(orig[f"{side}_port_range"]) if orig else None
        if "protocol" not in new:
            raise BadRequest("Failed to parse request. Required attribute 'protocol' not specified")
        internal, external = new["internal"], new["external"]
        if internal[1] != internal[0] and internal[1] - internal[0] != external[1] - external[0]:
            raise bad("Invalid ranges of internal and/or external ports. The relation between internal and "
                      "external ports must be N-N or 1-N")
        return new

    def _internal(self, conn: Connection, fip: dict[str, Any], new: dict[str, Any], port: dict[str, Any] | None,
                  router_id: str | None) -> dict[str, Any]:
        """The internal port and fixed IP (the port's first IPv4 address unless one is named), and the router
        that reaches it from the floating IP's network; new["internal_ip_address"] is filled in."""
        port_id = new["internal_port_id"]
        if port is None:
            raise NotFound(f"Port {port_id} could not be found.", type="PortNotFound")
        v4 = [f for f in port["fixed_ips"] if netaddr.IPAddress(f["ip_address"]).version == 4]
        if not v4:
            raise bad(f"Requested internal port {port_id} must allocate an IPv4 address at least")
        wanted = new.get("internal_ip_address")
        chosen = v4[0] if not wanted else next((f for f in v4 if f["ip_address"] == wanted), None)
        if chosen is None:
            raise bad(f"Requested internal IP address {wanted} is not suitable for internal neutron port {port_id}, "
                      f"as its fixed_ips are {v4}")
        new["internal_ip_address"] = chosen["ip_address"]
        bound = conn.execute(select(_f.id, _f.floating_ip_address).where(_f.fixed_port_id == port_id)).first()
        if bound is not None:
            raise Conflict(f"Cannot create port forwarding to floating IP {fip['floating_ip_address']} ({fip['id']}) "
                           f"with port {port_id} using fixed IP {chosen['ip_address']}, as that port already has a "
                           f"binding floating IP.", type="PortHasBindingFloatingIP")
        found = self.find_router(conn, fip["floating_network_id"], chosen["subnet_id"])
        if found is None:
            raise bad(f"External network {fip['floating_network_id']} is not reachable from subnet "
                      f"{chosen['subnet_id']}. Cannot set Port forwarding for port {port_id} with Floating IP "
                      f"{fip['id']}")
        if router_id and router_id != found:
            raise bad(f"The Floating IP {fip['id']} had been set on router {router_id}, the internal Neutron port "
                      f"{port_id} can not reach it")
        return {**port, "router_id": found}

    @staticmethod
    def _collisions(conn: Connection, fip_id: str, new: dict[str, Any], skip: str | None) -> None:
        """No overlap with the external ports of the floating IP's other forwardings of the protocol, nor with
        the internal ports of other forwardings to the same fixed IP and protocol (Neutron's messages)."""
        cond = _c.protocol == new["protocol"]
        if skip is not None:
            cond = and_(cond, _c.id != skip)
        same_ip = and_(_c.internal_port_id == new["internal_port_id"],
                       _c.internal_ip_address == new["internal_ip_address"])
        for r in conn.execute(select(m.port_forwardings).where(cond, (_c.floatingip_id == fip_id) | same_ip)):
            for side, own in (("external", r.floatingip_id == fip_id),
                              ("internal", (r.internal_port_id, r.internal_ip_address)
                               == (new["internal_port_id"], new["internal_ip_address"]))):
                theirs = (getattr(r, f"{side}_port_start"), getattr(r, f"{side}_port_end"))
                if own and max(theirs[0], new[side][0]) <= min(theirs[1], new[side][1]):
                    raise bad(f"There is a port collision with the {side}_port_range. The following ranges "
                              f"collides: {_text(theirs)} and {_text(new[side])}")

    @staticmethod
    def _columns(new: dict[str, Any]) -> dict[str, Any]:
        internal = new.get("internal") or _range(new["internal_port_range"])
        external = new.get("external") or _range(new["external_port_range"])
        return {"internal_port_id": new["internal_port_id"], "internal_ip_address": new["internal_ip_address"],
                "protocol": new["protocol"], "description": new.get("description") or "",
                "internal_port_start": internal[0], "internal_port_end": internal[1],
                "external_port_start": external[0], "external_port_end": external[1]}

    @staticmethod
    def _duplicate(fip_id: str, new: dict[str, Any]) -> BadRequest:
        values = {"floatingip_id": fip_id, "external_port": _text(new["external"]),
                  "protocol": new["protocol"]}
        return bad(f"A duplicate port forwarding entry with same attributes already exists, conflicting values "
                   f"are {values}")
