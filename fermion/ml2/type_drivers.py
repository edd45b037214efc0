"""Type drivers: local, flat, vlan and the tunnel types (vxlan, gre, geneve)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select

from fermion.allocation import first_free
from fermion.db import models as m
from fermion.db.engine import RetryRequest, scratch
from fermion.db.writes import insert_if_absent
from fermion.errors import Conflict, InvalidInput
from fermion.ml2.segments import Segment

_ENUMERATE_LIMIT = 1 << 16
_ATTEMPTS = 32
_GUESSES = 3
Range = tuple[int, int]
_a = m.segment_allocations.c
_TAKEN = select(_a.segmentation_id).where(_a.network_type == bindparam("b_type"),
                                          _a.physical_network == bindparam("b_physnet"))


def parse_ranges(specs: Iterable[str], lo: int, hi: int, what: str) -> list[Range]:
    out = []
    for spec in specs:
        try:
            a, b = (int(x) for x in spec.split(":"))
        except ValueError:
            raise ValueError(f"{what} range '{spec}' must look like MIN:MAX") from None
        if not lo <= a <= b <= hi:
            raise ValueError(f"{what} range '{spec}' must lie within {lo}:{hi}")
        out.append((a, b))
    return out


def parse_vlan_ranges(specs: Iterable[str]) -> dict[str, list[Range]]:
    """'physnet1:100:199' gives a tenant range; a bare 'physnet2' allows provider networks only."""
    out: dict[str, list[Range]] = {}
    for spec in specs:
        name, _, rest = spec.partition(":")
        if not name:
            raise ValueError(f"network_vlan_ranges entry '{spec}' has no physical network")
        ranges = out.setdefault(name, [])
        if rest:
            ranges.extend(parse_ranges([rest], 1, 4094, "VLAN"))
    return out


class _Allocations:
    """Shared bookkeeping in segment_allocations (physical_network '' for none: NULLs would not collide)."""

    def __init__(self, network_type: str) -> None:
        self.network_type = network_type
        self.rng = random.Random()

    def _try(self, conn: Connection, network_id: str, physnet: str | None, seg_id: int) -> bool:
        return insert_if_absent(conn, m.segment_allocations, {
            "network_type": self.network_type, "physical_network": physnet or "", "segmentation_id": seg_id,
            "network_id": network_id})

    def _taken(self, conn: Connection, physnet: str | None) -> set[int]:
        return {r[0] for r in conn.execute(_TAKEN, {"b_type": self.network_type, "b_physnet": physnet or ""})}

    def allocate(self, conn: Connection, network_id: str, physnet: str | None, ranges: Sequence[Range]) -> int | None:
        """A free id from the ranges, or None when all are taken.

        The ids one transaction (a bulk create) gets are picked in ascending order, each above the previous
        one while there is room, so that concurrent transactions wait for each other's uncommitted ids
        instead of deadlocking on them (as ipam.Allocator): random for the first, then just above it (a
        sparse run would soon reach the top of the range and wrap around)."""
        if not ranges:
            return None
        floors = scratch(conn).setdefault("segment_floors", {})
        key = (self.network_type, physnet or "")
        floor = floors.get(key)
        above = [(max(a, floor + 1), b) for a, b in ranges if b > floor] if floor is not None else []
        size = sum(b - a + 1 for a, b in ranges)
        for attempt in range(_ATTEMPTS):
            if attempt < _GUESSES:
                # ranges are mostly sparse: a random guess usually wins without reading every taken id
                cand = self._random(ranges) if not above else self.rng.randint(above[0][0],
                                                                                min(above[0][1], above[0][0] + 3))
            else:
                # ids taken outside these ranges (another project's own range, say) do not fill them
                taken = {t for t in self._taken(conn, physnet) if any(a <= t <= b for a, b in ranges)}
                if len(taken) >= size:
                    return None
                if size <= _ENUMERATE_LIMIT:
                    free = first_free(above, taken, 4) or first_free(ranges, taken, 256)
                    if not free:
                        return None
                    cand = self.rng.choice(free)
                else:
                    cand = self._random(above or ranges)
                    if cand in taken:
                        continue
            if self._try(conn, network_id, physnet, cand):
                floors[key] = cand
                return cand
        # free ids exist, but concurrent creates kept taking the candidates: run the transaction again
        raise RetryRequest(f"lost the race for a {self.network_type} id {_ATTEMPTS} times")

    def _random(self, ranges: Sequence[Range]) -> int:
        a, b = self.rng.choices(ranges, weights=[b - a + 1 for a, b in ranges])[0]
        return self.rng.randint(a, b)

    def release(self, conn: Connection, physnet: str | None, seg_id: int) -> None:
        a = m.segment_allocations.c
        conn.execute(delete(m.segment_allocations).where(
            a.network_type == self.network_type, a.physical_network == (physnet or ""),
            a.segmentation_id == seg_id))


def _no_id(segment: Segment, what: str) -> None:
    if segment.segmentation_id is not None:
        raise InvalidInput(f"segmentation_id specified for {what} provider network")


class LocalDriver:
    network_type = "local"

    def validate_provider_segment(self, segment: Segment) -> Segment:
        if segment.physical_network is not None:
            raise InvalidInput("physical_network specified for local network")
        _no_id(segment, "local")
        return segment

    def reserve_provider_segment(self, conn: Connection, network_id: str, segment: Segment) -> Segment:
        return segment

    def allocate_tenant_segment(self, conn: Connection, network_id: str, ranges: Any = None) -> Segment | None:
        return Segment("local")

    def release_segment(self, conn: Connection, segment: Segment) -> None:
        return None

    def max_mtu(self, physnet_mtu: int) -> int:
        return physnet_mtu


class FlatDriver:
    network_type = "flat"

    def __init__(self, flat_networks: Sequence[str]) -> None:
        self.any = "*" in flat_networks
        self.physnets = {p for p in flat_networks if p != "*"}
        self.alloc = _Allocations("flat")

    def validate_provider_segment(self, segment: Segment) -> Segment:
        if not segment.physical_network:
            raise InvalidInput("physical_network required for flat provider network")
        if not self.any and segment.physical_network not in self.physnets:
            raise InvalidInput(f"physical_network '{segment.physical_network}' unknown for flat provider network")
        _no_id(segment, "flat")
        return segment

    def reserve_provider_segment(self, conn: Connection, network_id: str, segment: Segment) -> Segment:
        if not self.alloc._try(conn, network_id, segment.physical_network, 0):
            raise Conflict(f"Unable to create the flat network. Physical network {segment.physical_network} "
                           "is in use.", type="FlatNetworkInUse")
        return segment

    def allocate_tenant_segment(self, conn: Connection, network_id: str, ranges: Any = None) -> Segment | None:
        return None  # flat networks are provider networks only, as in Neutron

    def release_segment(self, conn: Connection, segment: Segment) -> None:
        self.alloc.release(conn, segment.physical_network, 0)

    def max_mtu(self, physnet_mtu: int) -> int:
        return physnet_mtu


class VlanDriver:
    network_type = "vlan"

    def __init__(self, vlan_ranges: dict[str, list[Range]]) -> None:
        self.ranges = vlan_ranges
        self.alloc = _Allocations("vlan")

    def validate_provider_segment(self, segment: Segment) -> Segment:
        physnet = segment.physical_network
        if not physnet:
            if segment.segmentation_id is not None:
                raise InvalidInput("physical_network required for VLAN provider network")
            return segment
        if physnet not in self.ranges:
            raise InvalidInput(f"physical_network '{physnet}' unknown for VLAN provider network")
        seg = segment.segmentation_id
        if seg is not None and not 1 <= seg <= 4094:
            raise InvalidInput(f"segmentation_id out of range (1 through 4094): {seg}")
        return segment

    def reserve_provider_segment(self, conn: Connection, network_id: str, segment: Segment) -> Segment:
        physnet, seg = segment.physical_network, segment.segmentation_id
        if physnet is None:
            found = self.allocate_tenant_segment(conn, network_id)
            if found is None:
                raise _exhausted()
            return found
        if seg is None:
            got = self.alloc.allocate(conn, network_id, physnet, self.ranges.get(physnet, []))
            if got is None:
                raise _exhausted()
            return Segment("vlan", physnet, got)
        if not self.alloc._try(conn, network_id, physnet, seg):
            raise Conflict(f"Unable to create the network. The VLAN {seg} on physical network {physnet} is in "
                           "use.", type="VlanIdInUse")
        return segment

    def allocate_tenant_segment(self, conn: Connection, network_id: str, ranges: Any = None) -> Segment | None:
        for physnet, spans in (self.ranges if ranges is None else ranges).items():
            got = self.alloc.allocate(conn, network_id, physnet, spans)
            if got is not None:
                return Segment("vlan", physnet, got)
        return None

    def release_segment(self, conn: Connection, segment: Segment) -> None:
        if segment.segmentation_id is not None:
            self.alloc.release(conn, segment.physical_network, segment.segmentation_id)

    def max_mtu(self, physnet_mtu: int) -> int:
        return physnet_mtu


class TunnelDriver:
    """vxlan, gre and geneve: an id from configured ranges, no physical network."""

    def __init__(self, network_type: str, ranges: list[Range], max_id: int, overhead: int) -> None:
        self.network_type = network_type
        self.ranges = ranges
        self.max_id = max_id
        self.overhead = overhead
        self.alloc = _Allocations(network_type)

    def validate_provider_segment(self, segment: Segment) -> Segment:
        if segment.physical_network is not None:
            raise InvalidInput(f"provider:physical_network specified for {self.network_type} network")
        seg = segment.segmentation_id
        if seg is not None and not 1 <= seg <= self.max_id:
            raise InvalidInput(f"{self.network_type} segmentation_id out of range (1 through {self.max_id}): {seg}")
        return segment

    def reserve_provider_segment(self, conn: Connection, network_id: str, segment: Segment) -> Segment:
        if segment.segmentation_id is None:
            found = self.allocate_tenant_segment(conn, network_id)
            if found is None:
                raise _exhausted()
            return found
        if not self.alloc._try(conn, network_id, None, segment.segmentation_id):
            raise Conflict(f"Unable to create the network. The tunnel ID {segment.segmentation_id} is in use.",
                           type="TunnelIdInUse")
        return segment

    def allocate_tenant_segment(self, conn: Connection, network_id: str, ranges: Any = None) -> Segment | None:
        got = self.alloc.allocate(conn, network_id, None, self.ranges if ranges is None else ranges)
        return None if got is None else Segment(self.network_type, None, got)

    def release_segment(self, conn: Connection, segment: Segment) -> None:
        if segment.segmentation_id is not None:
            self.alloc.release(conn, None, segment.segmentation_id)

    def max_mtu(self, physnet_mtu: int) -> int:
        return physnet_mtu - self.overhead


def _exhausted() -> Conflict:
    return Conflict("Unable to create the network. No tenant network is available for allocation.",
                    type="NoNetworkAvailable", status=503)
