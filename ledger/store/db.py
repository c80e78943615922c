"""Database engines (SQLite and PostgreSQL), migrations, and the one-writer lock.

SQLite runs in WAL mode with a busy timeout, so the API can read while the indexer writes. Migrations are
Alembic's, kept in the package (`ledger/migrations`, beside this part: they know every part's tables) so they
run from any working directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ledger.errors import ConfigError, IndexerLockedError
from ledger.protocol.eventjson import json_text

__all__ = ["IndexerLock", "create_db_engine", "json_text", "migrate", "open_database", "sqlite_path"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_path(url: str | sa.URL) -> Path | None:
    """The file behind a SQLite URL; None for an in-memory database or another dialect."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`: SQLite (file created with its directory; WAL, busy timeout) or PostgreSQL."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"FUNDFLOW_DATABASE_URL is not a database URL ({exc})") from exc
    backend = parsed.get_backend_name()
    # orjson: JSON columns (every event's arguments) are serialised several times faster than with json.
    kwargs.setdefault("json_serializer", json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if backend == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True, **kwargs)
    raise ConfigError(
        f"unsupported database {backend!r}", hint="use sqlite:///path or postgresql+psycopg://user@host/db"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # 8 KiB pages suit the mirror's rows (an event is about 1 KiB with its keys): fewer page splits and
    # b-tree levels. Takes effect when the file is created; a no-op on an existing database.
    cursor.execute("PRAGMA page_size=8192")
    cursor.execute("PRAGMA journal_mode=WAL")
    # Checkpoint the WAL into the database every ~80 MB instead of every ~8 MB: the indexer's batches write
    # several MB each, and every checkpoint syncs the file (measured: about a fifth of a backfill's time).
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    # NORMAL is durable against process crashes in WAL mode (only an OS crash may lose the last commit).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Up to 64 MiB of page cache (default 2 MiB): the indexer inserts into b-trees keyed by hashes, i.e. at
    # random places, and with the small cache most of those inserts read their page back from the OS first.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (Alembic upgrade); a no-op when it is already there."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_database(url: str) -> Engine:
    """An engine for `url` with the schema migrated to the latest revision: what every command starts with."""
    engine = create_db_engine(url)
    migrate(engine)
    return engine


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class IndexerLock:
    """Only one indexer writes a database: a PostgreSQL session advisory lock held on a dedicated connection,
    or an exclusive `flock` on `<database file>.lock` for SQLite. Released on close or when the process dies.
    """

    NAME = "fundflow-indexer"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: sa.Connection | None = None
        self._fd: int | None = None
        self._lost = False  # the PostgreSQL lock's connection dropped and the lock is not taken again yet

    @property
    def held(self) -> bool:
        return self._connection is not None or self._fd is not None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self.engine.dialect.name == "postgresql":
            connection = self.engine.connect()
            got = bool(
                connection.execute(
                    sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(self.NAME)}
                ).scalar()
            )
            connection.commit()
            if got:
                self._connection = connection
            else:
                connection.close()
            return got
        path = sqlite_path(self.engine.url)
        if path is None:  # in-memory: private to this process anyway
            self._fd = -1
            return True
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def ensure(self) -> None:
        """Check the lock is still ours before writing; take it again if its connection was lost.

        A PostgreSQL session lock lives as long as its connection: a server restart or a killed backend
        drops it silently, and another indexer may then take it. This notices (one `SELECT 1` on the lock's
        connection), takes the lock anew if it is free, and raises `IndexerLockedError` if another indexer
        holds it now. The flock of SQLite cannot be lost this way."""
        connection = self._connection
        if connection is not None:
            try:
                connection.execute(sa.text("SELECT 1")).scalar()
                connection.commit()
                return
            except sa.exc.DBAPIError:
                self._connection, self._lost = None, True
                with contextlib.suppress(Exception):
                    connection.close()
        if not self._lost:
            return  # SQLite's flock, or never taken
        if not self.try_acquire():  # a database still down raises here: the caller waits and comes back
            where = self.engine.url.render_as_string(hide_password=True)
            raise IndexerLockedError(
                f"this indexer's lock on {where} was lost (its connection dropped) and another indexer took "
                "it; this one stops so that only one writes",
                hint="let the other indexer run, or stop it and restart this one",
            )
        self._lost = False

    def acquire(
        self,
        *,
        wait: bool = True,
        timeout: float | None = None,
        poll: float = 0.5,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Take the lock; with `wait`, block until the other indexer exits (calling `on_wait` once)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while not self.try_acquire():
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                where = self.engine.url.render_as_string(hide_password=True)
                raise IndexerLockedError(f"another indexer holds the lock on {where}")
            if not told and on_wait is not None:
                on_wait()
                told = True
            time.sleep(poll)

    def release(self) -> None:
        self._lost = False
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(self.NAME)})
                connection.commit()
            finally:
                connection.close()
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> IndexerLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
