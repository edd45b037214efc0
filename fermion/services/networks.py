"""Networks."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.errors import BadRequest, Conflict, NeutronError
from fermion.ml2.manager import TypeManager, load_segments
from fermion.ml2.segments import Segment
from fermion.resources.base import AUTO
from fermion.resources.network import NETWORK
from fermion.rpc.contracts import Hint
from fermion.services import common
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService

DHCP_OWNER = "network:dhcp"
PROVIDER_KEYS = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")

_INSERT_NETWORK = Prepared(insert(m.networks))


class NetworkCollection(Collection):
    def __init__(self) -> None:
        super().__init__(NETWORK, m.networks)
        self.plain = [(n, c) for n, c in self.plain if n != "router:external"]

    def where(self, q: Any) -> list[Any]:
        provider = {k: v for k, v in q.filters.items() if k.startswith("provider:")}
        if not provider:
            return super().where(q)
        rest = dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k not in provider})
        conds = super().where(rest)
        s = m.network_segments.c
        for key, values in provider.items():
            col = {"provider:network_type": s.network_type, "provider:physical_network": s.physical_network,
                   "provider:segmentation_id": s.segmentation_id}[key]
            conds.append(m.networks.c.id.in_(select(s.network_id).where(col.in_(values))))
        return conds

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        by_net: dict[str, list[str]] = defaultdict(list)
        scopes: dict[tuple[str, int], str] = {}
        ids = [i["id"] for i in items]
        segments = load_segments(conn, ids) if ids else {}
        if ids:
            s, sp = m.subnets.c, m.subnetpools.c
            stmt = (select(s.network_id, s.id, s.ip_version, sp.address_scope_id)
                    .select_from(m.subnets.outerjoin(m.subnetpools, sp.id == s.subnetpool_id))
                    .order_by(s.created_at, s.id))
            if len(ids) <= 500:
                stmt = stmt.where(s.network_id.in_(ids))
            for net_id, sub_id, version, scope in conn.execute(stmt):
                by_net[net_id].append(sub_id)
                if scope is not None:
                    scopes.setdefault((net_id, version), scope)
        for row, item in zip(rows, items, strict=True):
            self._fill(item, row, by_net.get(item["id"], []), segments.get(item["id"], []))
            item["ipv4_address_scope"] = scopes.get((item["id"], 4))
            item["ipv6_address_scope"] = scopes.get((item["id"], 6))

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        for row, item, values in zip(rows, items, inserted, strict=True):  # no subnets yet; create kept segments
            self._fill(item, row, [], values["segments"])
            item["ipv4_address_scope"] = item["ipv6_address_scope"] = None

    def _fill(self, item: dict[str, Any], row: Any, subnets: list[str], segs: list[Segment]) -> None:
        item["router:external"] = row[self._index["router_external"]]
        item["subnets"] = subnets
        if len(segs) == 1:
            item.update(segs[0].as_dict())
        else:
            item.update(dict.fromkeys(PROVIDER_KEYS))
            if segs:
                item["segments"] = [seg.as_dict() for seg in segs]


def requested_segments(item: dict[str, Any]) -> list[Segment] | None:
    """Segments an admin asked for with provider:* or segments, or None for a tenant network."""
    provider = {k: item[k] for k in PROVIDER_KEYS if item.get(k, AUTO) is not AUTO}
    multi = item.get("segments", AUTO)
    if provider and multi is not AUTO:
        raise BadRequest("Segments and provider values cannot both be set.",
                         type="SegmentsSetInConjunctionWithProviders")
    if multi is not AUTO:
        entries = multi
    elif provider:
        entries = [provider]
    else:
        return None
    out = []
    for entry in entries:
        if not entry.get("provider:network_type"):
            raise BadRequest("Invalid input for operation: network_type required.", type="InvalidInput")
        out.append(Segment(entry["provider:network_type"], entry.get("provider:physical_network"),
                           entry.get("provider:segmentation_id")))
    return out


class NetworkService:
    def __init__(self, quotas: QuotaService, types: TypeManager) -> None:
        self.collection = NetworkCollection()
        self.quotas = quotas
        self.types = types
        self.default_mtu = types.physnet_mtu

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        """Insert the items; return the inserted rows (to answer without reading them back)."""
        rows = []
        for item in items:
            row = common.standard_row(item)
            requested = requested_segments(item)
            if requested is not None:
                requested = self.types.validate(requested)
            segments = self.types.allocate(conn, row["id"], requested)
            max_mtu = self.types.max_mtu(segments)
            mtu = item["mtu"]
            if mtu is not AUTO and mtu > max_mtu:
                raise NeutronError(f"Requested MTU is too big, maximum is {max_mtu}", type="InvalidInput", status=400)
            row.update(
                admin_state_up=item["admin_state_up"],
                status="ACTIVE",
                shared=item["shared"],
                mtu=max_mtu if mtu is AUTO else mtu,
                router_external=item["router:external"],
                port_security_enabled=item["port_security_enabled"],
            )
            _INSERT_NETWORK.run(conn, row)
            self.types.record(conn, row["id"], segments)
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or [])), "segments": segments})
            common.emit(conn, Hint("network", row["id"], 0, row["id"]))
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "network", count)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values: dict[str, Any] = {}
        for key, val in changes.items():
            if key == "mtu":
                max_mtu = self.types.max_mtu(load_segments(conn, [orig["id"]]).get(orig["id"], []))
                if val > max_mtu:
                    raise NeutronError(f"Requested MTU is too big, maximum is {max_mtu}", type="InvalidInput",
                                       status=400)
            values[key.replace(":", "_")] = val
        if changes.get("shared") is False and orig["shared"]:
            others = conn.execute(select(m.ports.c.id).where(
                m.ports.c.network_id == orig["id"], m.ports.c.project_id != orig["project_id"],
                m.ports.c.device_owner != DHCP_OWNER).limit(1)).first()
            if others is not None:
                raise Conflict(f"Unable to reconfigure sharing settings for network {orig['id']}. "
                               "Multiple tenants are using it.", type="InvalidSharedSetting")
        common.bump(conn, m.networks, orig["id"], values, expect_revision)
        common.emit(conn, Hint("network", orig["id"], orig["revision_number"] + 1, orig["id"]))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        net_id = orig["id"]
        if expect_revision is not None and orig["revision_number"] != expect_revision:
            common.bump(conn, m.networks, net_id, {}, expect_revision)
        busy = conn.execute(select(m.ports.c.id).where(m.ports.c.network_id == net_id,
                                                       m.ports.c.device_owner != DHCP_OWNER).limit(1)).first()
        if busy is not None:
            raise Conflict(f"Unable to complete operation on network {net_id}. "
                           "There are one or more ports still in use on the network.", type="NetworkInUse")
        ports = conn.execute(select(m.ports.c.id, m.ports.c.project_id)
                             .where(m.ports.c.network_id == net_id)).all()
        for pid, project in ports:
            self.quotas.release(conn, project, "port")
            conn.execute(delete(m.tags).where(m.tags.c.resource_id == pid))
        conn.execute(delete(m.ip_allocations).where(m.ip_allocations.c.network_id == net_id))
        conn.execute(delete(m.ports).where(m.ports.c.network_id == net_id))
        conn.execute(delete(m.network_dhcp_agents).where(m.network_dhcp_agents.c.network_id == net_id))
        subnets = conn.execute(select(m.subnets.c.id, m.subnets.c.project_id)
                               .where(m.subnets.c.network_id == net_id)).all()
        for sid, project in subnets:
            self.quotas.release(conn, project, "subnet")
            conn.execute(delete(m.tags).where(m.tags.c.resource_id == sid))
        if subnets:
            conn.execute(delete(m.subnet_service_types).where(
                m.subnet_service_types.c.subnet_id.in_([sid for sid, _ in subnets])))
        conn.execute(delete(m.subnets).where(m.subnets.c.network_id == net_id))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == net_id))
        self.types.release(conn, net_id)
        conn.execute(delete(m.networks).where(m.networks.c.id == net_id))
        self.quotas.release(conn, orig["project_id"], "network")
        common.emit(conn, Hint("network", net_id, orig["revision_number"] + 1, net_id))
