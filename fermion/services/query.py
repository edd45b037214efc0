"""Reading collections: filters, tag filters, policy visibility, sorting and keyset pagination in SQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import True_

from fermion.db import models as m
from fermion.db.direct import Prepared
from fermion.policy import predicates as p
from fermion.resources.base import Resource
from fermion.services import rbac_access


@dataclass
class ListQuery:
    filters: dict[str, list[Any]] = field(default_factory=dict)
    fixed_ips: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    tags_any: list[str] = field(default_factory=list)
    not_tags: list[str] = field(default_factory=list)
    not_tags_any: list[str] = field(default_factory=list)
    sorts: list[tuple[str, bool]] = field(default_factory=list)  # (attribute, ascending)
    limit: int | None = None
    marker: str | None = None
    page_reverse: bool = False
    project_id: str | None = None  # the caller's project: filters on per-caller attributes (shared) need it


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}Z"


class Collection:
    """How one resource maps onto SQL. Subclasses add what is not a plain column."""

    def __init__(self, resource: Resource, table: Table) -> None:
        self.resource = resource
        self.table = table
        cols: dict[str, ColumnElement[Any]] = {}
        for attr in resource.attributes:
            if attr.column in table.c:
                cols[attr.name] = table.c[attr.column]
        if "project_id" in table.c:
            cols["tenant_id"] = table.c.project_id
        self.columns = cols
        self.plain = [(a.name, table.c[a.column]) for a in resource.attributes
                      if a.column in table.c and a.name not in ("created_at", "updated_at")]
        names = list(table.c.keys())
        self._index = {name: i for i, name in enumerate(names)}
        self._by_id_stmt = select(table).where(table.c.id == bindparam("b_id"))  # built once: see db/writes.py
        self._by_id = Prepared(self._by_id_stmt)

    # -- policy attributes a rule may name (field:networks:shared=True, %(network:tenant_id)s)
    def policy_column(self, attr: str) -> ColumnElement[Any] | None:
        if attr in ("project_id", "tenant_id"):
            return self.table.c.project_id
        if attr in ("network:project_id", "network:tenant_id") and "network_id" in self.table.c:
            return (select(m.networks.c.project_id)
                    .where(m.networks.c.id == self.table.c.network_id).scalar_subquery())
        return self.columns.get(attr)

    def policy_condition(self, attr: str, value: object, creds: dict[str, Any]) -> ColumnElement[bool] | None:
        """SQL for ``attr == value`` when the attribute depends on the caller, not on a column: a network's
        ``shared`` and ``router:external`` as the caller's project sees them through RBAC policies (a
        subnet's or port's through its network's). None: a plain column comparison."""
        if attr in ("shared", "router:external") and "network_id" in self.table.c:
            action = rbac_access.SHARED if attr == "shared" else rbac_access.EXTERNAL
            granted = self.table.c.network_id.in_(rbac_access.granted("network", action, creds.get("project_id")))
            return granted if value is True else not_(granted)
        return None

    def visibility(self, pred: p.Pred, creds: dict[str, Any]) -> ColumnElement[bool] | None:
        """The policy predicate as SQL; None when it cannot be expressed (checked in Python instead)."""
        try:
            return self._sql(pred.bind(creds), creds)
        except _NoSQL:
            return None

    def _sql(self, pred: p.Pred, creds: dict[str, Any]) -> ColumnElement[bool]:
        if isinstance(pred, p.Const):
            return true() if pred.value else false()
        if isinstance(pred, p.Eq):
            attr = _norm(pred.attr)
            if isinstance(pred.value, bool):
                cond = self.policy_condition(attr, pred.value, creds)
                if cond is not None:
                    return cond
            if attr == "network:project_id" and "network_id" in self.table.c:
                # one uncorrelated semi-join rather than a subquery per row
                owned = select(m.networks.c.id).where(m.networks.c.project_id == str(pred.value))
                return self.table.c.network_id.in_(owned)
            col = self.policy_column(attr)
            if col is None:
                return false()
            if isinstance(pred.value, bool):
                return col.is_(pred.value)
            return col == str(pred.value)
        if isinstance(pred, p.And):
            return and_(*(self._sql(i, creds) for i in pred.items))
        if isinstance(pred, p.Or):
            return or_(*(self._sql(i, creds) for i in pred.items))
        if isinstance(pred, p.Not):
            return not_(self._sql(pred.item, creds))
        raise _NoSQL(pred)

    def for_caller(self, conn: Connection, items: list[dict[str, Any]], project_id: str | None) -> None:
        """Adjust attributes that read differently per caller (``shared`` through RBAC); no-op by default."""

    # -- reading
    def select_rows(self) -> Select[Any]:
        return select(self.table)

    def where(self, q: ListQuery) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        for name, values in q.filters.items():
            col = self.columns[name]
            if len(values) == 1:
                conds.append(col == values[0] if values[0] is not None else col.is_(None))
            else:
                conds.append(col.in_(values))
        tag_col = m.tags.c
        rid = self.table.c.id
        for t in q.tags:
            conds.append(rid.in_(select(tag_col.resource_id).where(tag_col.tag == t)))
        if q.tags_any:
            conds.append(rid.in_(select(tag_col.resource_id).where(tag_col.tag.in_(q.tags_any))))
        if q.not_tags:
            has_all = (select(tag_col.resource_id).where(tag_col.tag.in_(q.not_tags))
                       .group_by(tag_col.resource_id)
                       .having(func.count() == len(set(q.not_tags))))
            conds.append(rid.not_in(has_all))
        if q.not_tags_any:
            conds.append(rid.not_in(select(tag_col.resource_id).where(tag_col.tag.in_(q.not_tags_any))))
        return conds

    def page(self, conn: Connection, q: ListQuery, visible: ColumnElement[bool] | None,
             post_filter: Callable[[dict[str, Any]], bool] | None = None) -> tuple[list[dict[str, Any]], bool]:
        """Rows as dicts and whether more rows follow the page."""
        stmt = self.select_rows()
        conds = self.where(q)
        if visible is not None:
            conds.append(visible)
        sorts = list(q.sorts)
        if not any(name == "id" for name, _ in sorts):
            sorts.append(("id", sorts[-1][1] if sorts else True))
        if q.page_reverse:
            sorts = [(name, not asc) for name, asc in sorts]
        if q.marker is not None:
            marker_row = conn.execute(select(self.table).where(self.table.c.id == q.marker)).first()
            if marker_row is not None:
                conds.append(self._after(marker_row, sorts))
        if conds:
            stmt = stmt.where(and_(*conds))
        stmt = stmt.order_by(*[(self.columns[n].asc() if asc else self.columns[n].desc()) for n, asc in sorts])
        if q.limit and post_filter is None:
            stmt = stmt.limit(q.limit + 1)
        rows = conn.execute(stmt).all()
        items = self.to_dicts(conn, rows)
        if post_filter is not None:
            items = [i for i in items if post_filter(i)]
        more = bool(q.limit) and len(items) > (q.limit or 0)
        if q.limit:
            items = items[: q.limit]
        if q.page_reverse:
            items.reverse()
        return items, more

    def _after(self, marker: Any, sorts: Sequence[tuple[str, bool]]) -> ColumnElement[bool]:
        mapping = marker._mapping
        ors = []
        for i, (name, asc) in enumerate(sorts):
            col = self.columns[name]
            value = mapping[col.name]
            eqs = [self.columns[n] == mapping[self.columns[n].name] for n, _ in sorts[:i]]
            step = col > value if asc else col < value
            ors.append(and_(*eqs, step))
        return or_(*ors)

    def get(self, conn: Connection, ident: str, visible: ColumnElement[bool] | None = None,
            for_update: bool = False) -> dict[str, Any] | None:
        lock = for_update and conn.dialect.name != "sqlite"
        if (visible is None or isinstance(visible, True_)) and not lock:
            row = self._by_id.first(conn, {"b_id": ident})
        else:
            stmt = self._by_id_stmt
            if visible is not None and not isinstance(visible, True_):
                stmt = stmt.where(visible)
            if lock:
                stmt = stmt.with_for_update()
            row = conn.execute(stmt, {"b_id": ident}).first()
        if row is None:
            return None
        return self.to_dicts(conn, [row])[0]

    def fresh(self, conn: Connection, inserted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """API dicts for rows this transaction just inserted, from their values (tags included)."""
        names = list(self.table.c.keys())
        rows = [tuple(map(r.get, names)) for r in inserted]
        items = self.to_dicts(conn, rows, tags={r["id"]: r["tags"] for r in inserted}, complete=False)
        self.complete_fresh(conn, rows, items, inserted)
        return items

    def complete_fresh(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]],
                       inserted: list[dict[str, Any]]) -> None:
        """Fill what is not a plain column for just-inserted rows; the create may have left it in `inserted`
        so that nothing is read back."""
        self.complete(conn, rows, items)

    def to_dicts(self, conn: Connection, rows: Sequence[Any], tags: dict[str, list[str]] | None = None,
                 complete: bool = True) -> list[dict[str, Any]]:
        if tags is None:
            tags = load_tags(conn, [r[0] for r in rows])
        out = self.dicts(rows, tags)
        if complete:
            self.complete(conn, rows, out)
        return out

    def dicts(self, rows: Sequence[Any], tags: dict[str, list[str]]) -> list[dict[str, Any]]:
        """The rows' plain attributes, timestamps and tags."""
        out: list[dict[str, Any]] = []
        index = self._index
        # the per-row work is the cost of a large list: one itemgetter and one zip (tenant_id included)
        names = [name for name, _ in self.plain] + ["tenant_id"]
        pick = itemgetter(*(index[col.name] for _, col in self.plain), index["project_id"])
        created, updated = index["created_at"], index["updated_at"]
        stamps: dict[datetime | None, str | None] = {}  # rows made together share their timestamps
        stamp, tag_of, append = stamps.get, tags.get, out.append
        for r in rows:
            d = dict(zip(names, pick(r), strict=False))  # same length by construction
            ts = r[created]
            text = stamp(ts)
            if text is None:
                text = stamps[ts] = iso(ts)
            d["created_at"] = text
            ts = r[updated]
            text = stamp(ts)
            if text is None:
                text = stamps[ts] = iso(ts)
            d["updated_at"] = text
            d["tags"] = tag_of(r[0]) or []
            append(d)
        return out

    def complete(self, conn: Connection, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        """Fill attributes that are not plain columns."""


class _NoSQL(Exception):
    pass


def _norm(attr: str) -> str:
    return attr.replace("tenant_id", "project_id")


def chunks(ids: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


_t = m.tags.c
_TAGS_OF = Prepared(select(_t.resource_id, _t.tag).where(_t.resource_id.in_(bindparam("b_ids", expanding=True))))


def load_tags(conn: Connection, ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    if not ids:
        return out
    if len(ids) > 2000:
        # large pages: one scan beats thousands of bound parameters
        rows = conn.execute(select(m.tags.c.resource_id, m.tags.c.tag)).all()
        wanted = set(ids)
        for rid, tag in rows:
            if rid in wanted:
                out[rid].append(tag)
    else:
        for part in chunks(ids):
            for rid, tag in _TAGS_OF.rows(conn, {"b_ids": part}):
                out[rid].append(tag)
    for v in out.values():
        v.sort()
    return out
