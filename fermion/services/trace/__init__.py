"""Trace: why can (or can't) A reach B on a protocol and port. The endpoints are resolved in the caller's view
(resolve), the model around them read (load.py), and the path walked as the data plane decides it (walk.py)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select

from fermion.db import models as m
from fermion.errors import BadRequest, NotFound
from fermion.rpc.transport import Transport
from fermion.services.agents import AgentService
from fermion.services.trace import probe as probing
from fermion.services.trace.load import load
from fermion.services.trace.model import EXTERNAL, Endpoint, Model, Query, Trace
from fermion.services.trace.walk import trace

__all__ = ["TraceService", "Endpoint", "Query", "Trace"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
Visible = Callable[[str], bool]  # may the caller trace a port of this project?


class TraceService:
    def __init__(self, agents: AgentService) -> None:
        self.agents = agents
        self.transport: Transport | None = None  # for probes; set where the server is wired (runtime/)
        self.probe_timeout = 5.0  # seconds an agent has to answer a probe

    def run(self, conn: Connection, source: str, destination: str, protocol: str, port: int | None,
            visible: Visible, project: str | None) -> dict[str, Any]:
        """The trace as the API shows it. project: narrows the look-ups by address or name to a project's
        ports (None: every project's, for admins); visible has the last word."""
        return to_api(self.walk(conn, source, destination, protocol, port, visible, project)[1])

    def probe(self, model: Model, result: Trace) -> dict[str, Any]:
        """The trace as the API shows it, each hop with what its hosts' agents find in their kernels (outside
        any database transaction: the agents pull their views from the server meanwhile)."""
        out = to_api(result)
        out["probe"] = probing.probe(self.transport, model, result, out["hops"], self.probe_timeout)
        return out

    def walk(self, conn: Connection, source: str, destination: str, protocol: str, port: int | None,
             visible: Visible, project: str | None) -> tuple[Model, Trace]:
        """The model read and the path walked (see run)."""
        src = resolve(conn, source, visible, project, "source")
        dst = resolve(conn, destination, visible, project, "destination")
        if src.external and dst.external:
            raise BadRequest("Invalid input for operation: source and destination cannot both be external.",
                             type="InvalidInput")
        if src.port_id is not None and src.port_id == dst.port_id:
            raise BadRequest("Invalid input for operation: source and destination are the same port.",
                             type="InvalidInput")
        if src.address and dst.address and ipaddress.ip_address(src.address).version != \
                ipaddress.ip_address(dst.address).version:
            raise BadRequest("Invalid input for operation: source and destination addresses are of different IP "
                             "versions.", type="InvalidInput")
        model = load(conn, self.agents, [p for p in (src.port_id, dst.port_id) if p])
        return model, trace(model, Query(src, dst, protocol, port))


def to_api(result: Trace) -> dict[str, Any]:
    q = result.query
    failed = result.failed

    def endpoint(e: Endpoint, address: str | None) -> dict[str, Any]:
        return {"given": e.given, "port_id": e.port_id, "address": address, "external": e.external}

    return {"source": endpoint(q.source, result.source_address),
            "destination": endpoint(q.destination, result.destination_address),
            "protocol": q.protocol, "port": q.port, "ip_version": result.ip_version,
            "verdict": result.verdict, "reachable": failed is None,
            "failed_hop": None if failed is None else failed + 1, "reason": result.summary,
            "hops": [h.to_dict() for h in result.hops]}  # with a probe: each hop's "probe", and one overall


def resolve(conn: Connection, text: str, visible: Visible, project: str | None, what: str) -> Endpoint:
    """A port id, an address (a floating IP: its port; else a fixed IP, else an allowed address pair, of a port
    the caller may trace), a lab instance's name (its port's device_id or name), or `external`."""
    given = text.strip()
    if given.lower() == EXTERNAL:
        return Endpoint(given=given)
    p = m.ports.c
    if _UUID.fullmatch(given):
        row = conn.execute(select(p.id, p.project_id, p.device_owner).where(p.id == given)).first()
        if row is None or not visible(row.project_id):
            raise NotFound(f"Port {given} could not be found.", type="PortNotFound")
        _instance(row.device_owner, given, what)
        return Endpoint(given=given, port_id=row.id)
    try:
        address = str(ipaddress.ip_address(given))
    except ValueError:
        address = None
    if address is not None:
        fip = _floating(conn, address, visible, project, what)
        if fip is not None:  # a floating IP stands for the port it is associated with
            return Endpoint(given=given, port_id=fip[0], address=fip[1])
        return Endpoint(given=given, port_id=_by_address(conn, address, visible, project, what), address=address)
    stmt = select(p.id, p.project_id, p.device_owner).where((p.device_id == given) | (p.name == given))
    if project is not None:
        stmt = stmt.where(p.project_id == project)
    rows = [r for r in conn.execute(stmt) if visible(r.project_id) and not r.device_owner.startswith("network:")]
    return Endpoint(given=given, port_id=_one(rows, f"No port, address or instance named {given!r} for the {what}.",
                                              f"{given!r} names", what))


def _floating(conn: Connection, address: str, visible: Visible, project: str | None, what: str
              ) -> tuple[str, str] | None:
    """(port, fixed address) behind a floating IP the caller may trace; None when the address is no floating IP."""
    f = m.floatingips.c
    stmt = select(f.id, f.project_id, f.fixed_port_id, f.fixed_ip_address).where(f.floating_ip_address == address)
    if project is not None:
        stmt = stmt.where(f.project_id == project)
    rows = [r for r in conn.execute(stmt) if visible(r.project_id)]
    if not rows:
        return None
    if rows[0].fixed_port_id is None:
        raise NotFound(f"Floating IP {address} ({rows[0].id}) is associated with no port (the {what}).",
                       type="PortNotFound")
    return str(rows[0].fixed_port_id), str(rows[0].fixed_ip_address)


def _instance(device_owner: str, port_id: str, what: str) -> None:
    if device_owner.startswith("network:"):
        raise BadRequest(f"Invalid input for operation: port {port_id} ({device_owner}) belongs to the network "
                         f"itself: trace between instances' ports (the {what}).", type="InvalidInput")


def _by_address(conn: Connection, address: str, visible: Visible, project: str | None, what: str) -> str:
    a, p = m.ip_allocations.c, m.ports.c
    stmt = select(p.id, p.project_id, p.device_owner).join(m.ports, p.id == a.port_id).where(a.ip_address == address)
    if project is not None:
        stmt = stmt.where(p.project_id == project)
    rows = _instances([r for r in conn.execute(stmt) if visible(r.project_id)], what)
    if not rows:  # an allowed address pair (a VIP): a look at the ports that have some
        paired = select(p.id, p.project_id, p.device_owner, p.allowed_address_pairs)
        if project is not None:
            paired = paired.where(p.project_id == project)
        ip = ipaddress.ip_address(address)
        rows = [r for r in conn.execute(paired) if r.allowed_address_pairs and visible(r.project_id) and any(
            ip.version == ipaddress.ip_network(x["ip_address"], strict=False).version
            and ip in ipaddress.ip_network(x["ip_address"], strict=False) for x in r.allowed_address_pairs)]
        rows = _instances(rows, what)
    return _one(rows, f"No port has the address {address} (the {what}).", f"{address} is on", what)


def _one(rows: list[Any], missing: str, many: str, what: str) -> str:
    """The one port found: 404 when none, 400 when several (the caller names one by its id then)."""
    if not rows:
        raise NotFound(missing, type="PortNotFound")
    if len(rows) > 1:
        raise BadRequest(f"Invalid input for operation: {many} {len(rows)} ports "
                         f"({', '.join(sorted(r.id for r in rows))}): give a port id as the {what}.",
                         type="InvalidInput")
    return str(rows[0].id)


def _instances(rows: list[Any], what: str) -> list[Any]:
    """The instances' ports among those found; only ports the network owns: refused."""
    mine = [r for r in rows if not r.device_owner.startswith("network:")]
    if rows and not mine:
        _instance(rows[0].device_owner, rows[0].id, what)
    return mine
