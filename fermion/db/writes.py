"""Small write helpers shared by the services and the ML2 drivers."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from fermion.db.direct import Prepared

# (dialect, table) -> the statement; built once because building and hashing a statement costs more
# than executing it (the values go in as parameters)
_IF_ABSENT: dict[tuple[str, str], Prepared] = {}
_MANY_IF_ABSENT: dict[tuple[str, str], Prepared] = {}


def new_id() -> str:
    return str(uuid.uuid4())


def _if_absent(dialect: str, table: Table) -> Prepared:
    prepared = _IF_ABSENT.get((dialect, table.name))
    if prepared is None:
        if dialect in ("postgresql", "sqlite"):
            # rowcount is not reliable through every driver here; RETURNING says whether a row went in
            make = pg_insert if dialect == "postgresql" else sqlite_insert
            key = list(table.primary_key.columns)[0]
            prepared = Prepared(make(table).on_conflict_do_nothing().returning(key))
        else:
            prepared = Prepared(insert(table).prefix_with("IGNORE"))
        _IF_ABSENT[(dialect, table.name)] = prepared
    return prepared


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT that yields False instead of failing when a unique key is taken.

    No savepoint is needed (two fewer round trips than catching IntegrityError), and on PostgreSQL a
    concurrent uncommitted insert of the same key is waited for, so a loser always learns it lost.
    """
    dialect = conn.dialect.name
    stmt = _if_absent(dialect, table)
    if dialect in ("postgresql", "sqlite"):
        return stmt.first(conn, values) is not None
    return stmt.run(conn, values) == 1


def insert_many_if_absent(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """insert_if_absent for many rows in one round trip, in the order given (which is the order their unique
    keys are locked in). Says nothing of which rows went in: the caller reads them back."""
    dialect = conn.dialect.name
    stmt = _MANY_IF_ABSENT.get((dialect, table.name))
    if stmt is None:
        if dialect in ("postgresql", "sqlite"):
            make = pg_insert if dialect == "postgresql" else sqlite_insert
            stmt = Prepared(make(table).on_conflict_do_nothing())
        else:
            stmt = Prepared(insert(table).prefix_with("IGNORE"))
        _MANY_IF_ABSENT[(dialect, table.name)] = stmt
    stmt.run_many(conn, rows)
