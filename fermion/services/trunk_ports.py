"""What trunks mean for ports: a parent's trunk_details, the ports a trunk keeps from being deleted, subports
that follow their parent's host, and the trunk status derived from the ports.

Status (docs/trunks.md): ERROR when the parent's binding failed; DOWN while the parent
port is not ACTIVE or a subport is unbound; BUILD while the parent is ACTIVE and its host's agent has not yet
reported every subport wired (OVS hosts: the trunk bridge's patch ports); then DEGRADED when some subports'
bindings failed (the others carry traffic), else ACTIVE. It is recomputed whenever one of its ports changes
status or binding, and stored (so lists filter and sort on it); a change bumps the trunk's revision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, literal, select, union_all

from fermion.db import models as m
from fermion.errors import Conflict
from fermion.ml2.binding import FAILED, UNBOUND
from fermion.resources.trunk import SUBPORT_OWNER
from fermion.services import common
from fermion.services.query import chunks

if TYPE_CHECKING:
    from fermion.services.ports import PortService

_t = m.trunks.c
_s = m.subports.c
_p = m.ports.c
ACTIVE, BUILD, DEGRADED, DOWN, ERROR = "ACTIVE", "BUILD", "DEGRADED", "DOWN", "ERROR"


def details(conn: Connection, port_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """trunk_details of those ports that are trunk parents: {"trunk_id", "sub_ports": [{port_id,
    segmentation_type, segmentation_id, mac_address}]}."""
    parents: dict[str, str] = {}
    if len(port_ids) > 500:  # large pages: one scan of the (few) trunks beats statements of 500 ids each
        wanted = set(port_ids)
        parents = {t: p for t, p in conn.execute(select(_t.id, _t.port_id)) if p in wanted}
    else:
        for part in chunks(list(port_ids)):
            for trunk_id, port_id in conn.execute(select(_t.id, _t.port_id).where(_t.port_id.in_(part))):
                parents[trunk_id] = port_id
    return details_of(conn, parents)


def details_of(conn: Connection, parents: dict[str, str]) -> dict[str, dict[str, Any]]:
    """trunk_details by parent port id, given {trunk id: parent port id}."""
    if not parents:
        return {}
    subs = load_subports(conn, list(parents), with_mac=True)
    return {port_id: {"trunk_id": trunk_id, "sub_ports": subs.get(trunk_id, [])}
            for trunk_id, port_id in parents.items()}


def load_subports(conn: Connection, trunk_ids: Sequence[str], with_mac: bool = False
                  ) -> dict[str, list[dict[str, Any]]]:
    """Each trunk's subports, by segmentation type and id."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    cols = [_s.trunk_id, _s.port_id, _s.segmentation_type, _s.segmentation_id]
    for part in chunks(list(trunk_ids)):
        stmt = (select(*cols, _p.mac_address).join(m.ports, _p.id == _s.port_id) if with_mac else select(*cols))
        for row in conn.execute(stmt.where(_s.trunk_id.in_(part))):
            sub = {"segmentation_id": row.segmentation_id, "segmentation_type": row.segmentation_type,
                   "port_id": row.port_id}
            if with_mac:
                sub["mac_address"] = row.mac_address
            out[row.trunk_id].append(sub)
    for subs in out.values():
        subs.sort(key=lambda s: (s["segmentation_type"], s["segmentation_id"], s["port_id"]))
    return out


def refuse_delete(conn: Connection, port_id: str) -> None:
    """A port that is a trunk's parent or subport is not deleted (Neutron's PortInUseAs...)."""
    for trunk_id, is_parent in trunks_of(conn, [port_id]).items():
        if is_parent:
            raise Conflict(f"Port {port_id} is currently a parent port for trunk {trunk_id}.",
                           type="PortInUseAsTrunkParent")
        raise Conflict(f"Port {port_id} is currently a subport for trunk {trunk_id}.", type="PortInUseAsSubPort")


