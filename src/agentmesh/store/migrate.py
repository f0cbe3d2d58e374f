"""Schema migrations (Alembic, shipped inside the package) run on start.

:func:`migrate` upgrades a database to the newest revision; it is idempotent and safe
to call from several processes at once: an advisory lock serializes it on PostgreSQL, a
``BEGIN IMMEDIATE`` transaction (which waits on the busy timeout) on SQLite, where DDL is
transactional too. A database already at the newest revision (every start but the
first) is recognized by one query, without loading Alembic: that import is a third of
a CLI command's time.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from agentmesh.errors import BrokerUnavailable, ConfigError
from agentmesh.store.db import safe_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_ADVISORY_LOCK = 7_431_250_001
VERSION_TABLE = "agentmesh_schema_version"  # Alembic's version table (migrations/env.py)
_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*(?:"([^"]*)"|None)\s*$', re.M)


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


@functools.cache
def head_revision() -> str | None:
    """The newest revision of the shipped migrations, read from their files (the one no
    other names as its ``down_revision``); None when that is not a single one."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        fields = {m[1]: m[2] for m in _REVISION.finditer(path.read_text("utf-8"))}
        if fields.get("revision"):
            revisions.add(fields["revision"])
        if fields.get("down_revision"):
            parents.add(fields["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _at_head(conn: Any, sqlite: bool) -> bool:
    """True when the database's schema revision is :func:`head_revision` (a query that
    cannot fail, so a PostgreSQL transaction stays usable when the table is missing)."""
    head = head_revision()
    if head is None:
        return False
    exists = (
        f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{VERSION_TABLE}'"
        if sqlite
        else f"SELECT count(*) FROM pg_catalog.pg_class WHERE oid = to_regclass('{VERSION_TABLE}')"
    )
    if not (await conn.execute(text(exists))).scalar():
        return False
    rows = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).all()
    return [r[0] for r in rows] == [head]


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    from alembic import command

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
            if not await _at_head(conn, sqlite):
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
