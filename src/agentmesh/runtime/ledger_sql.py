"""The task ledger in a SQL table (SQLite or PostgreSQL), for brokers without a key-value
store of their own (RabbitMQ, Kafka, Pulsar, Pub/Sub, SNS/SQS).

One row per ``(tenant_id, task_id)`` in ``am_task_ledger`` (a table of the store's
migrations, applied on first use, so a ledger URL can be the store's own database). Rows
older than the ledger's TTL are purged when it connects.
"""

from __future__ import annotations

import asyncio
import time

from agentmesh.envelope import Envelope
from agentmesh.store.db import Database
from agentmesh.store.migrate import migrate

TABLE = "am_task_ledger"  # created by the store migrations (revision 0003)


def open_database(url: str) -> Database:
    """An unconnected :class:`Database` for a SQLite or PostgreSQL URL."""
    if url.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
        from agentmesh.store.postgres import PostgresDatabase

        return PostgresDatabase(url, min_size=1, max_size=4)
    from agentmesh.store.sqlite import SqliteDatabase

    return SqliteDatabase(url)


class SqlLedger:
    """:class:`~agentmesh.runtime.ledger.TaskLedger` in table ``am_task_ledger``."""

    def __init__(self, url: str, *, ttl_seconds: float) -> None:
        self.url = url
        self.ttl = ttl_seconds
        self._db: Database | None = None
        self._lock = asyncio.Lock()

    async def _conn(self) -> Database:
        if self._db is None:
            async with self._lock:
                if self._db is None:
                    db = open_database(self.url)
                    await db.connect()
                    try:
                        await self._prepare(db)
                    except Exception:
                        await db.close()
                        raise
                    self._db = db
        return self._db

    async def _prepare(self, db: Database) -> None:
        await migrate(self.url)  # idempotent and serialized across processes
        async with db.write() as c:
            await c.execute(f"DELETE FROM {TABLE} WHERE updated_at < ?", time.time() - self.ttl)

    async def _column(self, tenant: str, task_id: str, column: str) -> object:
        db = await self._conn()
        async with db.read() as c:
            return await c.fetchval(
                f"SELECT {column} FROM {TABLE} WHERE tenant_id = ? AND task_id = ?",
                tenant,
                task_id,
            )

    async def _envelope(self, tenant: str, task_id: str, column: str) -> Envelope | None:
        raw = await self._column(tenant, task_id, column)
        return Envelope.decode(raw) if isinstance(raw, str) else None

    async def completed(self, tenant: str, task_id: str) -> Envelope | None:
        return await self._envelope(tenant, task_id, "done")

    async def outcome(self, tenant: str, task_id: str) -> Envelope | None:
        return await self._envelope(tenant, task_id, "outcome")

    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        raw = outcome.encode().decode()
        done = raw if outcome.type == "task.completed" else None
        db = await self._conn()
        async with db.write() as c:
            await c.execute(
                f"INSERT INTO {TABLE} (tenant_id, task_id, outcome, done, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, task_id) DO UPDATE SET "
                f"outcome = excluded.outcome, done = COALESCE(excluded.done, {TABLE}.done), "
                "updated_at = excluded.updated_at",
                tenant,
                task_id,
                raw,
                done,
                time.time(),
            )

    async def add_failure(self, tenant: str, task_id: str) -> int:
        db = await self._conn()
        async with db.write() as c:
            count = await c.fetchval(
                f"INSERT INTO {TABLE} (tenant_id, task_id, failures, updated_at) "
                "VALUES (?, ?, 1, ?) ON CONFLICT (tenant_id, task_id) DO UPDATE SET "
                f"failures = {TABLE}.failures + 1, updated_at = excluded.updated_at "
                "RETURNING failures",
                tenant,
                task_id,
                time.time(),
            )
        return int(count)

    async def failures(self, tenant: str, task_id: str) -> int:
        count = await self._column(tenant, task_id, "failures")
        return int(count) if isinstance(count, int) else 0

    async def cancel(self, tenant: str, task_id: str) -> None:
        db = await self._conn()
        async with db.write() as c:
            await c.execute(
                f"INSERT INTO {TABLE} (tenant_id, task_id, cancelled, updated_at) "
                "VALUES (?, ?, 1, ?) ON CONFLICT (tenant_id, task_id) DO UPDATE SET "
                "cancelled = 1, updated_at = excluded.updated_at",
                tenant,
                task_id,
                time.time(),
            )

    async def is_cancelled(self, tenant: str, task_id: str) -> bool:
        return bool(await self._column(tenant, task_id, "cancelled"))

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                await self._db.close()
                self._db = None
