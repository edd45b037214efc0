"""Network segments and the type-driver contract.

A TypeDriver owns one network type (local, flat, vlan, vxlan, gre, geneve). All its methods run inside the
caller's write transaction; they may raise NeutronError (the whole transaction rolls back) and must not
block on anything but the database. Allocation is "pick a candidate, insert, retry on conflict": the
segment_allocations primary key makes two networks sharing a segment impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection


@dataclass(frozen=True)
class Segment:
    network_type: str
    physical_network: str | None = None
    segmentation_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"provider:network_type": self.network_type,
                "provider:physical_network": self.physical_network,
                "provider:segmentation_id": self.segmentation_id}


class TypeDriver(Protocol):
    network_type: str

    def validate_provider_segment(self, segment: Segment) -> Segment:
        """Check a segment an admin asked for; return it completed (e.g. flat id None). Raise InvalidInput."""
        ...

    def reserve_provider_segment(self, conn: Connection, network_id: str, segment: Segment) -> Segment:
        """Reserve the asked segment, allocating the id when only the physical network was given."""
        ...

    def allocate_tenant_segment(self, conn: Connection, network_id: str, ranges: Any = None) -> Segment | None:
        """A free segment from the ranges (None: the configured ones; for vlan {physnet: [(min, max)]}, for
        tunnels [(min, max)]), or None when exhausted or not configured."""
        ...

    def release_segment(self, conn: Connection, segment: Segment) -> None:
        ...

    def max_mtu(self, physnet_mtu: int) -> int:
        ...
