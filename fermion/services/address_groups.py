"""Address groups: named lists of CIDRs that security-group rules name as their remote.

Addresses are stored normalized (host bits cleared), one row each; the primary key makes adding one twice
impossible, even concurrently. A change of the addresses hints the security groups whose rules name the group,
so the agents update the elements of its nftables sets (and nothing else).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, insert, select

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import insert_if_absent
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.address_group import ADDRESS_GROUP, normalized
from fermion.services import common
from fermion.services.query import chunks
from fermion.services.quotas import QuotaService
from fermion.services.rbac import revoke_all
from fermion.services.rbac_shared import RbacSharedCollection
from fermion.services.security_group_rules import emit_group_hints

_a = m.address_group_addresses.c


def load_addresses(conn: Connection, group_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for part in chunks(list(group_ids)):
        for gid, address in conn.execute(select(_a.address_group_id, _a.address)
                                         .where(_a.address_group_id.in_(part))):
            out[gid].append(address)
    for v in out.values():
        v.sort()
    return out


class AddressGroupCollection(RbacSharedCollection):
    """shared is computed: granted to the caller's project or to all (rbac-address-group)."""

    def __init__(self) -> None:
        super().__init__(ADDRESS_GROUP, m.address_groups, "address_group")

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        addresses = load_addresses(conn, [i["id"] for i in items]) if items else {}
        for item in items:
            item["addresses"] = addresses.get(item["id"], [])
            item["shared"] = False  # until for_caller

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        for item, row in zip(items, inserted, strict=True):
            item["addresses"] = sorted(row["addresses"])
            item["shared"] = False


def _requested(body: Any) -> list[str]:
    """The normalized, deduplicated addresses of an add/remove_addresses body. As in Neutron the actions
    take any address netaddr reads (a bare address is a /32 or /128), not only the CIDRs a create takes."""
    if not isinstance(body, dict) or "addresses" not in body:
        raise BadRequest("Unable to find 'addresses' in request body")
    addresses = body["addresses"]
    if not isinstance(addresses, list) or len(addresses) > 10000:
        raise BadRequest(f"Invalid input for addresses. Reason: '{addresses}' is not a list.")
    out = set()
    for value in addresses:
        try:
            if not isinstance(value, str) or value != value.strip():
                raise ValueError(value)
            out.add(normalized(value))
        except (netaddr.AddrFormatError, ValueError, TypeError):
            raise BadRequest(f"invalid IPNetwork {value}", type="AddrFormatError") from None
    return sorted(out)


def groups_using(conn: Connection, address_group_id: str) -> list[str]:
    """The security groups with a rule whose remote is this address group."""
    r = m.securitygrouprules.c
    return list(conn.execute(select(r.security_group_id).where(r.remote_address_group_id == address_group_id)
                             .distinct()).scalars())


class AddressGroupService:
    def __init__(self, quotas: QuotaService) -> None:
        self.collection = AddressGroupCollection()
        self.quotas = quotas

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = common.standard_row(item)
            conn.execute(insert(m.address_groups).values(**row))
            addresses = sorted({normalized(a) for a in item.get("addresses") or []})
            if addresses:
                conn.execute(insert(m.address_group_addresses),
                             [{"address_group_id": row["id"], "address": a} for a in addresses])
            common.set_tags(conn, row["id"], item.get("tags") or [], fresh=True)
            rows.append({**row, "tags": sorted(set(item.get("tags") or [])), "addresses": addresses})
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        common.bump(conn, m.address_groups, orig["id"], changes, expect_revision)

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        gid = orig["id"]
        if expect_revision is not None:
            common.bump(conn, m.address_groups, gid, {}, expect_revision)
        r = m.securitygrouprules.c
        if conn.execute(select(r.id).where(r.remote_address_group_id == gid).limit(1)).first() is not None:
            raise Conflict(f"Address group {gid} is in use on one or more security group rules.",
                           type="AddressGroupInUse")
        conn.execute(delete(m.address_group_addresses).where(_a.address_group_id == gid))
        conn.execute(delete(m.tags).where(m.tags.c.resource_id == gid))
        revoke_all(conn, self.quotas, "address_group", gid)
        conn.execute(delete(m.address_groups).where(m.address_groups.c.id == gid))

    def add_addresses(self, conn: Connection, orig: dict[str, Any], body: Any) -> None:
        gid = orig["id"]
        wanted = _requested(body)
        present = [a for a in wanted if a in set(orig["addresses"])]
        if present:
            raise BadRequest(f"Addresses {present} already exist in the address group {gid}.",
                             type="AddressesAlreadyExist")
        taken = [a for a in wanted
                 if not insert_if_absent(conn, m.address_group_addresses, {"address_group_id": gid, "address": a})]
        if taken:  # added concurrently
            raise BadRequest(f"Addresses {taken} already exist in the address group {gid}.",
                             type="AddressesAlreadyExist")
        self._changed(conn, gid)

    def remove_addresses(self, conn: Connection, orig: dict[str, Any], body: Any) -> None:
        gid = orig["id"]
        wanted = _requested(body)
        missing = [a for a in wanted if a not in set(orig["addresses"])]
        if missing:
            raise NotFound(f"Addresses {missing} not found in the address group {gid}.",
                           type="AddressesNotFound")
        for part in chunks(wanted):
            conn.execute(delete(m.address_group_addresses).where(_a.address_group_id == gid, _a.address.in_(part)))
        self._changed(conn, gid)

    @staticmethod
    def _changed(conn: Connection, gid: str) -> None:
        common.bump(conn, m.address_groups, gid, {})
        emit_group_hints(conn, groups_using(conn, gid))
