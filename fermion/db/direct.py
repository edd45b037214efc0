"""Hot statements run straight on the driver's cursor.

For the small statements a request makes, SQLAlchemy's per-execution work (execution context, result
metadata, the driver building column descriptions) costs as much CPU as the statement itself: about
140 against 70 microseconds for a one-row SELECT on PostgreSQL. A Prepared statement is compiled once
per dialect and parameter shape, keeps SQLAlchemy's bind and result processors, and runs on the
DBAPI cursor inside the caller's SQLAlchemy transaction; driver errors go through SQLAlchemy's own
handler, so they arrive wrapped (IntegrityError, invalidated connections) exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import BindParameter, Connection, Table
from sqlalchemy.sql import visitors
from sqlalchemy.sql.dml import Insert

_MAX_SHAPES = 64  # IN-lists of many lengths: past this many plans, build each one afresh


class _Param:
    """Stands in for a caller's value while a plan is built, to learn where each value goes."""

    def __init__(self, key: str, index: int | None = None) -> None:
        self.key = key
        self.index = index


@dataclass(frozen=True)
class _Plan:
    sql: str
    positional: bool
    names: tuple[str, ...]
    # per bound name: (caller key, list index or None) or a fixed value
    sources: tuple[tuple[str, int | None] | tuple[None, Any], ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    # when every value is a caller's key as given (no IN-list, no fixed value): one itemgetter picks them all
    # (a wide INSERT's row: a loop per column costs more than the statement), then the processors run
    pick: Callable[[Mapping[str, Any]], Any] | None = None
    converts: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    def args(self, params: Mapping[str, Any]) -> Any:
        pick = self.pick
        if pick is not None:
            got = pick(params)
            if len(self.names) == 1:
                got = (got,)
            if self.converts:
                got = list(got)
                for i, convert in self.converts:
                    got[i] = convert(got[i])
            return tuple(got) if self.positional else dict(zip(self.names, got, strict=True))
        values = []
        for (key, where), proc in zip(self.sources, self.processors, strict=True):
            if key is None:
                value = where
            elif where is None:
                value = params[key]
            else:
                value = params[key][where]
            values.append(value if proc is None else proc(value))
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))


class Prepared:
    """A Core statement run on the DBAPI cursor. Parameters are passed by their bindparam keys (or, for an
    INSERT, by column keys); a list value fills an expanding IN."""

    def __init__(self, stmt: Any) -> None:
        self.stmt = stmt
        self.columns = tuple(c.key for c in stmt.exported_columns) if _returns_rows(stmt) else ()
        # keys whose list value fills an IN (any other list is a value, e.g. for a JSON column)
        self.lists = frozenset(el.key for el in visitors.iterate(stmt)
                               if isinstance(el, BindParameter) and el.expanding)
        self._plans: dict[tuple[str, tuple[Any, ...]], _Plan] = {}
        self._results: dict[str, tuple[Callable[[Any], Any] | None, ...] | None] = {}

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        cur = self._execute(conn, params or {})
        rows = cur.fetchall()
        cur.close()
        procs = self._result_processors(conn)
        if procs is None:
            return rows if isinstance(rows, list) else list(rows)  # PyMySQL gives a tuple
        return [tuple(v if p is None else p(v) for p, v in zip(procs, r, strict=True)) for r in rows]

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        rows = self.rows(conn, params)
        return rows[0] if rows else None

    def dicts(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows(conn, params)]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement that returns no rows; the driver's row count."""
        cur = self._execute(conn, params)
        count = int(cur.rowcount)
        cur.close()
        return count

    def run_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if len(rows) == 1:  # psycopg's executemany enters pipeline mode: two more messages for one row
            self.run(conn, rows[0])
        elif rows:
            plan = self._plan(conn, rows[0])
            _on_cursor(conn, "executemany", plan.sql, [plan.args(r) for r in rows]).close()

    def _execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        plan = self._plan(conn, params)
        return _on_cursor(conn, "execute", plan.sql, plan.args(params))

    def _plan(self, conn: Connection, params: Mapping[str, Any]) -> _Plan:
        dialect = conn.dialect
        lists = self.lists
        shape: tuple[Any, ...]
        if lists:
            shape = tuple(sorted((k, len(v) if k in lists else -1) for k, v in params.items()))
        else:
            shape = tuple(sorted(params))
        plan = self._plans.get((dialect.name, shape))
        if plan is None:
            plan = _build(self.stmt, conn, params, lists)
            if len(self._plans) < _MAX_SHAPES:
                self._plans[(dialect.name, shape)] = plan
        return plan

    def _result_processors(self, conn: Connection) -> tuple[Callable[[Any], Any] | None, ...] | None:
        name = conn.dialect.name
        if name not in self._results:
            procs = tuple(c.type.dialect_impl(conn.dialect).result_processor(conn.dialect, None)
                          for c in self.stmt.exported_columns)
            self._results[name] = procs if any(p is not None for p in procs) else None
        return self._results[name]


def _on_cursor(conn: Connection, method: str, sql: str, args: Any) -> Any:
    if not conn.in_transaction():
        conn.begin()  # what SQLAlchemy's autobegin does on a first execute, so commit() still commits
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        getattr(cur, method)(sql, args)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's handler wraps or re-raises it
        conn._handle_dbapi_exception(err, sql, args, cur, None)
    return cur


def _returns_rows(stmt: Any) -> bool:
    return not isinstance(stmt, Insert) or bool(stmt._returning)


def _build(stmt: Any, conn: Connection, params: Mapping[str, Any], lists: frozenset[str]) -> _Plan:
    dialect = conn.dialect
    sample: dict[str, Any] = {}
    for key, value in params.items():
        if key in lists:
            sample[key] = [_Param(key, i) for i in range(len(value))]
        else:
            sample[key] = _Param(key)
    table: Any = stmt.table if isinstance(stmt, Insert) else None
    kw = {"column_keys": list(params)} if table is not None else {}
    compiled = stmt.compile(dialect=dialect, **kw)
    state = compiled.construct_expanded_state(sample)
    names = tuple(state.positiontup) if state.positiontup is not None else tuple(state.parameters)
    sources: list[tuple[str, int | None] | tuple[None, Any]] = []
    for name in names:
        value = state.parameters[name]
        if isinstance(value, _Param):
            sources.append((value.key, value.index))
        else:
            sources.append((None, _default(table, name) if value is None else value))
    # the compiled statement's processors (JSON, dates...), and those of the names an IN-list expanded to
    known = {**compiled._bind_processors, **state.processors}
    processors = tuple(known.get(name) for name in names)
    pick = None
    if names and all(key is not None and where is None for key, where in sources):
        pick = itemgetter(*(key for key, _ in sources))
    converts = tuple((i, proc) for i, proc in enumerate(processors) if proc is not None)
    return _Plan(state.statement, dialect.positional, names, tuple(sources), processors, pick, converts)


def _default(table: Table | None, name: str) -> Any:
    """The scalar Python-side default of an INSERT column the caller left out (SQLAlchemy fills these in
    its execution context, which this path skips)."""
    if table is None or name not in table.c:
        return None
    default = table.c[name].default
    if default is None:
        return None
    if not default.is_scalar:
        raise ValueError(f"{table.name}.{name} has a computed default; pass it explicitly")
    return default.arg  # type: ignore[attr-defined]
