"""Router conntrack helpers (l3-conntrack-helper): which kernel helper follows which protocol/port through a
router. The allowed helpers and their protocols come from configuration, as Neutron's
`[DEFAULT] l3_conntrack_helpers`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, select, update

from fermion.db import models as m
from fermion.db.writes import insert_if_absent, new_id
from fermion.errors import BadRequest, NotFound
from fermion.resources.conntrack_helper import CONNTRACK_HELPER
from fermion.rpc.contracts import Hint
from fermion.services import common
from fermion.services.query import Collection, ListQuery, chunks

# Neutron's default l3_conntrack_helpers (a dict there, so one protocol per helper)
DEFAULT_HELPERS = ("amanda:tcp", "ftp:tcp", "h323:tcp", "irc:tcp", "netbios-ns:udp", "pptp:tcp", "sane:tcp",
                   "sip:tcp", "snmp:udp", "tftp:udp")
_c = m.router_conntrack_helpers.c


def parse_helpers(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """"helper:protocol" entries -> helper -> its allowed protocols (a helper may be listed twice)."""
    out: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        helper, sep, proto = entry.partition(":")
        if not sep or not helper or proto not in ("tcp", "udp"):
            raise ValueError(f"conntrack helper {entry!r} is not 'helper:tcp' or 'helper:udp'")
        if proto not in out[helper]:
            out[helper].append(proto)
    return {k: tuple(v) for k, v in out.items()}


class HelperCollection(Collection):
    """Plain rows: the table has no timestamps, revision or tags."""

    def __init__(self) -> None:
        super().__init__(CONNTRACK_HELPER, m.router_conntrack_helpers)
        self.columns["router_id"] = m.router_conntrack_helpers.c.router_id

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        return [{"id": r.id, "project_id": r.project_id, "tenant_id": r.project_id, "router_id": r.router_id,
                 "protocol": r.protocol, "port": r.port, "helper": r.helper} for r in rows]


def exposed(conn: Connection, router_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """expose-l3-conntrack-helper: each router's helpers as {protocol, port, helper}."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not router_ids:
        return out
    for part in chunks(router_ids):
        for r in conn.execute(select(_c.router_id, _c.protocol, _c.port, _c.helper)
                              .where(_c.router_id.in_(part)).order_by(_c.helper, _c.protocol, _c.port)):
            out[r.router_id].append({"protocol": r.protocol, "port": r.port, "helper": r.helper})
    return out


class ConntrackHelperService:
    def __init__(self, allowed: Iterable[str] = DEFAULT_HELPERS) -> None:
        self.collection = HelperCollection()
        self.constraints = parse_helpers(allowed)

    def _check(self, item: dict[str, Any]) -> None:
        helper, proto = item["helper"], item["protocol"]
        allowed = self.constraints.get(helper)
        if allowed is None:
            raise BadRequest(f"Conntrack Helper {helper} is not allowed.", type="ConntrackHelperNotAllowed")
        if proto not in allowed:
            raise BadRequest(f"Conntrack Helper {helper} does not support: {proto}. Supported protocols are: "
                             f"{', '.join(allowed)}", type="InvalidProtocolForHelper")

    @staticmethod
    def _duplicate(conn: Connection, router_id: str, item: dict[str, Any], skip: str | None = None) -> None:
        cond = and_(_c.router_id == router_id, _c.protocol == item["protocol"], _c.port == item["port"],
                    _c.helper == item["helper"])
        if skip is not None:
            cond = and_(cond, _c.id != skip)
        if conn.execute(select(_c.id).where(cond)).first() is not None:
            _raise_duplicate(item)

    def list(self, conn: Connection, router_id: str, q: ListQuery) -> tuple[list[dict[str, Any]], bool]:
        q.filters["router_id"] = [router_id]
        return self.collection.page(conn, q, None)

    def get(self, conn: Connection, router_id: str, ident: str, for_update: bool = False) -> dict[str, Any]:
        item = self.collection.get(conn, ident, _c.router_id == router_id, for_update=for_update)
        if item is None:
            raise NotFound(f"Conntrack Helper {ident} could not be found.", type="ConntrackHelperNotFound")
        return item

    def create(self, conn: Connection, router: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        self._check(item)
        row = {"id": new_id(), "project_id": item["project_id"], "router_id": router["id"],
               "protocol": item["protocol"], "port": item["port"], "helper": item["helper"]}
        if not insert_if_absent(conn, m.router_conntrack_helpers, row):
            _raise_duplicate(item)
        self._router_changed(conn, router["id"])
        return {**row, "tenant_id": row["project_id"]}

    def update(self, conn: Connection, router: dict[str, Any], orig: dict[str, Any],
               changes: dict[str, Any]) -> dict[str, Any]:
        new = {**orig, **changes}
        self._check(new)
        if changes:
            self._duplicate(conn, router["id"], new, skip=orig["id"])
            conn.execute(update(m.router_conntrack_helpers).where(_c.id == orig["id"])
                         .values(**{k: new[k] for k in ("protocol", "port", "helper")}))
            self._router_changed(conn, router["id"])
        return new

    def delete(self, conn: Connection, router: dict[str, Any], orig: dict[str, Any]) -> None:
        conn.execute(delete(m.router_conntrack_helpers).where(_c.id == orig["id"]))
        self._router_changed(conn, router["id"])

    @staticmethod
    def _router_changed(conn: Connection, router_id: str) -> None:
        """The router's view changed: a new revision and a hint to its L3 agent."""
        common.bump(conn, m.routers, router_id, {})
        rev = conn.execute(select(m.routers.c.revision_number).where(m.routers.c.id == router_id)).scalar() or 0
        a, r = m.agents.c, m.router_l3_agents.c
        host = conn.execute(select(a.host).join(m.router_l3_agents, r.l3_agent_id == a.id)
                            .where(r.router_id == router_id)).scalar()
        common.emit(conn, Hint("router", router_id, rev, None, host))


def _raise_duplicate(item: dict[str, Any]) -> None:
    values = {"protocol": item["protocol"], "port": item["port"], "helper": item["helper"]}
    raise BadRequest("Bad conntrack_helper request: A duplicate conntrack helper entry with same attributes "
                     f"already exists, conflicting values are {values}.", type="BadRequest")
