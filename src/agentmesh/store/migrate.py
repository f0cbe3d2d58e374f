"""Schema migrations (Alembic, shipped inside the package) run on start.

:func:`migrate` upgrades a database to the newest revision; it is idempotent and safe
to call from several processes at once on PostgreSQL (an advisory lock serializes it).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
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


async def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema revision."""
    target = sqlalchemy_url(url)
    if target.startswith("sqlite"):
        from agentmesh.store.sqlite import ensure_parent, sqlite_path

        ensure_parent(sqlite_path(url))
    engine = create_async_engine(target, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})"))
            await conn.run_sync(_upgrade)
    except (SQLAlchemyError, OSError) as exc:
        raise BrokerUnavailable(f"cannot migrate the store at {safe_url(url)}: {exc}") from None
    finally:
        await engine.dispose()
