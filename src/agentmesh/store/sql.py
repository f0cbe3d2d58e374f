"""The event store on SQL (SQLite or PostgreSQL through :mod:`agentmesh.store.db`).

Gapless global positions in commit order:

* PostgreSQL: the append transaction first bumps the single-row counter
  ``event_position`` (``UPDATE ... RETURNING``). The row lock serializes appends, so
  positions are handed out in commit order and a rolled-back append gives its numbers
  back (a SERIAL would leave gaps and commit out of order). ``PostgresEventStore``
  does the whole append in ONE statement (``agentmesh.store.postgres.APPEND``), so the
  lock is never held while the client is away; the PostgreSQL branches below serve a
  ``SqlEventStore`` built on a PostgreSQL database directly.
* SQLite: ``BEGIN IMMEDIATE`` serializes writers across processes; the next position is
  ``MAX(position) + 1`` inside that transaction.

The stream version is checked in the same statement; a unique index on
``(tenant_id, stream_id, version)`` backs it up (on PostgreSQL the version may come from
a snapshot taken just before the lock was granted, and can then only be too low). Either way a conflict is a
:class:`~agentmesh.errors.ConcurrencyError` and nothing is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import asyncpg  # type: ignore[import-untyped]

from agentmesh.errors import ConcurrencyError
from agentmesh.store.base import (
    DEFAULT_PAGE,
    AppendResult,
    NewEvent,
    OutboxMessage,
    OutboxRecord,
    StoredEvent,
    StreamAppend,
)
from agentmesh.store.db import Connection, Database, utc_now_text
from agentmesh.store.memory import check_append, check_appends, concurrency_error
from agentmesh.store.migrate import migrate

_EVENT_COLUMNS = "position, tenant_id, stream_id, version, event_id, event_type, occurred_at, data"
INSERT_EVENT = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_OUTBOX = (
    "INSERT INTO outbox (tenant_id, stream_id, subject, envelope, created_at) "
    "VALUES (?, ?, ?, ?, ?)"
)
STREAM_VERSION = (
    "SELECT COALESCE(MAX(version), 0) FROM events WHERE tenant_id = ? AND stream_id = ?"
)


def _stored(row: tuple[object, ...]) -> StoredEvent:
    pos, tenant, stream, version, event_id, event_type, occurred_at, data = row
    return StoredEvent(
        int(pos),  # type: ignore[call-overload]
        str(tenant),
        str(stream),
        int(version),  # type: ignore[call-overload]
        str(event_id),
        str(event_type),
        str(occurred_at),
        str(data),
    )


def event_rows(
    tenant_id: str, stream_id: str, expected_version: int, events: Sequence[NewEvent], first: int
) -> list[tuple[object, ...]]:
    """The ``events`` rows of one stream append whose first position is ``first``."""
    return [
        (
            first + i,
            tenant_id,
            stream_id,
            expected_version + 1 + i,
            e.event_id,
            e.event_type,
            e.occurred_at,
            e.data,
        )
        for i, e in enumerate(events)
    ]


def outbox_rows(
    tenant_id: str, stream_id: str, outbox: Sequence[OutboxMessage]
) -> list[tuple[object, ...]]:
    """The ``outbox`` rows of one stream append."""
    now = utc_now_text()
    return [(tenant_id, stream_id, m.subject, m.envelope.encode().decode(), now) for m in outbox]


class SqlEventStore:
    """Event store, outbox and processed-message records in one SQL database."""

    def __init__(self, db: Database, *, run_migrations: bool = True) -> None:
        self.db = db
        self.url = db.url
        self._migrate = run_migrations

    async def connect(self) -> None:
        if self._migrate:
            await migrate(self.db.url)
        await self.db.connect()

    async def close(self) -> None:
        await self.db.close()

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
        n = len(events)
        try:
            async with self.db.write() as c:
                if self.db.dialect == "postgresql":
                    # one round trip: bump the counter (row lock = commit order) and read
                    # the stream version; a version read from a snapshot older than the
                    # lock can only be stale-low, which the unique index turns into a
                    # ConcurrencyError below, so nothing wrong is ever written.
                    rows = await c.fetch(
                        "WITH bumped AS (UPDATE event_position SET value = value + ? "
                        f"WHERE id = 1 RETURNING value) SELECT ({STREAM_VERSION}), value "
                        "FROM bumped",
                        n,
                        tenant_id,
                        stream_id,
                    )
                    current, last = int(rows[0][0]), int(rows[0][1])
                else:
                    rows = await c.fetch(
                        f"SELECT ({STREAM_VERSION}), "
                        "(SELECT COALESCE(MAX(position), 0) FROM events)",
                        tenant_id,
                        stream_id,
                    )
                    current, last = int(rows[0][0]), int(rows[0][1]) + n
                if current != expected_version:
                    raise concurrency_error(tenant_id, stream_id, expected_version, current)
                first = last - n + 1
                rows_ = event_rows(tenant_id, stream_id, expected_version, events, first)
                if n == 1:
                    await c.execute(INSERT_EVENT, *rows_[0])
                else:
                    await c.executemany(INSERT_EVENT, rows_)
                if outbox:
                    await c.executemany(INSERT_OUTBOX, outbox_rows(tenant_id, stream_id, outbox))
        except (sqlite3.IntegrityError, asyncpg.UniqueViolationError) as exc:
            raise ConcurrencyError(
                f"append to {tenant_id}/{stream_id} at version {expected_version} "
                f"conflicts with a concurrent write: {exc}"
            ) from None
        return AppendResult(expected_version + n, tuple(range(first, first + n)))

    async def append_streams(
        self, tenant_id: str, appends: Sequence[StreamAppend]
    ) -> list[AppendResult]:
        check_appends(tenant_id, appends)
        n = sum(len(a.events) for a in appends)
        try:
            async with self.db.write() as c:
                if self.db.dialect == "postgresql":  # the counter's row lock = commit order
                    rows = await c.fetch(
                        "UPDATE event_position SET value = value + ? WHERE id = 1 RETURNING value",
                        n,
                    )
                    last = int(rows[0][0])
                else:
                    last = int(await c.fetchval("SELECT COALESCE(MAX(position), 0) FROM events"))
                    last += n
                current = await self._versions(c, tenant_id, [a.stream_id for a in appends])
                for a in appends:
                    at = current.get(a.stream_id, 0)
                    if at != a.expected_version:
                        raise concurrency_error(tenant_id, a.stream_id, a.expected_version, at)
                position = last - n + 1
                rows_: list[tuple[object, ...]] = []
                outbox: list[tuple[object, ...]] = []
                results: list[AppendResult] = []
                now = utc_now_text()
                for a in appends:
                    first = position
                    for i, e in enumerate(a.events):
                        rows_.append(
                            (
                                position,
                                tenant_id,
                                a.stream_id,
                                a.expected_version + 1 + i,
                                e.event_id,
                                e.event_type,
                                e.occurred_at,
                                e.data,
                            )
                        )
                        position += 1
                    outbox.extend(
                        (tenant_id, a.stream_id, m.subject, m.envelope.encode().decode(), now)
                        for m in a.outbox
                    )
                    results.append(
                        AppendResult(
                            a.expected_version + len(a.events), tuple(range(first, position))
                        )
                    )
                await c.executemany(INSERT_EVENT, rows_)
                if outbox:
                    await c.executemany(INSERT_OUTBOX, outbox)
        except (sqlite3.IntegrityError, asyncpg.UniqueViolationError) as exc:
            raise ConcurrencyError(
                f"append to {len(appends)} streams of {tenant_id} conflicts with a "
                f"concurrent write: {exc}"
            ) from None
        return results

    @staticmethod
    async def _versions(c: Connection, tenant_id: str, streams: list[str]) -> dict[str, int]:
        """The current version of each of ``streams`` that exists."""
        out: dict[str, int] = {}
        for i in range(0, len(streams), 500):
            chunk = streams[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await c.fetch(
                "SELECT stream_id, MAX(version) FROM events "
                f"WHERE tenant_id = ? AND stream_id IN ({marks}) GROUP BY stream_id",
                tenant_id,
                *chunk,
            )
            out.update((str(r[0]), int(r[1])) for r in rows)
        return out

    async def load(
        self, tenant_id: str, stream_id: str, from_version: int = 1
    ) -> list[StoredEvent]:
        rows = await self.db.query(
            f"SELECT {_EVENT_COLUMNS} FROM events "
            "WHERE tenant_id = ? AND stream_id = ? AND version >= ? ORDER BY version",
            tenant_id,
            stream_id,
            from_version,
        )
        return [_stored(r) for r in rows]

    async def stream_version(self, tenant_id: str, stream_id: str) -> int:
        return int((await self.db.query(STREAM_VERSION, tenant_id, stream_id))[0][0])

    async def read_all(
        self, from_position: int = 1, limit: int = DEFAULT_PAGE
    ) -> list[StoredEvent]:
        rows = await self.db.query(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?",
            from_position,
            limit,
        )
        return [_stored(r) for r in rows]

    async def head(self) -> int:
        return int((await self.db.query("SELECT COALESCE(MAX(position), 0) FROM events"))[0][0])

    async def outbox_pending(self, limit: int = 100) -> list[OutboxRecord]:
        rows = await self.db.query(
            "SELECT id, tenant_id, stream_id, subject, envelope FROM outbox "
            "WHERE sent_at IS NULL ORDER BY id LIMIT ?",
            limit,
        )
        return [
            OutboxRecord(int(i), str(t), str(s), str(subj), str(env).encode())
            for i, t, s, subj, env in rows
        ]

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        now = utc_now_text()
        async with self.db.write() as c:
            await c.executemany(
                "UPDATE outbox SET sent_at = ? WHERE id = ?", [(now, i) for i in ids]
            )

    async def outbox_pending_count(self) -> int:
        rows = await self.db.query("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL")
        return int(rows[0][0])

    async def record_processed(self, consumer: str, message_id: str) -> bool:
        async with self.db.write() as c:
            inserted = await c.fetchval(
                "INSERT INTO processed_messages (consumer, message_id, processed_at) "
                "VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING 1",
                consumer,
                message_id,
                utc_now_text(),
            )
        return inserted is not None

    async def forget_processed(self, consumer: str, message_id: str) -> None:
        async with self.db.write() as c:
            await c.execute(
                "DELETE FROM processed_messages WHERE consumer = ? AND message_id = ?",
                consumer,
                message_id,
            )

    def __repr__(self) -> str:
        from agentmesh.store.db import safe_url

        return f"{type(self).__name__}({safe_url(self.url)!r})"