def trunks_of(conn: Connection, port_ids: Iterable[str]) -> dict[str, bool]:
    """The trunks those ports belong to, each with whether one of the ports is its parent."""
    out: dict[str, bool] = {}
    for part in chunks(list(port_ids)):
        stmt = union_all(select(_t.id, literal(1)).where(_t.port_id.in_(part)),
                         select(_s.trunk_id, literal(0)).where(_s.port_id.in_(part)))
        for trunk_id, is_parent in conn.execute(stmt):
            out[trunk_id] = out.get(trunk_id, False) or bool(is_parent)
    return out


def port_changed(conn: Connection, ports: PortService, port_id: str, host: str) -> None:
    """A port's status or binding changed: a parent's subports follow it to its host, and the status of the
    trunk it belongs to is recomputed."""
    for trunk_id, is_parent in trunks_of(conn, [port_id]).items():
        if is_parent:
            follow_parent(conn, ports, trunk_id, host)
        refresh(conn, [trunk_id])


def follow_parent(conn: Connection, ports: PortService, trunk_id: str, host: str,
                  port_ids: Sequence[str] | None = None) -> None:
    """Bind the trunk's subports (or those given) to the parent's host, owned by the trunk (as Neutron)."""
    wanted = {"device_id": trunk_id, "device_owner": SUBPORT_OWNER, "binding:host_id": host}
    ids = port_ids if port_ids is not None else list(
        conn.execute(select(_s.port_id).where(_s.trunk_id == trunk_id)).scalars())
    set_ports(conn, ports, ids, wanted)


def release(conn: Connection, ports: PortService, port_ids: Sequence[str]) -> None:
    """Subports leaving their trunk: no device, no owner, no host (as Neutron)."""
    set_ports(conn, ports, port_ids, {"device_id": "", "device_owner": "", "binding:host_id": ""})


def set_ports(conn: Connection, ports: PortService, port_ids: Sequence[str], wanted: dict[str, Any]) -> None:
    for pid in sorted(port_ids):
        orig = ports.collection.get(conn, pid)
        if orig is None:
            continue
        changes = {k: val for k, val in wanted.items() if orig[k] != val}
        if changes:
            ports.update(conn, orig, changes, None)


def status_of(parent: tuple[str, str], subports: Iterable[tuple[str, str]]) -> str:
    """From the parent port's and each subport's (binding vif type, status)."""
    parent_vif, parent_status = parent
    subs = list(subports)
    failed = [vif == FAILED for vif, _ in subs]
    if parent_vif == FAILED:
        return ERROR
    if parent_status != ACTIVE or any(vif == UNBOUND for vif, _ in subs):
        return DOWN
    # the parent is wired; its subports are once the host's agent reports them (their trunk bridge patches)
    if not all(status == ACTIVE for (vif, status) in subs if vif != FAILED):
        return BUILD
    return DEGRADED if any(failed) else ACTIVE


def statuses(conn: Connection, trunk_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(stored, as its ports make it) status of each trunk."""
    out: dict[str, tuple[str, str]] = {}
    for part in chunks(sorted(set(trunk_ids))):
        rows = conn.execute(select(_t.id, _t.status, _p.binding_vif_type, _p.status)
                            .join(m.ports, _p.id == _t.port_id).where(_t.id.in_(part))).all()
        vifs: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for trunk_id, vif, status in conn.execute(select(_s.trunk_id, _p.binding_vif_type, _p.status)
                                                  .join(m.ports, _p.id == _s.port_id)
                                                  .where(_s.trunk_id.in_(part))):
            vifs[trunk_id].append((vif, status))
        for trunk_id, current, parent_vif, parent_status in rows:
            out[trunk_id] = (current, status_of((parent_vif, parent_status), vifs.get(trunk_id, [])))
    return out


def refresh(conn: Connection, trunk_ids: Sequence[str]) -> None:
    """Store each trunk's status as its ports make it (see the module's docstring)."""
    for trunk_id, (current, status) in statuses(conn, trunk_ids).items():
        if status != current:
            common.bump(conn, m.trunks, trunk_id, {"status": status})


def refresh_for_ports(conn: Connection, port_ids: Iterable[str]) -> None:
    """Recompute the trunks of those ports (an agent reported their status)."""
    ids = list(port_ids)
    if ids:
        found = trunks_of(conn, ids)
        if found:
            refresh(conn, list(found))
