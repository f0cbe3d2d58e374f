"""Pick the event store from ``DATABASE_URL``.

=================================  ==========================================
``memory://``                      :class:`~agentmesh.store.memory.MemoryEventStore`
``sqlite:///path``                 :class:`~agentmesh.store.sqlite.SqliteEventStore`
``sqlite+aiosqlite:///path``       (same)
``postgresql://...``               :class:`~agentmesh.store.postgres.PostgresEventStore`
``postgresql+asyncpg://...``       (same)
=================================  ==========================================
"""

from __future__ import annotations

from agentmesh.errors import ConfigError
from agentmesh.store.base import FullEventStore
from agentmesh.store.db import safe_url


def create_event_store(url: str) -> FullEventStore:
    """An unconnected store for ``url``; call ``await store.connect()`` (runs migrations)."""
    if url.startswith("memory://"):
        from agentmesh.store.memory import MemoryEventStore

        return MemoryEventStore(url)
    if url.startswith(("sqlite://", "sqlite+aiosqlite://")):
        from agentmesh.store.sqlite import SqliteEventStore

        return SqliteEventStore(url)
    if url.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
        from agentmesh.store.postgres import PostgresEventStore

        return PostgresEventStore(url)
    raise ConfigError(
        f"unsupported DATABASE_URL {safe_url(url)!r}; use memory://, sqlite:///path or "
        "postgresql+asyncpg://user@host/db"
    )
