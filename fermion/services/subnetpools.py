"""Subnet pools: prefixes to carve subnets from, prefix-length bounds, per-project quotas, the default pools,
prefix operations and onboarding. Allocation locks the pool row, so creates from one pool take turns and
never overlap."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, InvalidInput, NotFound, OverQuota
from fermion.resources.base import AUTO
from fermion.resources.subnetpool import SUBNETPOOL
from fermion.rpc.contracts import Hint
from fermion.services import common
from fermion.services.address_scopes import accessible, load_scope, share
from fermion.services.quotas import QuotaService
from fermion.services.rbac import pool_scope_refusal, refused, revoke_all
from fermion.services.rbac_access import WILDCARD
from fermion.services.rbac_shared import RbacSharedCollection

MAX_BITS = {4: 32, 6: 128}
DEFAULT_MIN = {4: 8, 6: 64}
QUOTA_UNIT = {4: 32, 6: 64}  # quotas count IPv4 addresses and IPv6 /64s, as Neutron's


def _bounds_error(kind: str, prefixlen: int, base_kind: str, base: int) -> BadRequest:
    return BadRequest(f"Illegal prefix bounds: {kind}={prefixlen}, {base_kind}={base}.",
                      type="IllegalSubnetPoolPrefixBounds")


def compact(prefixes: Iterable[str]) -> list[str]:
    ipset = netaddr.IPSet(netaddr.IPNetwork(p).cidr for p in prefixes)
    ipset.compact()
    return [str(c) for c in ipset.iter_cidrs()]


def read_pool(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a pool's settings and fill the derived ones (ip_version, compacted prefixes, bounds)."""
    prefixes = values["prefixes"]
    if not prefixes:
        raise BadRequest("Empty subnet pool prefix list.", type="EmptySubnetPoolPrefixList")
    versions = {netaddr.IPNetwork(p).version for p in prefixes}
    if len(versions) > 1:
        raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.", type="PrefixVersionMismatch")
    version = versions.pop()
    out = dict(values)
    out["ip_version"] = version
    out["prefixes"] = compact(prefixes)
    bits = MAX_BITS[version]
    if out["min_prefixlen"] is AUTO:
        out["min_prefixlen"] = DEFAULT_MIN[version]
    if out["max_prefixlen"] is AUTO:
        out["max_prefixlen"] = bits
    if out["default_prefixlen"] is AUTO:
        out["default_prefixlen"] = out["min_prefixlen"]
    low, high, default = out["min_prefixlen"], out["max_prefixlen"], out["default_prefixlen"]
    if high > bits:
        raise _bounds_error("max_prefixlen", high, "ip_version_max", bits)
    if low > high:
        raise _bounds_error("min_prefixlen", low, "max_prefixlen", high)
    if default < low:
        raise _bounds_error("default_prefixlen", default, "min_prefixlen", low)
    if default > high:
        raise _bounds_error("default_prefixlen", default, "max_prefixlen", high)
    return out


def pool_not_found(pool_id: str) -> NotFound:
    return NotFound(f"Subnet pool {pool_id} could not be found.", type="SubnetPoolNotFound")


def _allocated(conn: Connection, pool_id: str) -> list[tuple[str, str, str]]:
    """(cidr, project, network) of every subnet taken from the pool."""
    s = m.subnets.c
    return [(r[0], r[1], r[2]) for r in conn.execute(select(s.cidr, s.project_id, s.network_id)
                                                     .where(s.subnetpool_id == pool_id))]


PREFIXLENS = ("default_prefixlen", "min_prefixlen", "max_prefixlen")


class SubnetPoolCollection(RbacSharedCollection):
    def __init__(self) -> None:
        super().__init__(SUBNETPOOL, m.subnetpools, "subnetpool")

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        for item in items:  # Neutron answers the prefix lengths as strings ("64"); they are stored as numbers
            for key in PREFIXLENS:
                item[key] = str(item[key])


