"""Networks."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    bindparam,
    delete,
    insert,
    literal,
    not_,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from fermion.context import Context
from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.errors import BadRequest, Conflict, NeutronError
from fermion.ml2.manager import TypeManager, load_segments
from fermion.ml2.segments import Segment
from fermion.resources.base import AUTO
from fermion.resources.network import NETWORK
from fermion.rpc.contracts import Hint
from fermion.services import common, qos_bindings, rbac_access, zones
from fermion.services.query import Collection
from fermion.services.quotas import QuotaService
from fermion.services.rbac import count_unlimited, revoke_all
from fermion.services.rbac_access import EXTERNAL, SHARED, WILDCARD

DHCP_OWNER = "network:dhcp"
GATEWAY_OWNER = "network:router_gateway"

MIN_MTU = {4: 68, 6: 1280}  # the least MTU each IP version works with (RFC 791, RFC 8200)


def mtu_conflict(network_id: str, mtu: int) -> Conflict:
    return Conflict(f"MTU of {network_id} is not valid, subnet requires a minimum of {mtu}",
                    type="NetworkMTUSubnetConflict")
PROVIDER_KEYS = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")

_INSERT_NETWORK = Prepared(insert(m.networks))
_s, _sp, _g, _t = m.subnets.c, m.subnetpools.c, m.network_segments.c, m.tags.c
_d, _a = m.network_dhcp_agents.c, m.agents.c
_ids: BindParameter[Any] = bindparam("b_ids", expanding=True)
# what a page of up to 500 networks shows beyond its rows, in one round trip, told apart by the first column:
# subnets (2: network, subnet, address scope, IP version, -, created_at), segments (1: network, type,
# physical network, id, index), the zones of their DHCP agents (3: network, zone) and tags (0: network, tag)
_NETWORKS_PARTS = Prepared(union_all(
    select(literal(2), _s.network_id, _s.id, _sp.address_scope_id, _s.ip_version, null(), _s.created_at)
    .select_from(m.subnets.outerjoin(m.subnetpools, _sp.id == _s.subnetpool_id)).where(_s.network_id.in_(_ids)),
    select(literal(1), _g.network_id, _g.network_type, _g.physical_network, _g.segmentation_id, _g.segment_index,
           null()).where(_g.network_id.in_(_ids)),
    select(literal(3), _d.network_id, _a.availability_zone, null(), null(), null(), null())
    .select_from(m.network_dhcp_agents.join(m.agents, _a.id == _d.dhcp_agent_id)).where(_d.network_id.in_(_ids)),
    select(literal(0), _t.resource_id, _t.tag, null(), null(), null(), null()).where(_t.resource_id.in_(_ids))))
_PARTS_AT_ONCE = 500


class NetworkCollection(Collection):
    def __init__(self) -> None:
        super().__init__(NETWORK, m.networks)
        self.plain = [(n, c) for n, c in self.plain if n != "router:external"]

    def policy_condition(self, attr: str, value: object, creds: dict[str, Any]) -> Any:
        if attr == "shared":  # as the caller sees it: granted to its project or to all
            return rbac_access.shared_condition(m.networks.c.id, "network", value, creds.get("project_id"))
        if attr == "router:external":  # Neutron shows the flag to all, but only grantees reach the network
            granted = m.networks.c.id.in_(rbac_access.granted("network", EXTERNAL, creds.get("project_id")))
            return granted if value is True else not_(granted)
        return super().policy_condition(attr, value, creds)

    def for_caller(self, conn: Connection, items: list[dict[str, Any]], project_id: str | None) -> None:
        """shared: True when the network is shared with every project or with the caller's (Neutron)."""
        if project_id:
            rbac_access.mark_shared(conn, items, "network", project_id)

    def where(self, q: Any) -> list[Any]:
        default = q.filters.get("is_default")
        if default is not None:  # stored as True or NULL
            q = dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k != "is_default"})
            col = m.networks.c.is_default
            want = set(default)
            extra = [] if want == {True, False} else [col.is_(True) if True in want else col.is_(None)]
            return [*self.where(q), *extra]
        special = {k: v for k, v in q.filters.items() if k.startswith("provider:") or k == "shared"}
        if not special:
            return super().where(q)
        rest = dataclasses.replace(q, filters={k: v for k, v in q.filters.items() if k not in special})
        conds = super().where(rest)
        shared = special.pop("shared", None)
        if shared is not None and len(set(shared)) == 1:
            cond = or_(m.networks.c.shared.is_(True),
                       m.networks.c.id.in_(rbac_access.granted("network", SHARED, q.project_id)))
            conds.append(cond if shared[0] else not_(cond))
        provider = special
        s = m.network_segments.c
        for key, values in provider.items():
            col = {"provider:network_type": s.network_type, "provider:physical_network": s.physical_network,
                   "provider:segmentation_id": s.segmentation_id}[key]
            conds.append(m.networks.c.id.in_(select(s.network_id).where(col.in_(values))))
        return conds

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        """A page of up to 500 networks (a show, a list) in one extra statement instead of four."""
        if not rows or len(rows) > _PARTS_AT_ONCE or tags is not None or not complete:
            return super().to_dicts(conn, rows, tags, complete)
        own_tags: dict[str, list[str]] = defaultdict(list)
        subnets: list[tuple[Any, ...]] = []
        segments: list[tuple[Any, ...]] = []
        hosted: dict[str, set[str]] = defaultdict(set)
        for part in _NETWORKS_PARTS.rows(conn, {"b_ids": [r[0] for r in rows]}):
            kind, net_id = part[0], part[1]
            if kind == 0:
                own_tags[net_id].append(part[2])
            elif kind == 1:
                segments.append(part)
            elif kind == 2:
                subnets.append(part)
            elif part[2]:  # a DHCP agent's zone
                hosted[net_id].add(part[2])
        for found in own_tags.values():
            found.sort()
        items = self.dicts(rows, own_tags)
        by_net: dict[str, list[str]] = defaultdict(list)
        scopes: dict[tuple[str, int], str] = {}
        for _, net_id, sub_id, scope, version, _, _ in sorted(subnets, key=lambda p: (p[6], p[2])):
            by_net[net_id].append(sub_id)
            if scope is not None:
                scopes.setdefault((net_id, version), scope)
        segs: dict[str, list[Segment]] = defaultdict(list)
        for _, net_id, ntype, physnet, seg_id, _, _ in sorted(segments, key=lambda p: (p[1], p[5])):
            segs[net_id].append(Segment(ntype, physnet, seg_id))
        self._complete(rows, items, by_net, scopes, segs, {n: sorted(z) for n, z in hosted.items()})
        return items

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
        self._complete(rows, items, by_net, scopes, segments, zones.hosting_zones(conn, "network", ids))

    def _complete(self, rows: Sequence[Any], items: list[dict[str, Any]], by_net: dict[str, list[str]],
                  scopes: dict[tuple[str, int], str], segments: dict[str, list[Segment]],
                  hosted: dict[str, list[str]]) -> None:
        for row, item in zip(rows, items, strict=True):
            self._fill(item, row, by_net.get(item["id"], []), segments.get(item["id"], []))
            item["availability_zones"] = hosted.get(item["id"], [])
            item["ipv4_address_scope"] = scopes.get((item["id"], 4))
            item["ipv6_address_scope"] = scopes.get((item["id"], 6))

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        for row, item, values in zip(rows, items, inserted, strict=True):  # no subnets yet; create kept segments
            self._fill(item, row, [], values["segments"])
            item["availability_zones"] = []  # zones come with the DHCP agents, scheduled with a subnet
            item["ipv4_address_scope"] = item["ipv6_address_scope"] = None

    def _fill(self, item: dict[str, Any], row: Any, subnets: list[str], segs: list[Segment]) -> None:
        item["router:external"] = row[self._index["router_external"]]
        item["availability_zone_hints"] = row[self._index["availability_zone_hints"]] or []
        item["is_default"] = bool(row[self._index["is_default"]])
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


