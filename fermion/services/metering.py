"""Metering (Neutron's metering plugin): labels and their rules, the labels each router's L3 agent counts for,
and the counters the agents report.

A label applies to every router of its project, a shared label to every router. Each L3 agent counts
packets and bytes per (router, label) in the router's namespace and reports them cumulatively since an
*epoch* (the counters' table instance there). The server keeps, per (label, router, host), the current
epoch's counts and what earlier epochs had counted, so a rebuilt namespace or a restarted agent never makes
a label's total go backwards or count twice."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import netaddr
from sqlalchemy import Connection, delete, func, insert, or_, select, update

from fermion.context import Context
from fermion.db import models as m
from fermion.db.writes import new_id
from fermion.errors import BadRequest, Conflict, NotFound
from fermion.resources.metering import METERING_LABEL, METERING_LABEL_RULE, PREFIX_FIELDS
from fermion.rpc.contracts import Hint, MeteringCounter, MeteringLabel, MeteringRule, Router
from fermion.services import common
from fermion.services.flavors import PlainCollection
from fermion.services.query import chunks

_l, _r, _c = m.meteringlabels.c, m.meteringlabelrules.c, m.meteringcounters.c


class _WithTenant(PlainCollection):
    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        for item in items:
            item["tenant_id"] = item["project_id"]


def label_not_found(ident: str) -> NotFound:
    return NotFound(f"Metering label '{ident}' does not exist.", type="MeteringLabelNotFound")


def load_label(conn: Connection, label_id: str) -> dict[str, Any]:
    row = conn.execute(select(m.meteringlabels).where(_l.id == label_id)).first()
    if row is None:
        raise label_not_found(label_id)
    return dict(row._mapping)


def notify_routers(conn: Connection, labels: Iterable[dict[str, Any]]) -> None:
    """A hint for each router the labels apply to, to each L3 agent hosting it (they pull the labels with
    the router). Router revisions are left alone, as Neutron does."""
    projects = {x["project_id"] for x in labels if not x["shared"]}
    shared = any(x["shared"] for x in labels)
    if not shared and not projects:
        return
    rt, b, a = m.routers.c, m.router_l3_agents.c, m.agents.c
    stmt = (select(rt.id, rt.revision_number, a.host).join(m.router_l3_agents, b.router_id == rt.id)
            .join(m.agents, a.id == b.l3_agent_id))
    if not shared:
        stmt = stmt.where(rt.project_id.in_(sorted(projects)))
    for router_id, revision, host in conn.execute(stmt):
        common.emit(conn, Hint("router", router_id, revision, None, host))


class MeteringLabelService:
    def __init__(self) -> None:
        self.collection = _WithTenant(METERING_LABEL, m.meteringlabels)

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        for item in items:
            row = {"id": new_id(), "project_id": item["project_id"], "name": item["name"],
                   "description": item["description"], "shared": bool(item["shared"])}
            conn.execute(insert(m.meteringlabels).values(**row))
            rows.append(row)
        notify_routers(conn, rows)
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        """Nothing of a label is updatable (as in Neutron)."""

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        notify_routers(conn, [orig])
        conn.execute(delete(m.meteringcounters).where(_c.label_id == orig["id"]))
        conn.execute(delete(m.meteringlabelrules).where(_r.metering_label_id == orig["id"]))
        conn.execute(delete(m.meteringlabels).where(_l.id == orig["id"]))


def _check_address(rule: dict[str, Any], name: str) -> None:
    value = rule.get(name)
    if value:
        try:
            ipaddress.ip_interface(value)
        except ValueError as err:
            raise BadRequest(f"{name}: {value} is invalid [{err}].", type="Invalid") from None


def check_rule(rule: dict[str, Any]) -> None:
    """Neutron's rules on a rule's prefixes: valid addresses, remote_ip_prefix not mixed with the source and
    destination fields, at least one of the three."""
    for name in PREFIX_FIELDS:
        _check_address(rule, name)
    if rule.get("remote_ip_prefix") and (rule.get("source_ip_prefix") or rule.get("destination_ip_prefix")):
        raise BadRequest("Cannot use 'remote-ip-prefix' in conjunction with 'source-ip-prefix' or "
                         "'destination-ip-prefix'.", type="Invalid")
    if not any(rule.get(name) for name in PREFIX_FIELDS):
        raise BadRequest("You must define at least one of the following parameters 'remote_ip_prefix', or "
                         "'source_ip_prefix' or 'destination_ip_prefix'.", type="Invalid")


def _spelt(value: str | None) -> str | None:
    """How Neutron stores a prefix (netaddr's spelling: 10.0.0.1 -> 10.0.0.1/32; host bits kept)."""
    return str(netaddr.IPNetwork(value)) if value else None


def _check_overlap(conn: Connection, rule: dict[str, Any]) -> None:
    """As Neutron: a label's remote_ip_prefix rules of one direction and kind (excluded or not) may not
    overlap."""
    new = rule.get("remote_ip_prefix")
    if not new:
        return
    mine = netaddr.IPSet([new])
    for (other,) in conn.execute(select(_r.remote_ip_prefix).where(
            _r.metering_label_id == rule["metering_label_id"], _r.direction == rule["direction"],
            _r.excluded.is_(bool(rule["excluded"])), _r.remote_ip_prefix.is_not(None))):
        if netaddr.IPSet([other]) & mine:
            raise Conflict(f"Metering label rule with remote_ip_prefix '{new}' overlaps another.",
                           type="MeteringLabelRuleOverlaps")


class MeteringRuleService:
    def __init__(self) -> None:
        self.collection = _WithTenant(METERING_LABEL_RULE, m.meteringlabelrules)

    def create(self, conn: Connection, items: list[dict[str, Any]],
               ctx: Context | None = None) -> list[dict[str, Any]]:
        rows = []
        labels: dict[str, dict[str, Any]] = {}
        for item in items:
            check_rule(item)
            label = labels.get(item["metering_label_id"]) or load_label(conn, item["metering_label_id"])
            labels[label["id"]] = label
            _check_overlap(conn, item)
            row = {"id": new_id(), "metering_label_id": label["id"], "project_id": label["project_id"],
                   "direction": item["direction"], "excluded": bool(item["excluded"]),
                   **{name: _spelt(item.get(name)) for name in PREFIX_FIELDS}}
            conn.execute(insert(m.meteringlabelrules).values(**row))
            rows.append(row)
        notify_routers(conn, labels.values())
        return rows

    def update(self, conn: Connection, orig: dict[str, Any], changes: dict[str, Any],
               expect_revision: int | None, ctx: Context | None = None) -> None:
        """The source and destination prefixes are updatable (metering_source_and_destination_fields)."""
        if not changes:
            return
        check_rule({**orig, **changes})
        conn.execute(update(m.meteringlabelrules).where(_r.id == orig["id"])
                     .values(**{k: _spelt(v) for k, v in changes.items()}))
        notify_routers(conn, [load_label(conn, orig["metering_label_id"])])

    def delete(self, conn: Connection, orig: dict[str, Any], expect_revision: int | None,
               ctx: Context | None = None) -> None:
        conn.execute(delete(m.meteringlabelrules).where(_r.id == orig["id"]))
        notify_routers(conn, [load_label(conn, orig["metering_label_id"])])


# ---------------------------------------------------------------- the L3 view
def router_labels(conn: Connection, routers: dict[str, str]) -> dict[str, list[MeteringLabel]]:
    """The labels of each router (id -> its project): its project's and the shared ones, with their rules.
    Two reads whatever the number of routers."""
    if not routers:
        return {}
    projects = sorted(set(routers.values()))
    labels = conn.execute(select(_l.id, _l.project_id, _l.shared)
                          .where(or_(_l.shared.is_(True), _l.project_id.in_(projects))).order_by(_l.id)).all()
    if not labels:
        return {}
    rules: dict[str, list[MeteringRule]] = defaultdict(list)
    for part in chunks([x.id for x in labels]):
        for r in conn.execute(select(m.meteringlabelrules).where(_r.metering_label_id.in_(part)).order_by(_r.id)):
            rules[r.metering_label_id].append(MeteringRule(
                direction=r.direction, excluded=bool(r.excluded), remote_ip_prefix=r.remote_ip_prefix,
                source_ip_prefix=r.source_ip_prefix, destination_ip_prefix=r.destination_ip_prefix))
    out: dict[str, list[MeteringLabel]] = {}
    for router_id, project in routers.items():
        mine = [MeteringLabel(id=x.id, rules=rules.get(x.id, [])) for x in labels
                if x.shared or x.project_id == project]
        if mine:
            out[router_id] = mine
    return out


def with_labels(conn: Connection, routers: list[Router], projects: dict[str, str]) -> list[Router]:
    """The routers of an L3 view with their metering labels (projects: router id -> its project)."""
    found = router_labels(conn, projects)
    return [dataclasses.replace(r, metering_labels=found[r.id]) if r.id in found else r for r in routers]


# ---------------------------------------------------------------- counters
def apply_report(conn: Connection, host: str, counters: Sequence[MeteringCounter]) -> int:
    """Take an agent's cumulative counts. Per (label, router, host): the same epoch moves the counts on (a
    count lower than the last one is a restart the agent missed: counted as a new epoch); a new epoch adds
    the last counts to the base. Labels deleted meanwhile are ignored. Returns the rows changed."""
    if not counters:
        return 0
    ids = sorted({c.label_id for c in counters})
    existing: set[str] = set()
    have: dict[tuple[str, str], Any] = {}
    for part in chunks(ids):
        existing.update(conn.scalars(select(_l.id).where(_l.id.in_(part))))
        for row in conn.execute(select(m.meteringcounters).where(_c.label_id.in_(part), _c.host == host)):
            have[(row.label_id, row.router_id)] = row
    now = common.now()
    changed = 0
    for c in counters:
        if c.label_id not in existing:
            continue
        old = have.get((c.label_id, c.router_id))
        if old is None:
            conn.execute(insert(m.meteringcounters).values(
                label_id=c.label_id, router_id=c.router_id, host=host, epoch=c.epoch, packets=c.packets,
                bytes=c.bytes, base_packets=0, base_bytes=0, updated_at=now))
            changed += 1
            continue
        if old.epoch == c.epoch and c.packets >= old.packets and c.bytes >= old.bytes:
            if (c.packets, c.bytes) == (old.packets, old.bytes):
                continue
            values: dict[str, Any] = {"packets": c.packets, "bytes": c.bytes}
        else:  # counting restarted: what the last epoch counted joins the base
            values = {"epoch": c.epoch, "packets": c.packets, "bytes": c.bytes,
                      "base_packets": old.base_packets + old.packets, "base_bytes": old.base_bytes + old.bytes}
        conn.execute(update(m.meteringcounters).where(_c.label_id == c.label_id, _c.router_id == c.router_id,
                                                      _c.host == host).values(**values, updated_at=now))
        changed += 1
    return changed


def label_counters(conn: Connection, label_id: str) -> dict[str, Any]:
    """A label's totals and its share per router (summed over the hosts that counted for it)."""
    routers = []
    total_packets = total_bytes = 0
    for router_id, packets, nbytes, last in conn.execute(
            select(_c.router_id, func.sum(_c.base_packets + _c.packets), func.sum(_c.base_bytes + _c.bytes),
                   func.max(_c.updated_at)).where(_c.label_id == label_id).group_by(_c.router_id)
            .order_by(_c.router_id)):
        routers.append({"router_id": router_id, "packets": int(packets), "bytes": int(nbytes),
                        "updated_at": last.strftime("%Y-%m-%dT%H:%M:%SZ")})
        total_packets += int(packets)
        total_bytes += int(nbytes)
    return {"metering_label_id": label_id, "packets": total_packets, "bytes": total_bytes, "routers": routers}


def all_counters(conn: Connection) -> list[tuple[str, str, int, int]]:
    """(label, router, packets, bytes) for every label and router counted: what /metrics exports."""
    return [(lab, router, int(p), int(b)) for lab, router, p, b in conn.execute(
        select(_c.label_id, _c.router_id, func.sum(_c.base_packets + _c.packets),
               func.sum(_c.base_bytes + _c.bytes)).group_by(_c.label_id, _c.router_id)
        .order_by(_c.label_id, _c.router_id))]
