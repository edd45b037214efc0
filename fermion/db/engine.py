"""Engine creation and transactions. Retries happen only here, around the outermost transaction."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

_JITTER = random.Random()  # background threads keep off the global generator (a caller may seed or check it)

LOG = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 20
IDLE_PING_SECONDS = 10.0


class Reconnected(Exception):
    """The connection died before the transaction committed: it is safe to run the transaction again."""


class RetryRequest(Exception):
    """Raised inside a transaction to have the whole transaction run again (e.g. a lost insert race)."""


def normalize_url(url: str) -> str:
    """Pick the drivers we ship: psycopg 3 for PostgreSQL and PyMySQL for MariaDB/MySQL."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    elif u.drivername in ("mysql", "mariadb"):
        u = u.set(drivername="mysql+pymysql")
    if u.drivername.startswith("mysql") and "charset" not in u.query:
        u = u.update_query_dict({"charset": "utf8mb4"})
    return u.render_as_string(hide_password=False)


def make_engine(url: str, pool_size: int = 16) -> Engine:
    url = normalize_url(url)
    json = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                               pool_size=pool_size, max_overflow=pool_size, **json)
        _sqlite_setup(engine)
        return engine
    extra: dict[str, Any] = {}
    if url.startswith("mysql"):
        # IPAM re-reads what is taken after losing a race; REPEATABLE READ would keep showing a stale set
        extra["isolation_level"] = "READ COMMITTED"
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600, **json, **extra)
    _ping_after_idle(engine)
    if url.startswith("postgresql"):
        _fast_json_loads(engine)
    return engine


def _fast_json_loads(engine: Engine) -> None:
    """Parse json columns with orjson called straight from the driver: psycopg's own loader wraps each
    value in a Python call (three per port, a fifth of the CPU of a 10k-port list)."""
    from psycopg.adapt import Loader

    class OrjsonLoader(Loader):
        load = staticmethod(orjson.loads)  # type: ignore[assignment]  # takes the memoryview as it is

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        for name in ("json", "jsonb"):
            dbapi_conn.adapters.register_loader(name, OrjsonLoader)


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle: a ping on every checkout (pool_pre_ping)
    costs a round trip per request. A connection that breaks while busy fails its statement; that
    invalidates the pool, and the transaction (Database.write) or read (api.app) runs again."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["fermion.idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("fermion.idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception:  # noqa: BLE001 - any failure means the connection is gone
            alive = False
        if not alive:
            raise exc.DisconnectionError("pooled connection is gone")  # the pool retries with a new one


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: upgrading a read lock later fails with SQLITE_BUSY
        # without waiting on busy_timeout. Run on the driver's cursor (every request begins one): errors
        # still arrive wrapped by SQLAlchemy ("database is locked" is retried).
        sql = "BEGIN IMMEDIATE" if conn.get_execution_options().get("fermion_write") else "BEGIN"
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(sql)
        except Exception as err:  # noqa: BLE001 - SQLAlchemy's handler wraps or re-raises it
            conn._handle_dbapi_exception(err, sql, (), cur, None)
        finally:
            cur.close()


def lost_connection(err: BaseException) -> bool:
    return isinstance(err, exc.DBAPIError) and err.connection_invalidated


def _retriable(err: BaseException) -> bool:
    if isinstance(err, (RetryRequest, Reconnected)):
        return True
    if isinstance(err, exc.DBAPIError):
        text = str(err.orig).lower() if err.orig is not None else str(err).lower()
        return any(s in text for s in ("deadlock", "could not serialize", "database is locked",
                                       "lock wait timeout", "serialization failure"))
    return False


def scratch(conn: Connection) -> dict[str, Any]:
    """A dict that lives as long as the current write transaction (Database.write), for what one step of
    it tells a later one; an empty throw-away dict outside of one."""
    found = conn.info.get("fermion.scratch")
    return found if found is not None else {}


class Database:
    def __init__(self, url: str, pool_size: int = 16) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, pool_size)
        self.dialect = self.engine.dialect.name
        # SQLite has one writer at a time; queueing writers here is fairer and much faster than letting
        # them poll the file lock through busy_timeout (other processes still rely on busy_timeout).
        self._write_lock: threading.Lock | None = threading.Lock() if self.dialect == "sqlite" else None
        # Called after each successful commit with what the transaction emitted (services.common.emit).
        self.on_commit: Callable[[list[Any]], None] | None = None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run fn in one write transaction, retrying the whole of it on races and deadlocks."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                if self._write_lock is not None:
                    with self._write_lock:
                        result, events = self._write_once(fn)
                else:
                    result, events = self._write_once(fn)
            except Exception as err:  # noqa: BLE001 - filtered just below
                if not _retriable(err) or attempt == MAX_ATTEMPTS - 1:
                    raise
                LOG.debug("retrying transaction after %s", err)
                time.sleep(_JITTER.uniform(0, 0.002 * (2 ** min(attempt, 6))))
                continue
            if events and self.on_commit is not None:
                try:
                    self.on_commit(events)
                except Exception:  # noqa: BLE001 - the change is committed; agents resync anyway
                    LOG.exception("after-commit handler failed")
            return result
        raise AssertionError("unreachable")

    def _write_once(self, fn: Callable[[Connection], T]) -> tuple[T, list[Any]]:
        with self.engine.connect().execution_options(fermion_write=True) as conn:
            events: list[Any] = []
            conn.info["fermion.events"] = events
            conn.info["fermion.scratch"] = {}
            committing = False
            try:
                with conn.begin():
                    result = fn(conn)
                    committing = True
                return result, events
            except exc.DBAPIError as err:
                if lost_connection(err) and not committing:
                    raise Reconnected(str(err)) from err
                raise
            finally:
                conn.info.pop("fermion.events", None)
                conn.info.pop("fermion.scratch", None)

    def pool_status(self) -> dict[str, int]:
        """The connection pool's use (for /metrics); empty for pools that keep no count."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return {}
        return {"size": pool.size(), "max": pool.size() + getattr(pool, "_max_overflow", 0),
                "checked_out": pool.checkedout(), "idle": pool.checkedin()}

    def dispose(self) -> None:
        self.engine.dispose()
