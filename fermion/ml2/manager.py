"""The type manager: an explicit registry of type drivers built from configuration."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.db.writes import new_id
from fermion.errors import Conflict, InvalidInput
from fermion.ml2 import type_drivers as td
from fermion.ml2.segments import Segment, TypeDriver

KNOWN_TYPES = ("local", "flat", "vlan", "vxlan", "gre", "geneve")


_INSERT_SEGMENTS = Prepared(insert(m.network_segments))
_r = m.network_segment_ranges.c
_RANGES = Prepared(select(_r.project_id, _r.physical_network, _r.minimum, _r.maximum)
                   .where(_r.network_type == bindparam("b_type")).order_by(_r.minimum))


@dataclass(frozen=True)
class Ml2Config:
    type_drivers: Sequence[str] = KNOWN_TYPES
    tenant_network_types: Sequence[str] = ("vxlan",)
    flat_networks: Sequence[str] = ("*",)
    network_vlan_ranges: Sequence[str] = ("physnet1:100:199",)
    vxlan_vni_ranges: Sequence[str] = ("1000:1999",)
    gre_tunnel_id_ranges: Sequence[str] = ("1:1000",)
    geneve_vni_ranges: Sequence[str] = ("1:1000",)


def build_drivers(cfg: Ml2Config) -> dict[str, TypeDriver]:
    """Fails at start-up (ValueError) on unknown types or bad ranges, never later."""
    unknown = [t for t in [*cfg.type_drivers, *cfg.tenant_network_types] if t not in KNOWN_TYPES]
    if unknown:
        raise ValueError(f"unknown network type(s): {', '.join(unknown)}")
    missing = [t for t in cfg.tenant_network_types if t not in cfg.type_drivers]
    if missing:
        raise ValueError(f"tenant network type(s) without a type driver: {', '.join(missing)}")
    factories: dict[str, Callable[[], TypeDriver]] = {
        "local": lambda: td.LocalDriver(),
        "flat": lambda: td.FlatDriver(cfg.flat_networks),
        "vlan": lambda: td.VlanDriver(td.parse_vlan_ranges(cfg.network_vlan_ranges)),
        "vxlan": lambda: td.TunnelDriver("vxlan", td.parse_ranges(cfg.vxlan_vni_ranges, 1, 2**24 - 1, "VXLAN VNI"),
                                         2**24 - 1, 50),
        "gre": lambda: td.TunnelDriver("gre", td.parse_ranges(cfg.gre_tunnel_id_ranges, 1, 2**32 - 1, "GRE id"),
                                       2**32 - 1, 42),
        "geneve": lambda: td.TunnelDriver("geneve", td.parse_ranges(cfg.geneve_vni_ranges, 1, 2**24 - 1,
                                                                    "Geneve VNI"), 2**24 - 1, 58),
    }
    return {t: factories[t]() for t in cfg.type_drivers}


class TypeManager:
    def __init__(self, drivers: dict[str, TypeDriver], tenant_types: Sequence[str], physnet_mtu: int) -> None:
        self.drivers = drivers
        self.tenant_types = list(tenant_types)
        self.physnet_mtu = physnet_mtu

    def _driver(self, network_type: str) -> TypeDriver:
        driver = self.drivers.get(network_type)
        if driver is None:
            raise InvalidInput(f"Unknown provider:network_type {network_type}")
        return driver

    def validate(self, requested: list[Segment]) -> list[Segment]:
        out = [self._driver(s.network_type).validate_provider_segment(s) for s in requested]
        if len(set(out)) != len(out):
            raise InvalidInput("Duplicate segment entry in request.")
        return out

    def allocate(self, conn: Connection, network_id: str, requested: list[Segment] | None,
                 project_id: str | None = None) -> list[Segment]:
        """Reserve the segments (allocation rows only); record() stores them once the network row exists.
        A tenant segment comes from the project's own segment ranges first, then the shared ones."""
        if requested:
            segments = [self._from_ranges(conn, network_id, s, project_id)
                        or self._driver(s.network_type).reserve_provider_segment(conn, network_id, s)
                        for s in requested]
        else:
            segments = []
            for network_type in self.tenant_types:
                found = self._from_ranges(conn, network_id, Segment(network_type), project_id)
                if found is not None:
                    segments = [found]
                    break
            if not segments and self.tenant_types:
                raise Conflict("Unable to create the network. No tenant network is available for allocation.",
                               type="NoNetworkAvailable", status=503)
        return segments

    def _from_ranges(self, conn: Connection, network_id: str, asked: Segment,
                     project_id: str | None) -> Segment | None:
        """A segment of the asked type (and physical network, if given) whose id the caller left to us, from
        the project's segment ranges and then the shared ones; None when the id was given or none is free."""
        if asked.segmentation_id is not None or asked.network_type not in ("vlan", "vxlan", "gre", "geneve"):
            return None
        driver = self._driver(asked.network_type)
        for ranges in project_ranges(conn, asked.network_type, project_id):
            if ranges is not None and asked.physical_network is not None:
                ranges = {asked.physical_network: ranges.get(asked.physical_network, [])}
            found = driver.allocate_tenant_segment(conn, network_id, ranges)
            if found is not None:
                return found
        return None

    def record(self, conn: Connection, network_id: str, segments: list[Segment], project_id: str,
               ts: datetime) -> None:
        if segments:
            _INSERT_SEGMENTS.run_many(conn, [
                {"id": new_id(), "network_id": network_id, "network_type": s.network_type,
                 "physical_network": s.physical_network, "segmentation_id": s.segmentation_id,
                 "segment_index": i, "project_id": project_id, "name": None, "description": None,
                 "created_at": ts, "updated_at": ts, "revision_number": 1} for i, s in enumerate(segments)])

    def max_mtu(self, segments: list[Segment]) -> int:
        if not segments:
            return self.physnet_mtu
        return min(self.drivers[s.network_type].max_mtu(self.physnet_mtu) for s in segments)

    def release(self, conn: Connection, network_id: str) -> None:
        for seg in load_segments(conn, [network_id]).get(network_id, []):
            driver = self.drivers.get(seg.network_type)
            if driver is not None:
                driver.release_segment(conn, seg)
        conn.execute(delete(m.network_segments).where(m.network_segments.c.network_id == network_id))


