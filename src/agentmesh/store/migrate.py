"""Schema migrations (Alembic, shipped inside the package) run on start.

:func:`migrate` upgrades a database to the newest revision; it is idempotent and safe
to call from several processes at once: an advisory lock serializes it on PostgreSQL, a
``BEGIN IMMEDIATE`` transaction (which waits on the busy timeout) on SQLite, where DDL is
transactional too.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from agentmesh.errors import BrokerUnavailable, ConfigError
from agentmesh.store.db import safe_url

MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_LOCK = 7_431_250_001


def sqlalchemy_url(url: str) -> str:
    """The async SQLAlchemy URL of a ``DATABASE_URL`` (sqlite -> aiosqlite, pg -> asyncpg)."""
    if url.startswith("sqlite+aiosqlite://"):
        return url
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ConfigError(f"unsupported DATABASE_URL {safe_url(url)!r}")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _sqlite_engine(target: str) -> AsyncEngine:
    from agentmesh.store.sqlite import BUSY_TIMEOUT_MS

    engine = create_async_engine(
        target, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def _upgrade_once(target: str) -> None:
    sqlite = target.startswith("sqlite")
    engine = _sqlite_engine(target) if sqlite else create_async_engine(target, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            if not sqlite:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})"))
            await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _process_lock() -> asyncio.Lock:
    # Alembic keeps its migration context in module globals: two upgrades at once in one
    # process (even on different databases) would share it
    loop = asyncio.get_running_loop()
    if loop not in _LOCKS:
        _LOCKS[loop] = asyncio.Lock()
    return _LOCKS[loop]


async def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema revision."""
    async with _process_lock():
        await _migrate(url)


async def _migrate(url: str) -> None:
    from agentmesh.store.sqlite import BUSY_TIMEOUT_MS, ensure_parent, is_busy, sqlite_path

    target = sqlalchemy_url(url)
    if target.startswith("sqlite"):
        ensure_parent(sqlite_path(url))
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await _upgrade_once(target)
            return
        except OperationalError as exc:
            # SQLite: "database is locked" from a concurrent switch to WAL or recovery,
            # answered without waiting on the busy timeout; nothing was written
            if exc.orig is not None and is_busy(exc.orig) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                continue
            raise BrokerUnavailable(f"cannot migrate the store at {safe_url(url)}: {exc}") from None
        except (SQLAlchemyError, OSError) as exc:
            raise BrokerUnavailable(f"cannot migrate the store at {safe_url(url)}: {exc}") from None