def set_default(conn: Connection, network_id: str, default: bool) -> None:
    """Make the external network the deployment's default one (auto-allocated-topology), or not. One default
    at a time: a second is refused (409), also when two requests race (the unique key)."""
    n = m.networks.c
    if default:
        other = conn.execute(select(n.id).where(n.is_default.is_(True), n.id != network_id)).scalar()
        if other is not None:
            raise Conflict(f"Unable to perform operation for network {network_id}: default external network "
                           f"{other} already exists.", type="DefaultExternalNetworkExists")
        try:
            with conn.begin_nested():
                conn.execute(update(m.networks).where(n.id == network_id).values(is_default=True))
        except IntegrityError:
            raise Conflict(f"Unable to perform operation for network {network_id}: a default external network "
                           "already exists.", type="DefaultExternalNetworkExists") from None
    else:
        conn.execute(update(m.networks).where(n.id == network_id).values(is_default=None))


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
            segments = self.types.allocate(conn, row["id"], requested, row["project_id"])
            max_mtu = self.types.max_mtu(segments)
            mtu = item["mtu"]
            if mtu is not AUTO and mtu > max_mtu:
                raise NeutronError(f"Requested MTU is too big, maximum is {max_mtu}", type="InvalidInput", status=400)
            hints = zones.check_hints(item.get("availability_zone_hints") or [])
            zones.validate_hints(conn, "network", hints)
            row.update(
                availability_zone_hints=hints,
                admin_state_up=item["admin_state_up"],
                status="ACTIVE",
                shared=item["shared"],
                mtu=max_mtu if mtu is AUTO else mtu,
                router_external=item["router:external"],
                port_security_enabled=item["port_security_enabled"],
                dns_domain=item.get("dns_domain", ""),
                is_default=None,
                qos_policy_id=qos_bindings.for_new_network(conn, item, ctx),
            )
            _INSERT_NETWORK.run(conn, row)
            if item.get("is_default") and item["router:external"]:
                set_default(conn, row["id"], True)
                row["is_default"] = True
            for flag, action in ((row["shared"], SHARED), (row["router_external"], EXTERNAL)):
                if flag:  # the flags stand for wildcard grants, as in Neutron
                    rbac_access.grant(conn, row["project_id"], "network", row["id"], action)
                    count_unlimited(conn, self.quotas, row["project_id"])
            self.types.record(conn, row["id"], segments, row["project_id"], row["created_at"])
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or [])), "segments": segments})
            common.emit(conn, Hint("network", row["id"], 1, row["id"]))
        for project, count in common.count_by_project(items).items():
            self.quotas.charge(conn, project, "network", count)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        values: dict[str, Any] = {}
        external = changes.get("router:external", orig["router:external"])
        qos_bindings.check_change(conn, changes, ctx)
        if "is_default" in changes or (orig["is_default"] and not external):
            set_default(conn, orig["id"], bool(changes.get("is_default", orig["is_default"]) and external))
        for key, val in changes.items():
            if key == "is_default":
                continue
            if key == "mtu":
                max_mtu = self.types.max_mtu(load_segments(conn, [orig["id"]]).get(orig["id"], []))
                if val > max_mtu:
                    raise NeutronError(f"Requested MTU is too big, maximum is {max_mtu}", type="InvalidInput",
                                       status=400)
                self._check_subnets_mtu(conn, orig["id"], val)
            values[key.replace(":", "_")] = val
        if "shared" in changes:
            self._share(conn, orig, changes["shared"])
        if "router:external" in changes:
            values["router_external"] = self._externalize(conn, orig, changes["router:external"])
        common.bump(conn, m.networks, orig["id"], values, expect_revision)
        common.emit(conn, Hint("network", orig["id"], orig["revision_number"] + 1, orig["id"]))

    @staticmethod
    def _check_subnets_mtu(conn: Connection, network_id: str, mtu: int) -> None:
        """Neutron refuses an MTU too small for the network's subnets (68 for IPv4, 1280 for IPv6)."""
        versions = set(conn.execute(select(m.subnets.c.ip_version).distinct()
                                    .where(m.subnets.c.network_id == network_id)).scalars())
        need = max((MIN_MTU[v] for v in versions), default=0)
        if mtu < need:
            raise mtu_conflict(network_id, need)

    def _share(self, conn: Connection, orig: dict[str, Any], shared: bool) -> None:
        """shared=True adds the wildcard access_as_shared grant, False removes it unless other projects still
        use the network without a grant of their own (InvalidSharedSetting)."""
        net_id, owner = orig["id"], orig["project_id"]
        wildcard = conn.execute(select(m.rbac_policies.c.id).where(
            m.rbac_policies.c.object_type == "network", m.rbac_policies.c.object_id == net_id,
            m.rbac_policies.c.action == SHARED, m.rbac_policies.c.target_project == WILDCARD)).first()
        if shared and wildcard is None:
            rbac_access.grant(conn, owner, "network", net_id, SHARED)
            count_unlimited(conn, self.quotas, owner)
        elif not shared and wildcard is not None:
            p, s = m.ports.c, m.subnets.c
            users = {r[0] for r in conn.execute(select(p.project_id).distinct().where(
                p.network_id == net_id, not_(p.device_owner.startswith("network:"))))}
            users |= {r[0] for r in conn.execute(select(s.project_id).distinct().where(s.network_id == net_id))}
            if users - {owner}:
                r = m.rbac_policies.c
                allowed = {t[0] for t in conn.execute(select(r.target_project).where(
                    r.object_type == "network", r.object_id == net_id, r.action == SHARED,
                    r.target_project != WILDCARD))} | {owner}
                if users - allowed:
                    raise Conflict(f"Unable to reconfigure sharing settings for network {orig['name']}. "
                                   "Multiple tenants are using it.", type="InvalidSharedSetting")
            revoke_all(conn, self.quotas, "network", net_id, [SHARED], WILDCARD)

    def _externalize(self, conn: Connection, orig: dict[str, Any], external: bool) -> bool:
        """router:external=True makes the network external with a wildcard access_as_external grant (unless it
        is external already); False removes every access_as_external grant, refused while routers use it."""
        net_id = orig["id"]
        if external == orig["router:external"]:
            return external
        if external:
            rbac_access.grant(conn, orig["project_id"], "network", net_id, EXTERNAL)
            count_unlimited(conn, self.quotas, orig["project_id"])
            return True
        p = m.ports.c
        gateway = conn.execute(select(p.id).where(p.network_id == net_id, p.device_owner == GATEWAY_OWNER)
                               .limit(1)).first()
        if gateway is not None:
            raise Conflict(f"External network {net_id} cannot be updated to be non-external, since it has "
                           "existing gateway ports.", type="ExternalNetworkInUse")
        revoke_all(conn, self.quotas, "network", net_id, [EXTERNAL])
        return False

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        net_id = orig["id"]
        if expect_revision is not None and orig["revision_number"] != expect_revision:
            common.bump(conn, m.networks, net_id, {}, expect_revision)
        # as Neutron: floating IPs of the network that are not associated go with it
        f = m.floatingips.c
        idle = conn.execute(select(f.id, f.project_id, f.floating_port_id)
                            .where(f.floating_network_id == net_id, f.fixed_port_id.is_(None))).all()
        for fip in idle:
            conn.execute(delete(m.tags).where(m.tags.c.resource_id == fip.id))
            conn.execute(delete(m.floatingips).where(f.id == fip.id))
            self.quotas.release(conn, fip.project_id, "floatingip")
        busy = conn.execute(select(m.ports.c.id).where(m.ports.c.network_id == net_id,
                                                       m.ports.c.device_owner != DHCP_OWNER,
                                                       m.ports.c.id.not_in([i.floating_port_id for i in idle]))
                            .limit(1)).first()
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
        revoke_all(conn, self.quotas, "network", net_id)
        self.types.release(conn, net_id)
        conn.execute(delete(m.networks).where(m.networks.c.id == net_id))
        self.quotas.release(conn, orig["project_id"], "network")
        common.emit(conn, Hint("network", net_id, orig["revision_number"] + 1, net_id))