def project_ranges(conn: Connection, network_type: str, project_id: str | None) -> list[Any]:
    """The segment ranges a project's tenant network of this type may use, in the order to try them: its own,
    then the shared ones less every project's own ranges (those ids are kept for their projects, as Neutron
    does); [None] (the driver's configured ranges) when no range is stored for the type."""
    rows = _RANGES.rows(conn, {"b_type": network_type})
    if not rows:
        return [None]
    kept = [(physnet, lo, hi) for owner, physnet, lo, hi in rows if owner is not None]
    own = [(physnet, lo, hi) for owner, physnet, lo, hi in rows if owner is not None and owner == project_id]
    shared = [(physnet, a, b) for owner, physnet, lo, hi in rows if owner is None
              for a, b in _subtract((lo, hi), [(x, y) for p, x, y in kept if p == physnet])]
    out: list[Any] = []
    for group in (own, shared):
        if not group:
            continue
        if network_type == "vlan":
            by_physnet: dict[str, list[tuple[int, int]]] = defaultdict(list)
            for physnet, lo, hi in group:
                by_physnet[physnet].append((lo, hi))
            out.append(dict(by_physnet))
        else:
            out.append([(lo, hi) for _, lo, hi in group])
    return out


def _subtract(span: tuple[int, int], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of span [lo, hi] outside every hole."""
    parts = [span]
    for a, b in holes:
        parts = [piece for lo, hi in parts for piece in ((lo, min(hi, a - 1)), (max(lo, b + 1), hi))
                 if piece[0] <= piece[1]]
    return parts


def load_segments(conn: Connection, network_ids: Sequence[str] | None) -> dict[str, list[Segment]]:
    s = m.network_segments.c
    stmt = select(s.network_id, s.network_type, s.physical_network, s.segmentation_id).order_by(
        s.network_id, s.segment_index)
    if network_ids is not None and len(network_ids) <= 500:
        stmt = stmt.where(s.network_id.in_(network_ids))
    out: dict[str, list[Segment]] = defaultdict(list)
    for net_id, ntype, physnet, seg_id in conn.execute(stmt):
        out[net_id].append(Segment(ntype, physnet, seg_id))
    return out
