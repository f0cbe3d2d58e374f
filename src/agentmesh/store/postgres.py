"""PostgreSQL (asyncpg): ``postgresql://...`` or ``postgresql+asyncpg://...``.

A connection pool; write transactions are READ COMMITTED, reads use REPEATABLE READ
read-only snapshots. Driver errors are translated at this edge.

Appends serialize on the row lock of the single-row position counter (gapless positions
in commit order). An append is therefore ONE statement in its own implicit transaction
(:data:`APPEND`): the server takes the lock, checks the stream versions, inserts the
events and outbox rows and commits without waiting for the client. Held across client
round trips (UPDATE, INSERTs, COMMIT, each awaited), the lock lasted as long as the
holder's event loop was busy elsewhere, and every append of every process waited for it
(all the POSTs of a control-plane replica stalled together for seconds).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from agentmesh.errors import BrokerUnavailable, ConcurrencyError, ConfigError
from agentmesh.observability.process_metrics import metered, track_cache, track_database
from agentmesh.store.base import AppendResult, NewEvent, OutboxMessage, StreamAppend
from agentmesh.store.db import Connection, Dialect, safe_url, utc_now_text
from agentmesh.store.memory import check_append, check_appends, concurrency_error
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


APPEND = """
WITH bumped AS (
    UPDATE event_position SET value = value + $2 WHERE id = 1 AND NOT EXISTS (
        SELECT 1 FROM unnest($3::text[], $4::int[]) AS w(stream_id, expected)
        WHERE w.expected <> COALESCE((
            SELECT MAX(e.version) FROM events e
            WHERE e.tenant_id = $1 AND e.stream_id = w.stream_id), 0))
    RETURNING value
), new_events AS (
    INSERT INTO events
        (position, tenant_id, stream_id, version, event_id, event_type, occurred_at, data)
    SELECT b.value - $2 + u.ord, $1, u.stream_id, u.version, u.event_id, u.event_type,
           u.occurred_at, u.data
    FROM bumped b,
         unnest($5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::text[])
         WITH ORDINALITY AS u(stream_id, version, event_id, event_type, occurred_at, data, ord)
), new_outbox AS (
    INSERT INTO outbox (tenant_id, stream_id, subject, envelope, created_at)
    SELECT $1, o.stream_id, o.subject, o.envelope, $14
    FROM bumped b,
         unnest($11::text[], $12::text[], $13::text[])
         WITH ORDINALITY AS o(stream_id, subject, envelope, ord)
    ORDER BY o.ord
)
SELECT value FROM bumped
"""
"""One append of one or more streams of a tenant, in one statement: the counter is bumped
only when every stream is at its expected version (the check reads the statement's
snapshot, taken before the lock: a stream appended to since can only look older, and the
unique index on ``(tenant_id, stream_id, version)`` then fails the whole statement), the
events get the positions the bump handed out, in order; no row back means a conflict and
nothing written."""


class PostgresEventStore(SqlEventStore):
    """The event store on PostgreSQL (appends: :data:`APPEND`)."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        super().__init__(PostgresDatabase(url, max_size=max_connections))

    async def append(
        self,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        outbox: Sequence[OutboxMessage] = (),
    ) -> AppendResult:
        check_append(tenant_id, stream_id, expected_version, events)
        appended = await self._append(
            tenant_id, [StreamAppend(stream_id, expected_version, events, outbox)]
        )
        return appended[0]

    async def append_streams(
        self, tenant_id: str, appends: Sequence[StreamAppend]
    ) -> list[AppendResult]:
        check_appends(tenant_id, appends)
        return await self._append(tenant_id, appends)

    async def _append(self, tenant_id: str, appends: Sequence[StreamAppend]) -> list[AppendResult]:
        n = sum(len(a.events) for a in appends)
        ev: list[list[Any]] = [[], [], [], [], [], []]
        ob: list[list[Any]] = [[], [], []]
        now = utc_now_text()
        for a in appends:
            for i, e in enumerate(a.events):
                row = (a.stream_id, a.expected_version + 1 + i, e.event_id, e.event_type)
                for col, value in zip(ev, (*row, e.occurred_at, e.data), strict=True):
                    col.append(value)
            for m in a.outbox:
                for col, value in zip(
                    ob, (a.stream_id, m.subject, m.envelope.encode().decode()), strict=True
                ):
                    col.append(value)
        streams = [a.stream_id for a in appends]
        expected = [a.expected_version for a in appends]
        try:
            rows = await self.db.query(APPEND, tenant_id, n, streams, expected, *ev, *ob, now)
        except asyncpg.UniqueViolationError as exc:
            raise ConcurrencyError(
                f"append to {', '.join(streams)} of {tenant_id} conflicts with a "
                f"concurrent write: {exc}"
            ) from None
        if not rows:
            raise await self._conflict(tenant_id, appends)
        position = int(rows[0][0]) - n + 1
        out: list[AppendResult] = []
        for a in appends:
            k = len(a.events)
            out.append(AppendResult(a.expected_version + k, tuple(range(position, position + k))))
            position += k
        return out

    async def _conflict(self, tenant_id: str, appends: Sequence[StreamAppend]) -> ConcurrencyError:
        """The error of an append whose version check failed (no row came back)."""
        current = await self.db.query(
            "SELECT stream_id, MAX(version) FROM events WHERE tenant_id = ? "
            "AND stream_id = ANY(?::text[]) GROUP BY stream_id",
            tenant_id,
            [a.stream_id for a in appends],
        )
        versions = {str(s): int(v) for s, v in current}
        for a in appends:
            at = versions.get(a.stream_id, 0)
            if at != a.expected_version:
                return concurrency_error(tenant_id, a.stream_id, a.expected_version, at)
        return ConcurrencyError(
            f"append to {len(appends)} streams of {tenant_id} conflicts with a concurrent write"
        )
