"""PostgreSQL (asyncpg): ``postgresql://...`` or ``postgresql+asyncpg://...``.

A connection pool; write transactions are READ COMMITTED (appends serialize on the
single-row position counter), reads use REPEATABLE READ read-only snapshots. Driver
errors are translated at this edge.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from agentmesh.errors import BrokerUnavailable, ConfigError
from agentmesh.observability.process_metrics import metered, track_cache, track_database
from agentmesh.store.db import Connection, Dialect, safe_url
from agentmesh.store.sql import SqlEventStore

_PLACEHOLDER = re.compile(r"\?")


@lru_cache(maxsize=512)
def to_dollar(sql: str) -> str:
    """Rewrite ``?`` placeholders to asyncpg's ``$1, $2 ...``."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


track_cache("sql_placeholders", to_dollar)


def asyncpg_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    raise ConfigError(f"not a PostgreSQL URL: {safe_url(url)!r}")


class _Conn:
    __slots__ = ("_c",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._c = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._c.fetch(to_dollar(sql), *args)]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._c.fetchval(to_dollar(sql), *args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._c.execute(to_dollar(sql), *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._c.executemany(to_dollar(sql), list(rows))


class PostgresDatabase:
    """An asyncpg pool (see module docstring)."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._dsn = asyncpg_dsn(url)
        self._pool: asyncpg.Pool | None = None
        self._sizes = (min_size, max_size)

    async def connect(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=self._sizes[0], max_size=self._sizes[1], timeout=10
            )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise BrokerUnavailable(
                f"cannot connect to PostgreSQL at {safe_url(self.url)}: {exc}"
            ) from None

        track_database(self)

    def open_connections(self) -> int:
        """Open pool connections, for ``agentmesh_db_connections_active``."""
        return int(self._pool.get_size()) if self._pool is not None else 0

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _need(self) -> asyncpg.Pool:
        if self._pool is None:
            raise BrokerUnavailable(f"PostgreSQL store {safe_url(self.url)} is not connected")
        return self._pool

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        async with self._need().acquire() as conn, conn.transaction():
            yield metered(_Conn(conn))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        async with (
            self._need().acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield metered(_Conn(conn))

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._need().acquire() as conn:
            return await metered(_Conn(conn)).fetch(sql, *args)


class PostgresEventStore(SqlEventStore):
    """The event store on PostgreSQL."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        super().__init__(PostgresDatabase(url, max_size=max_connections))
