"""Segments as resources (a network's segments, added and removed by an admin; subnets on segments) and the
admin-managed segment ranges tenant networks take their ids from (network-segment-range)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.ml2.manager import TypeManager
from fermion.ml2.segments import Segment
from fermion.resources.base import AUTO
from fermion.resources.segment import NETWORK_SEGMENT_RANGE, SEGMENT
from fermion.rpc.contracts import Hint
from fermion.services import common
from fermion.services.query import Collection

TUNNEL_LIMITS = {"vxlan": 2**24 - 1, "geneve": 2**24 - 1, "gre": 2**32 - 1}
_NAMESPACE = uuid.UUID("5b0c36e0-6f0e-4b7e-9a53-2b1a0c2f5e11")  # default ranges get stable ids


class SegmentCollection(Collection):
    def __init__(self) -> None:
        super().__init__(SEGMENT, m.network_segments)


class SegmentService:
    def __init__(self, types: TypeManager) -> None:
        self.collection = SegmentCollection()
        self.types = types

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            net_id = item["network_id"]
            if conn.execute(select(m.networks.c.id).where(m.networks.c.id == net_id)).first() is None:
                raise NotFound(f"Network {net_id} could not be found.", type="NetworkNotFound")
            physnet = None if item["physical_network"] is AUTO else item["physical_network"]
            seg_id = None if item["segmentation_id"] is AUTO else item["segmentation_id"]
            (asked,) = self.types.validate([Segment(item["network_type"], physnet, seg_id)])
            segment = self.types.drivers[asked.network_type].reserve_provider_segment(conn, net_id, asked)
            index = conn.execute(select(func.max(m.network_segments.c.segment_index))
                                 .where(m.network_segments.c.network_id == net_id)).scalar()
            row = common.standard_row(item)
            row.update(name=item["name"], description=item["description"], network_id=net_id,
                       network_type=segment.network_type, physical_network=segment.physical_network,
                       segmentation_id=segment.segmentation_id, segment_index=(index or 0) + 1)
            conn.execute(insert(m.network_segments).values(**row))
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
            common.emit(conn, Hint("network", net_id, 0, net_id))
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values: dict[str, Any] = {k: changes[k] for k in ("name", "description") if k in changes}
        common.bump(conn, m.network_segments, orig["id"], values, expect_revision)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        if expect_revision is not None:
            common.bump(conn, m.network_segments, orig["id"], {}, expect_revision)
        s = m.subnets.c
        used = [r[0] for r in conn.execute(select(s.id).where(s.segment_id == orig["id"]).order_by(s.id))]
        if used:
            raise Conflict(f"Segment '{orig['id']}' cannot be deleted: The segment is still associated with "
                           f"subnet(s) {', '.join(used)}.", type="SegmentInUse")
        driver = self.types.drivers.get(orig["network_type"])
        if driver is not None:
            driver.release_segment(conn, Segment(orig["network_type"], orig["physical_network"],
                                                 orig["segmentation_id"]))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == orig["id"]))
        conn.execute(delete(m.network_segments).where(m.network_segments.c.id == orig["id"]))
        common.emit(conn, Hint("network", orig["network_id"], 0, orig["network_id"]))


def check_subnet_segment(conn: Connection, network_id: str, segment_id: str | None,
                         others_segments: Sequence[str | None]) -> None:
    """A subnet's segment belongs to its network, and a network's subnets are all on segments or none is
    (others_segments: the segment of each other subnet of the network)."""
    if segment_id is not None:
        found = conn.execute(select(m.network_segments.c.network_id)
                             .where(m.network_segments.c.id == segment_id)).first()
        if found is None:
            raise NotFound(f"Segment {segment_id} could not be found.", type="SegmentNotFound")
        if found[0] != network_id:
            raise BadRequest(f"The subnet's network id, '{network_id}', doesn't match the network_id of segment "
                             f"'{segment_id}'", type="NetworkIdsDontMatch")
    others = {seg is not None for seg in others_segments}
    if others and others != {segment_id is not None}:
        raise BadRequest(f"The subnets of network {network_id} must either all be associated with segments or none "
                         "of them", type="SubnetsNotAllAssociatedWithSegments")


# ---------------------------------------------------------------- network segment ranges
class RangeCollection(Collection):
    def __init__(self) -> None:
        super().__init__(NETWORK_SEGMENT_RANGE, m.network_segment_ranges)

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        taken = _allocations(conn, {(i["network_type"], i["physical_network"] or "") for i in items})
        for item in items:
            lo, hi = item["minimum"], item["maximum"]
            inside = {seg: project for seg, project in taken.get((item["network_type"],
                                                                  item["physical_network"] or ""), {}).items()
                      if lo <= seg <= hi}
            item["used"] = {str(seg): project for seg, project in sorted(inside.items())}
            item["available"] = [seg for seg in range(lo, hi + 1) if seg not in inside]


def _allocations(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[int, str]]:
    """Allocated ids and the project of their network, per (network type, physical network or '')."""
    out: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    if not keys:
        return out
    a, n = m.segment_allocations.c, m.networks.c
    types = sorted({t for t, _ in keys})
    for ntype, physnet, seg, project in conn.execute(
            select(a.network_type, a.physical_network, a.segmentation_id, n.project_id)
            .join(m.networks, n.id == a.network_id).where(a.network_type.in_(types))):
        if (ntype, physnet) in keys:
            out[(ntype, physnet)][seg] = project
    return out


class SegmentRangeService:
    def __init__(self, types: TypeManager) -> None:
        self.collection = RangeCollection()
        self.types = types

    def _check(self, conn: Connection, values: dict[str, Any], range_id: str | None) -> None:
        ntype, lo, hi = values["network_type"], values["minimum"], values["maximum"]
        if ntype == "vlan":
            if not (1 <= lo <= 4094 and 1 <= hi <= 4094) or lo > hi:
                raise BadRequest(f"Invalid network VLAN range: '{lo}:{hi}' - 'VLAN ids must be from 1 to 4094, "
                                 "the start not above the end'.", type="NetworkVlanRangeError")
        elif not (1 <= lo <= TUNNEL_LIMITS[ntype] and 1 <= hi <= TUNNEL_LIMITS[ntype]) or lo > hi:
            raise BadRequest(f"Invalid network tunnel range: '{lo}:{hi}' - '{ntype} ids must be from 1 to "
                             f"{TUNNEL_LIMITS[ntype]}, the start not above the end'.",
                             type="NetworkTunnelRangeError")
        r = m.network_segment_ranges.c
        stmt = select(r.id).where(r.default.is_(False), r.network_type == ntype, r.minimum <= hi, r.maximum >= lo)
        stmt = stmt.where(r.physical_network == values["physical_network"]) if ntype == "vlan" else stmt
        overlaps = [i for (i,) in conn.execute(stmt.order_by(r.id)) if i != range_id]
        if overlaps:
            raise Conflict(f"Network segment range overlaps with range(s) with id {', '.join(overlaps)}",
                           type="NetworkSegmentRangeOverlaps")

    def _allocated(self, conn: Connection, values: dict[str, Any]) -> list[int]:
        key = (values["network_type"], values["physical_network"] or "")
        return sorted(seg for seg in _allocations(conn, {key})[key]
                      if values["minimum"] <= seg <= values["maximum"])

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            ntype = item["network_type"]
            if ntype is AUTO:
                raise BadRequest("Invalid input for operation: network_type is required.", type="InvalidInput")
            if ntype not in self.types.drivers:
                raise BadRequest(f"Network type {ntype} does not support network segment ranges.",
                                 type="NetworkSegmentRangeNetTypeNotSupported")
            physnet = item["physical_network"]
            if ntype != "vlan":
                physnet = None
            elif physnet in (AUTO, None, ""):
                raise BadRequest("Network type vlan requires 'physical_network' to be specified while creating "
                                 "new range", type="BadRequest")
            row = common.standard_row(item)
            row.update(project_id=None if item["shared"] else item["project_id"], default=False,
                       shared=item["shared"], network_type=ntype, physical_network=physnet,
                       minimum=item["minimum"], maximum=item["maximum"])
            self._check(conn, row, None)
            conn.execute(insert(m.network_segment_ranges).values(**row))
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        if orig["default"]:
            raise _default_read_only(orig["id"])
        new = {**orig, **changes}
        allocated = self._allocated(conn, orig)
        if allocated and (new["minimum"] > allocated[0] or new["maximum"] < allocated[-1]):
            raise _referenced(orig["id"])
        self._check(conn, new, orig["id"])
        values: dict[str, Any] = {k: changes[k] for k in ("name", "description", "minimum", "maximum")
                                  if k in changes}
        common.bump(conn, m.network_segment_ranges, orig["id"], values, expect_revision)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        if orig["default"]:
            raise _default_read_only(orig["id"])
        if expect_revision is not None:
            common.bump(conn, m.network_segment_ranges, orig["id"], {}, expect_revision)
        if self._allocated(conn, orig):
            raise _referenced(orig["id"])
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == orig["id"]))
        conn.execute(delete(m.network_segment_ranges).where(m.network_segment_ranges.c.id == orig["id"]))

    def sync_defaults(self, conn: Connection, defaults: list[tuple[str, str | None, int, int]]) -> None:
        """Make the default ranges the configured ones, (type, physical network, min, max) each; ids derive
        from the values, so servers starting together write the same rows."""
        r = m.network_segment_ranges.c
        wanted = {str(uuid.uuid5(_NAMESPACE, f"{t}:{p or ''}:{lo}:{hi}")): (t, p, lo, hi)
                  for t, p, lo, hi in defaults}
        have = {i for (i,) in conn.execute(select(r.id).where(r.default.is_(True)))}
        stale = sorted(have - set(wanted))
        if stale:
            conn.execute(delete(m.network_segment_ranges).where(r.id.in_(stale)))
        ts = common.now()
        for ident in sorted(set(wanted) - have):
            t, p, lo, hi = wanted[ident]
            insert_if_absent(conn, m.network_segment_ranges, {
                "id": ident, "project_id": None, "name": "", "description": "", "created_at": ts, "updated_at": ts,
                "revision_number": 1, "default": True, "shared": True, "network_type": t, "physical_network": p,
                "minimum": lo, "maximum": hi})


def default_ranges(types: TypeManager) -> list[tuple[str, str | None, int, int]]:
    """The configured ranges of the loaded type drivers: the default segment ranges."""
    out: list[tuple[str, str | None, int, int]] = []
    for network_type, driver in types.drivers.items():
        ranges = getattr(driver, "ranges", None)
        if network_type == "vlan" and isinstance(ranges, dict):
            out += [("vlan", physnet, lo, hi) for physnet, spans in ranges.items() for lo, hi in spans]
        elif network_type in TUNNEL_LIMITS and isinstance(ranges, list):
            out += [(network_type, None, lo, hi) for lo, hi in ranges]
    return out


def _default_read_only(range_id: str) -> BadRequest:
    return BadRequest(f"Network Segment Range {range_id} is a default segment range which could not be updated "
                      "or deleted.", type="NetworkSegmentRangeDefaultReadOnly")


def _referenced(range_id: str) -> Conflict:
    return Conflict(f"Network Segment Range {range_id} is referenced by one or more tenant networks.",
                    type="NetworkSegmentRangeReferencedByProject")
