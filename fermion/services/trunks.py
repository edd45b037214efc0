"""Trunks (trunk, trunk-details): a parent port and VLAN subports, checked as Neutron's trunk plugin checks them.

The ports named in a create or an add are locked first (in id order), so a port cannot become the parent of one
trunk and a subport of another at once; the unique keys of the tables settle the rest (a segmentation twice on a
trunk, a port in two trunks). Subports are owned by their trunk (device_owner trunk:subport, device_id the trunk)
and bound to the parent's host, in the same transaction; realization on hosts is not done yet (docs/trunks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, InvalidInput, NotFound
from fermion.ml2.mech_drivers.openvswitch import AGENT_TYPE as OVS_AGENT
from fermion.resources.trunk import INHERIT, TRUNK, subports_problem
from fermion.rpc.contracts import Hint
from fermion.services import common, trunk_ports
from fermion.services.agents import AgentService
from fermion.services.ports import PortService
from fermion.services.query import Collection

_t = m.trunks.c
_s = m.subports.c
_p = m.ports.c
_n = m.networks.c
# the segmentation types trunks carry, with their id check (Neutron's OVS driver: VLAN, 1-4094)
SEGMENTATION_TYPES = {"vlan": lambda seg: 1 <= seg <= 4094}
# a bound port may be a trunk's parent where a trunk driver serves its host: vif type and agent type
TRUNK_DRIVERS = (("ovs", OVS_AGENT),)


class TrunkCollection(Collection):
    def __init__(self) -> None:
        super().__init__(TRUNK, m.trunks)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        subs = trunk_ports.load_subports(conn, [i["id"] for i in items]) if items else {}
        for item in items:
            item["sub_ports"] = subs.get(item["id"], [])


def _in_use(port_id: str) -> Conflict:
    return Conflict(f"Port {port_id} is in use by another trunk.", type="TrunkPortInUse")


def _parent_in_use(port_id: str) -> Conflict:
    return Conflict(f"Port {port_id} is currently in use and is not eligible for use as a parent port.",
                    type="ParentPortInUse")


def _disabled(trunk_id: str) -> Conflict:
    return Conflict(f"Trunk {trunk_id} is currently disabled.", type="TrunkDisabled")


def _port_not_found(port_id: str) -> NotFound:
    return NotFound(f"Port {port_id} could not be found.", type="PortNotFound")


class TrunkService:
    def __init__(self, ports: PortService, agents: AgentService) -> None:
        self.collection = TrunkCollection()
        self.ports = ports
        self.agents = agents

    # ------------------------------------------------------------------ reads the checks need
    def _ports(self, conn: Connection, ids: Sequence[str], ctx: Context | None) -> dict[str, dict[str, Any]]:
        """The ports the caller may see (its own, those on its networks; all for an admin) with their
        network's MTU and owner."""
        if not ids:
            return {}
        rows = conn.execute(select(_p.id, _p.project_id, _p.network_id, _p.device_id, _p.status,
                                   _p.binding_host_id, _p.binding_vif_type, _n.mtu,
                                   _n.project_id.label("network_project"))
                            .join(m.networks, _n.id == _p.network_id).where(_p.id.in_(list(ids)))).all()
        out = {}
        for r in rows:
            port = dict(r._mapping)
            if ctx is None or ctx.is_admin or ctx.project_id in (port["project_id"], port["network_project"]):
                out[port["id"]] = port
        return out

    @staticmethod
    def _lock(conn: Connection, ids: Sequence[str]) -> None:
        """Lock the ports a trunk is about to use (no-op on SQLite, whose writes are serial)."""
        if conn.dialect.name != "sqlite" and ids:
            conn.execute(select(_p.id).where(_p.id.in_(sorted(set(ids)))).order_by(_p.id).with_for_update())

    @staticmethod
    def _membership(conn: Connection, port_id: str) -> None:
        """A port already in a trunk, as a subport or as a parent, is neither (Neutron's TrunkPortValidator)."""
        if conn.execute(select(_s.port_id).where(_s.port_id == port_id)).first() is not None:
            raise _in_use(port_id)
        if conn.execute(select(_t.id).where(_t.port_id == port_id)).first() is not None:
            raise _parent_in_use(port_id)

    def _can_trunk(self, conn: Connection, port: dict[str, Any]) -> bool:
        """An unbound port can always be trunked (and untrunked); a bound one where a trunk driver serves its
        host (its vif type, and its agent on the host)."""
        host = port["binding_host_id"]
        if not host:
            return True
        agents = {a.agent_type for a in self.agents.on_host(conn, host)}
        return any(port["binding_vif_type"] == vif and agent in agents for vif, agent in TRUNK_DRIVERS)

    def _check_parent(self, conn: Connection, port_id: str, ctx: Context | None) -> dict[str, Any]:
        self._membership(conn, port_id)
        port = self._ports(conn, [port_id], ctx).get(port_id)
        if port is None:
            raise _port_not_found(port_id)
        if not self._can_trunk(conn, port):
            raise _parent_in_use(port_id)
        return port

    def _check_subports(self, conn: Connection, wanted: list[dict[str, Any]], parent_id: str,
                        parent: dict[str, Any] | None, ctx: Context | None) -> list[dict[str, Any]]:
        """The subports as stored (inherit resolved), in Neutron's order of checks."""
        found = self._ports(conn, [s["port_id"] for s in wanted], ctx)
        segments = self._segments(conn, {p["network_id"] for p in found.values()})
        parent_mtu = parent["mtu"] if parent is not None else None
        out = []
        for sub in wanted:
            port_id = sub["port_id"]
            port = found.get(port_id)
            if sub.get("segmentation_type") == INHERIT and port is not None:
                kind, seg = segments.get(port["network_id"], (None, None))
                sub = {"port_id": port_id, "segmentation_type": kind, "segmentation_id": seg}
            if port_id == parent_id:
                raise _parent_in_use(port_id)
            if parent_mtu and port is not None and port["mtu"] > parent_mtu:
                raise Conflict(f"MTU {port['mtu']} of subport {port_id} cannot be greater than MTU {parent_mtu} "
                               f"of trunk {parent_id}.", type="SubPortMtuGreaterThanTrunkPortMtu")
            if "segmentation_type" not in sub or "segmentation_id" not in sub:
                raise InvalidInput(f"Invalid subport details '{sub}': missing segmentation information. Must "
                                   "specify both segmentation_id and segmentation_type.")
            kind, seg = sub["segmentation_type"], _to_int(sub["segmentation_id"])
            if not isinstance(kind, str) or kind not in SEGMENTATION_TYPES:
                raise InvalidInput(f"Unknown segmentation_type '{kind}'.")
            if not SEGMENTATION_TYPES[kind](seg):
                raise InvalidInput(f"Segmentation ID '{seg}' is not in range.")
            self._membership(conn, port_id)
            if port is None:
                raise _port_not_found(port_id)
            if port["device_id"]:
                raise Conflict(f"Unable to complete operation on port {port_id} for network {port['network_id']}. "
                               f"Port already has an attached device {port['device_id']}.", type="PortInUse")
            out.append({"port_id": port_id, "segmentation_type": kind, "segmentation_id": seg})
        return out

    @staticmethod
    def _segments(conn: Connection, network_ids: set[str]) -> dict[str, tuple[str | None, int | None]]:
        """A network's provider segmentation (what `inherit` takes); none for a multi-segment network."""
        seg = m.network_segments.c
        found: dict[str, list[tuple[str | None, int | None]]] = {}
        if network_ids:
            for net, kind, ident in conn.execute(select(seg.network_id, seg.network_type, seg.segmentation_id)
                                                 .where(seg.network_id.in_(sorted(network_ids)))):
                found.setdefault(net, []).append((kind, ident))
        return {net: v[0] if len(v) == 1 else (None, None) for net, v in found.items()}

    def _insert_subports(self, conn: Connection, trunk_id: str, subs: list[dict[str, Any]]) -> None:
        for sub in subs:
            if not insert_if_absent(conn, m.subports, {**sub, "trunk_id": trunk_id}):
                # the segmentation is taken on this trunk, or the port joined a trunk meanwhile
                raise Conflict(f"segmentation_type {sub['segmentation_type']} and segmentation_id "
                               f"{sub['segmentation_id']} already in use on trunk {trunk_id}.",
                               type="DuplicateSubPort")

    # ------------------------------------------------------------------ the API's verbs
    def create(self, conn: Connection, items: list[dict[str, Any]], ctx: Context | None = None
               ) -> list[dict[str, Any]]:
        out = []
        for item in items:
            self._lock(conn, [item["port_id"], *(s["port_id"] for s in item["sub_ports"])])
            parent = self._check_parent(conn, item["port_id"], ctx)
            subs = self._check_subports(conn, item["sub_ports"], item["port_id"], parent, ctx)
            row = {**common.standard_row(item), "admin_state_up": item["admin_state_up"], "status": "DOWN",
                   "port_id": item["port_id"]}
            if not insert_if_absent(conn, m.trunks, row):  # the port became a parent meanwhile
                raise _parent_in_use(item["port_id"])
            self._insert_subports(conn, row["id"], subs)
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            trunk_ports.follow_parent(conn, self.ports, row["id"], parent["binding_host_id"],
                                      [s["port_id"] for s in subs])
            _, status = trunk_ports.statuses(conn, [row["id"]])[row["id"]]
            if status != row["status"]:  # a new trunk's first status is no change: revision 1
                conn.execute(update(m.trunks).where(_t.id == row["id"]).values(status=status))
            _hint_parent(conn, item["port_id"])
            out.append(self._row(conn, row["id"]))
        return out

    def _row(self, conn: Connection, trunk_id: str) -> dict[str, Any]:
        """The trunk's row as stored now, with its tags and subports (what collection.fresh shows)."""
        row = dict(conn.execute(select(m.trunks).where(_t.id == trunk_id)).one()._mapping)
        row["tags"] = sorted(conn.execute(select(m.tags.c.tag).where(m.tags.c.resource_id == trunk_id)).scalars())
        return row

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        common.bump(conn, m.trunks, orig["id"], changes, expect_revision)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        tid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.trunks, tid, {}, expect_revision)
        if not orig["admin_state_up"]:
            raise _disabled(tid)
        parent = self._ports(conn, [orig["port_id"]], None).get(orig["port_id"])
        if parent is not None and not self._can_trunk(conn, parent):
            raise Conflict(f"Trunk {tid} is currently in use.", type="TrunkInUse")
        ids = [s["port_id"] for s in orig["sub_ports"]]
        conn.execute(delete(m.subports).where(_s.trunk_id == tid))
        trunk_ports.release(conn, self.ports, ids)
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == tid))
        conn.execute(delete(m.trunks).where(_t.id == tid))
        _hint_parent(conn, orig["port_id"])

    def add_subports(self, conn: Connection, orig: dict[str, Any], body: Any, ctx: Context | None = None
                     ) -> dict[str, Any]:
        tid = orig["id"]
        wanted = _requested(body)
        self._lock(conn, [orig["port_id"], *(s["port_id"] for s in wanted)])
        parent = self._ports(conn, [orig["port_id"]], ctx).get(orig["port_id"])
        subs = self._check_subports(conn, wanted, orig["port_id"], parent, ctx)
        if not orig["admin_state_up"]:
            raise _disabled(tid)
        if orig["status"] == trunk_ports.ERROR:
            raise Conflict(f"Trunk {tid} is in error state. Attempt to resolve the error condition before "
                           "proceeding.", type="TrunkInErrorState")
        self._insert_subports(conn, tid, subs)
        host = self._ports(conn, [orig["port_id"]], None)[orig["port_id"]]["binding_host_id"]
        trunk_ports.follow_parent(conn, self.ports, tid, host, [s["port_id"] for s in subs])
        return self._changed(conn, tid)

    def remove_subports(self, conn: Connection, orig: dict[str, Any], body: Any, ctx: Context | None = None
                        ) -> dict[str, Any]:
        tid = orig["id"]
        if not orig["admin_state_up"]:
            raise _disabled(tid)
        wanted = _requested(body)
        current = {s["port_id"] for s in orig["sub_ports"]}
        for sub in wanted:
            if sub["port_id"] not in current:
                raise NotFound(f"SubPort on trunk {tid} with parent port {sub['port_id']} could not be found.",
                               type="SubPortNotFound")
        ids = [s["port_id"] for s in wanted]
        if ids:
            conn.execute(delete(m.subports).where(_s.trunk_id == tid, _s.port_id.in_(ids)))
        trunk_ports.release(conn, self.ports, ids)
        return self._changed(conn, tid)

    def _changed(self, conn: Connection, tid: str) -> dict[str, Any]:
        """Subports came or went: a new revision, the status as the ports now make it; the trunk as shown."""
        _, status = trunk_ports.statuses(conn, [tid])[tid]
        common.bump(conn, m.trunks, tid, {"status": status})
        item = self.collection.get(conn, tid)
        assert item is not None
        return item


def _hint_parent(conn: Connection, port_id: str) -> None:
    """The parent's host builds (or takes down) the trunk bridge: its agent hears of the parent."""
    p = m.ports.c
    row = conn.execute(select(p.network_id, p.binding_host_id, p.revision_number).where(p.id == port_id)).first()
    if row is not None and row.binding_host_id:
        common.emit(conn, Hint("port", port_id, row.revision_number, row.network_id, row.binding_host_id))


def _requested(body: Any) -> list[dict[str, Any]]:
    """The sub_ports of an add/remove_subports body, checked as Neutron checks them there."""
    if not isinstance(body, dict) or "sub_ports" not in body:
        raise BadRequest("Unable to find 'sub_ports' in request body")
    problem = subports_problem(body["sub_ports"])
    if problem is not None:
        raise InvalidInput(f"{problem}.")
    return list(body["sub_ports"])


def _to_int(value: Any) -> int:
    """Neutron's convert_to_int, with its message for the subport's id."""
    try:
        return int(value)
    except (ValueError, TypeError):
        raise InvalidInput(f"Invalid subport details: segmentation_id '{value}' is not an integer.") from None
