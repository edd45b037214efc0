"""Small write helpers shared by the services and the ML2 drivers."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def new_id() -> str:
    return str(uuid.uuid4())


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT that yields False instead of failing when a unique key is taken.

    No savepoint is needed (two fewer round trips than catching IntegrityError), and on PostgreSQL a
    concurrent uncommitted insert of the same key is waited for, so a loser always learns it lost.
    """
    dialect = conn.dialect.name
    key = list(table.primary_key.columns)[0]
    if dialect in ("postgresql", "sqlite"):
        # rowcount is not reliable through every driver here; RETURNING says whether a row went in
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt: Any = make(table).values(**values).on_conflict_do_nothing().returning(key)
        return conn.execute(stmt).first() is not None
    stmt = insert(table).values(**values).prefix_with("IGNORE")
    return bool(conn.execute(stmt).rowcount == 1)
