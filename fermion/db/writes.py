"""Small write helpers shared by the services and the ML2 drivers."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

# (dialect, table) -> the statement; built once because building and hashing a statement costs more
# than executing it (the values go in as parameters)
_IF_ABSENT: dict[tuple[str, str], Any] = {}


def new_id() -> str:
    return str(uuid.uuid4())


def _if_absent(dialect: str, table: Table) -> Any:
    stmt = _IF_ABSENT.get((dialect, table.name))
    if stmt is None:
        if dialect in ("postgresql", "sqlite"):
            # rowcount is not reliable through every driver here; RETURNING says whether a row went in
            make = pg_insert if dialect == "postgresql" else sqlite_insert
            key = list(table.primary_key.columns)[0]
            stmt = make(table).on_conflict_do_nothing().returning(key)
        else:
            stmt = insert(table).prefix_with("IGNORE")
        _IF_ABSENT[(dialect, table.name)] = stmt
    return stmt


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT that yields False instead of failing when a unique key is taken.

    No savepoint is needed (two fewer round trips than catching IntegrityError), and on PostgreSQL a
    concurrent uncommitted insert of the same key is waited for, so a loser always learns it lost.
    """
    dialect = conn.dialect.name
    result = conn.execute(_if_absent(dialect, table), values)
    if dialect in ("postgresql", "sqlite"):
        return result.first() is not None
    return bool(result.rowcount == 1)
