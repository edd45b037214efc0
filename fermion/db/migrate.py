"""Alembic driven from code: `fermion db upgrade` and the start-up schema check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration. The server compares against this without loading Alembic (start-up time);
# a contract test keeps it equal to Alembic's head.
HEAD = "0021"


class SchemaNotCurrent(RuntimeError):
    pass


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_config()).get_heads()
    return heads[0]


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


def upgrade(engine: Engine, revision: str = "heads") -> None:
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def revision(engine: Engine, message: str) -> None:
    """Developer helper: autogenerate a new migration from the models."""
    from alembic import command

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


def require_current(engine: Engine, url_for_message: str) -> None:
    have, want = current(engine), HEAD
    if have != want:
        state = "has no schema" if have is None else f"is at revision {have}, expected {want}"
        raise SchemaNotCurrent(
            f"The database {url_for_message} {state}. Run: fermion db upgrade --database '{url_for_message}'")