class SubnetPoolService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = SubnetPoolCollection()
        self.quotas = quotas

    # ---------------------------------------------------------------- reading and locking
    def lock(self, conn: Connection, pool_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The pools' rows, locked until commit in id order (SQLite has one writer anyway)."""
        ids = sorted(set(pool_ids))
        if not ids:
            return {}
        stmt = select(m.subnetpools).where(m.subnetpools.c.id.in_(ids)).order_by(m.subnetpools.c.id)
        if conn.dialect.name != "sqlite":
            stmt = stmt.with_for_update()
        return {r.id: dict(r._mapping) for r in conn.execute(stmt)}

    def default_pool(self, conn: Connection, version: int, ctx: Context | None = None) -> str:
        """The IP version's default pool, if the caller may use it (Neutron looks among the pools it sees)."""
        d, sp = m.default_subnetpools.c, m.subnetpools.c
        found = conn.execute(select(sp.id, sp.project_id, sp.shared)
                             .join(m.default_subnetpools, d.subnetpool_id == sp.id)
                             .where(d.ip_version == version)).first()
        if found is None or not accessible(conn, "subnetpool", dict(found._mapping), ctx):
            raise BadRequest(f"No default subnetpool found for IPv{version}")
        return str(found.id)

    def default_pools(self, conn: Connection) -> list[dict[str, Any]]:
        """The default pools, IPv4 first: auto-allocated topologies take their subnets from them."""
        d = m.default_subnetpools.c
        return [{"id": pool_id, "ip_version": version}
                for version, pool_id in conn.execute(select(d.ip_version, d.subnetpool_id).order_by(d.ip_version))]

    def subnet_request(self, conn: Connection, pool: dict[str, Any]) -> dict[str, Any]:
        """A subnet of the pool's default prefix length."""
        return {"subnetpool_id": pool["id"]}

    @staticmethod
    def _claim_default(conn: Connection, version: int, pool_id: str) -> None:
        """Make the pool its IP version's default; the key of default_subnetpools admits one, even when two
        requests race (the loser gets Neutron's error)."""
        if not insert_if_absent(conn, m.default_subnetpools, {"ip_version": version, "subnetpool_id": pool_id}):
            raise InvalidInput("A default subnetpool for this IP family has already been set. Only one default "
                               "may exist per IP family")

    @staticmethod
    def _release_default(conn: Connection, pool_id: str) -> None:
        conn.execute(delete(m.default_subnetpools).where(m.default_subnetpools.c.subnetpool_id == pool_id))

    def _check_scope(self, conn: Connection, pool_id: str, scope_id: str | None, prefixes: list[str],
                     version: int, ctx: Context | None) -> None:
        """A pool may join a scope it can use, of its IP version, whose other pools' prefixes it does not
        overlap (Neutron's _validate_address_scope_id)."""
        if scope_id is None:
            return
        scope = load_scope(conn, scope_id, ctx)  # the caller's, shared with it (RBAC), or an admin's call
        if not accessible(conn, "address_scope", scope, ctx):
            raise BadRequest(f"Illegal subnetpool association: subnetpool {pool_id} cannot be associated with "
                             f"address scope {scope_id}.", type="IllegalSubnetPoolAssociationToAddressScope")
        if scope["ip_version"] != version:
            raise BadRequest(f"Illegal subnetpool association: subnetpool {pool_id} cannot associate with address "
                             f"scope {scope_id} because subnetpool ip_version is not {scope['ip_version']}.",
                             type="IllegalSubnetPoolIpVersionAssociationToAddressScope")
        sp = m.subnetpools.c
        mine = netaddr.IPSet(prefixes)
        for other_id, other in conn.execute(select(sp.id, sp.prefixes).where(sp.address_scope_id == scope_id)):
            if other_id != pool_id and netaddr.IPSet(other) & mine:
                raise Conflict("Failed to associate address scope: subnetpools within an address scope must have "
                               "unique prefixes.", type="AddressScopePrefixConflict")

    # ---------------------------------------------------------------- create, update, delete
    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            pool = read_pool(item)
            row = common.standard_row(item)
            self._check_scope(conn, row["id"], pool["address_scope_id"], pool["prefixes"], pool["ip_version"], ctx)
            row.update({k: pool[k] for k in ("ip_version", "prefixes", "default_prefixlen", "min_prefixlen",
                                             "max_prefixlen", "default_quota", "is_default", "shared",
                                             "address_scope_id")})
            conn.execute(insert(m.subnetpools).values(**row))
            if row["shared"]:  # the flag is a wildcard grant, refused as one (Neutron makes it as a policy)
                reason = pool_scope_refusal(conn, row["id"], WILDCARD, ctx)
                if reason is not None:
                    raise refused(row["id"], reason)
                share(conn, self.quotas, "subnetpool", row["id"], row["project_id"])
            if pool["is_default"]:
                self._claim_default(conn, pool["ip_version"], row["id"])
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or []))})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        merged = {**orig, **{k: int(orig[k]) for k in PREFIXLENS}, **changes}
        if "prefixes" in changes:
            if not netaddr.IPSet(orig["prefixes"]).issubset(netaddr.IPSet(changes["prefixes"] or [])):
                raise BadRequest("Illegal update to prefixes: Existing prefixes must be a subset of the new "
                                 "prefixes.", type="IllegalSubnetPoolPrefixUpdate")
        pool = read_pool(merged)
        if pool["ip_version"] != orig["ip_version"]:
            raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.", type="PrefixVersionMismatch")
        if pool["is_default"] and not orig["is_default"]:
            self._claim_default(conn, pool["ip_version"], orig["id"])
        elif orig["is_default"] and not pool["is_default"]:
            self._release_default(conn, orig["id"])
        if orig["address_scope_id"] and ctx is not None and not ctx.is_admin:
            owner = conn.execute(select(m.address_scopes.c.project_id)
                                 .where(m.address_scopes.c.id == orig["address_scope_id"])).scalar()
            if owner != ctx.project_id:
                raise BadRequest(f"Illegal subnetpool update : subnetpool {orig['id']} cannot be updated when "
                                 f"associated with shared address scope {orig['address_scope_id']}.",
                                 type="IllegalSubnetPoolUpdate")
        scope_changed = pool["address_scope_id"] != orig["address_scope_id"]
        if scope_changed or "prefixes" in changes:
            self._check_scope(conn, orig["id"], pool["address_scope_id"], pool["prefixes"], pool["ip_version"], ctx)
        if scope_changed:
            self._check_network_affinity(conn, orig["id"], orig["ip_version"])
        values = {k: pool[k] for k in changes if k in m.subnetpools.c}
        if "prefixes" in changes:
            values["prefixes"] = pool["prefixes"]
        for key in ("default_prefixlen", "min_prefixlen", "max_prefixlen"):
            if merged[key] is AUTO or key not in changes:
                continue
            values[key] = pool[key]
        common.bump(conn, m.subnetpools, orig["id"], values, expect_revision)
        if scope_changed:
            self._scope_moved(conn, orig["id"])

    def _check_network_affinity(self, conn: Connection, pool_id: str, version: int) -> None:
        """Re-scoping a pool must not leave a network with subnets of one IP version in two scopes."""
        s = m.subnets.c
        nets = select(s.network_id).where(s.subnetpool_id == pool_id)
        stray = conn.execute(select(s.id).where(s.network_id.in_(nets), s.ip_version == version,
                                                 (s.subnetpool_id != pool_id) | s.subnetpool_id.is_(None))
                             .limit(1)).first()
        if stray is not None:
            raise BadRequest("Subnets of the same IP version on one network must be in one address scope.",
                             type="NetworkAddressScopeAffinityError")

    @staticmethod
    def _scope_moved(conn: Connection, pool_id: str) -> None:
        """Routers on the pool's subnets see another scope: hint them (their agents pull the new view)."""
        s, p, rp = m.subnets.c, m.ip_allocations.c, m.router_ports.c
        routers = conn.execute(select(rp.router_id).distinct()
                               .join(m.ip_allocations, p.port_id == rp.port_id)
                               .join(m.subnets, s.id == p.subnet_id)
                               .where(s.subnetpool_id == pool_id)).scalars().all()
        for router_id in sorted(routers):
            common.emit(conn, Hint("router", router_id, 0))

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        pid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.subnetpools, pid, {}, expect_revision)
        self.lock(conn, [pid])
        if conn.execute(select(m.subnets.c.id).where(m.subnets.c.subnetpool_id == pid).limit(1)).first():
            raise BadRequest("Unable to delete subnet pool: Subnet pool has existing allocations.",
                             type="SubnetPoolDeleteError")
        self._release_default(conn, pid)
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == pid))
        revoke_all(conn, self.quotas, "subnetpool", pid)
        conn.execute(delete(m.subnetpools).where(m.subnetpools.c.id == pid))

    # ---------------------------------------------------------------- prefix operations and onboarding
    def change_prefixes(self, conn: Connection, orig: dict[str, Any], body: Any, add: bool,
                        ctx: Context | None) -> dict[str, Any]:
        prefixes = _prefixes_body(body)
        pool = self.lock(conn, [orig["id"]])[orig["id"]]
        if any(netaddr.IPNetwork(p).version != pool["ip_version"] for p in prefixes):
            raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.", type="PrefixVersionMismatch")
        current = netaddr.IPSet(pool["prefixes"])
        if add:
            new = compact([*pool["prefixes"], *prefixes])
            self._check_scope(conn, pool["id"], pool["address_scope_id"], new, pool["ip_version"], ctx)
        else:
            removed = netaddr.IPSet(prefixes)
            in_use = netaddr.IPSet(cidr for cidr, _, _ in _allocated(conn, pool["id"]))
            if in_use & removed:
                raise BadRequest("Illegal update to prefixes: Cannot remove prefixes that are in use by allocated "
                                 "subnets.", type="IllegalSubnetPoolPrefixUpdate")
            left = current - removed
            left.compact()
            new = [str(c) for c in left.iter_cidrs()]
            if not new:
                raise BadRequest("Empty subnet pool prefix list.", type="EmptySubnetPoolPrefixList")
        if new != pool["prefixes"]:
            common.bump(conn, m.subnetpools, pool["id"], {"prefixes": new})
        return {"prefixes": new}

    def onboard(self, conn: Connection, orig: dict[str, Any], body: Any, ctx: Context | None) -> list[dict[str, str]]:
        """Adopt a network's subnets (of the pool's IP version) into the pool, adding their CIDRs to it."""
        network_id = body.get("network_id") if isinstance(body, dict) else None
        if not network_id:
            raise InvalidInput("network_id must be specified.")
        net = conn.execute(select(m.networks.c.id, m.networks.c.project_id, m.networks.c.shared)
                           .where(m.networks.c.id == str(network_id))).first()
        if net is None or not (ctx is None or ctx.is_admin or net.shared or net.project_id == ctx.project_id):
            raise NotFound(f"Network {network_id} could not be found.", type="NetworkNotFound")
        pool = self.lock(conn, [orig["id"]])[orig["id"]]
        s = m.subnets.c
        subnets = conn.execute(select(s.id, s.cidr, s.subnetpool_id).where(
            s.network_id == net.id, s.ip_version == pool["ip_version"]).order_by(s.created_at, s.id)).all()
        allocated = netaddr.IPSet(cidr for cidr, _, _ in _allocated(conn, pool["id"]))
        todo = [sub for sub in subnets if sub.subnetpool_id != pool["id"]]
        for sub in todo:
            if netaddr.IPSet([sub.cidr]) & allocated:
                raise BadRequest(f"Illegal subnetpool update : Onboarding subnet {sub.id}: {sub.cidr} conflicts "
                                 f"with allocated prefixes in subnet pool {pool['id']}.",
                                 type="IllegalSubnetPoolUpdate")
        new = compact([*pool["prefixes"], *(sub.cidr for sub in todo)])
        self._check_scope(conn, pool["id"], pool["address_scope_id"], new, pool["ip_version"], ctx)
        if todo:
            if new != pool["prefixes"]:
                common.bump(conn, m.subnetpools, pool["id"], {"prefixes": new})
            for sub in todo:
                common.bump(conn, m.subnets, sub.id, {"subnetpool_id": pool["id"]})
                common.emit(conn, Hint("subnet", sub.id, 0, net.id))
            if pool["address_scope_id"]:
                self._scope_moved(conn, pool["id"])
        return [{"id": sub.id, "cidr": sub.cidr} for sub in subnets]

    # ---------------------------------------------------------------- allocation (subnets.create)
    def allocate(self, conn: Connection, pool: dict[str, Any], item: dict[str, Any]) -> netaddr.IPNetwork:
        """The CIDR a new subnet takes from a locked pool: the given one if it is free and inside the pool,
        else the best-fitting free block of `prefixlen` (default_prefixlen when not given)."""
        version = pool["ip_version"]
        if item["ip_version"] != version:
            raise BadRequest(f"Cannot allocate IPv{item['ip_version']} subnet from IPv{version} subnet pool",
                             type="BadRequest")
        cidr = item["cidr"]
        prefixlen = netaddr.IPNetwork(cidr).prefixlen if cidr is not AUTO else item["prefixlen"]
        if prefixlen is AUTO:
            prefixlen = pool["default_prefixlen"]
        if prefixlen > pool["max_prefixlen"]:
            raise BadRequest(f"Unable to allocate subnet with prefix length {prefixlen}, maximum allowed prefix is "
                             f"{pool['max_prefixlen']}.", type="MaxPrefixSubnetAllocationError")
        if prefixlen < pool["min_prefixlen"]:
            raise BadRequest(f"Unable to allocate subnet with prefix length {prefixlen}, minimum allowed prefix is "
                             f"{pool['min_prefixlen']}.", type="MinPrefixSubnetAllocationError")
        allocated = _allocated(conn, pool["id"])
        self._check_quota(pool, allocated, item["project_id"], prefixlen)
        free = netaddr.IPSet(pool["prefixes"]) - netaddr.IPSet(c for c, _, _ in allocated)
        if cidr is not AUTO:
            want = netaddr.IPNetwork(cidr)
            if want not in free:
                raise BadRequest("Failed to allocate subnet: Cannot allocate requested subnet from the available "
                                 "set of prefixes.", type="SubnetAllocationError")
            return want
        # best fit: the smallest free block that holds the prefix, lowest address first
        for block in sorted(free.iter_cidrs(), key=lambda c: -c.prefixlen):
            if block.prefixlen <= prefixlen:
                return next(block.subnet(prefixlen))
        raise Conflict(f"Failed to allocate subnet: Insufficient prefix space to allocate subnet size /{prefixlen}.",
                       type="SubnetAllocationError")

    @staticmethod
    def _check_quota(pool: dict[str, Any], allocated: list[tuple[str, str, str]], project: str,
                     prefixlen: int) -> None:
        quota = pool["default_quota"]
        if not quota:  # as Neutron: no quota (None) and 0 both mean unlimited
            return
        unit = QUOTA_UNIT[pool["ip_version"]]
        used = sum(2 ** max(unit - netaddr.IPNetwork(c).prefixlen, 0) for c, owner, _ in allocated if owner == project)
        if used + 2 ** max(unit - prefixlen, 0) > quota:
            err = OverQuota("subnetpool")
            err.message = "Per-tenant subnet pool prefix quota exceeded."
            err.args = (err.message,)
            err.type = "SubnetPoolQuotaExceeded"
            raise err


def _prefixes_body(body: Any) -> list[str]:
    from fermion.validation import InvalidValue

    if not isinstance(body, dict) or "prefixes" not in body:
        raise BadRequest("Invalid request body: expected {\"prefixes\": [...]}")
    try:
        prefixes = SUBNETPOOL.attr("prefixes").convert(body["prefixes"])  # type: ignore[misc]
    except InvalidValue as err:
        raise BadRequest(f"Invalid input for prefixes. Reason: {err}.") from None
    if not prefixes:
        raise BadRequest("Empty subnet pool prefix list.", type="EmptySubnetPoolPrefixList")
    return list(prefixes)
