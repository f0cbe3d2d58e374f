"""The audit stores: :class:`MemoryAuditStore` (tests, ``memory://``) and
:class:`SqlAuditStore` (table ``api_audit_log`` of the store's SQLite or PostgreSQL
database). Both implement :class:`~agentmesh.security.audit.AuditStore` and extend one
hash chain in append order, whichever process appends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from agentmesh.errors import ConfigError
from agentmesh.security.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditFilter,
    AuditStatus,
    AuditStore,
    DataClassification,
)
from agentmesh.store.db import Connection, Database, safe_url

TABLE_NAME = "api_audit_log"
_CHAIN_LOCK = 7_431_250_002  # PostgreSQL advisory lock: one appender of the chain at a time


class MemoryAuditStore:
    """In-process audit store (tests, ``memory://``)."""

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []
        self._by_position: dict[int, AuditEntry] = {}
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(self, entry: AuditEntry) -> AuditEntry:
        stored = await self.append_many([entry])
        if stored:
            return stored[0]
        assert entry.event_position is not None
        return self._by_position[entry.event_position]

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        async with self._lock:
            out: list[AuditEntry] = []
            for entry in entries:
                pos = entry.event_position
                if pos is not None and pos in self._by_position:
                    continue
                prev = self._entries[-1].hash if self._entries else GENESIS
                stored = entry.chained(prev)
                self._entries.append(stored)
                if pos is not None:
                    self._by_position[pos] = stored
                out.append(stored)
            return out

    async def query(
        self, flt: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        found = [e for e in reversed(self._entries) if flt.matches(e)]
        return found[offset : offset + limit], len(found)

    async def get_by_id(self, entry_id: str) -> AuditEntry | None:
        return next((e for e in self._entries if e.entry_id == entry_id), None)

    async def all_in_order(self) -> list[AuditEntry]:
        return list(self._entries)


_COLUMNS = (
    "entry_id",
    '"timestamp"',
    "action",
    "status",
    "tenant_id",
    "actor",
    "resource_type",
    "resource_id",
    "request_id",
    "client_ip",
    "classification",
    "details",
    "prev_hash",
    "hash",
    "event_position",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM {TABLE_NAME}"
_INSERT = (
    f"INSERT INTO {TABLE_NAME} ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


def _row(e: AuditEntry) -> tuple[Any, ...]:
    return (
        e.entry_id,
        e.timestamp,
        e.action.value,
        e.status.value,
        e.tenant_id,
        e.actor,
        e.resource_type,
        e.resource_id,
        e.request_id,
        e.client_ip,
        e.classification.value,
        orjson.dumps(dict(e.details), default=str).decode(),
        e.prev_hash,
        e.hash,
        e.event_position,
    )


def _entry(r: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        entry_id=str(r[0]),
        timestamp=str(r[1]),
        action=AuditAction(r[2]),
        status=AuditStatus(r[3]),
        tenant_id=str(r[4]),
        actor=str(r[5]),
        resource_type=str(r[6]),
        resource_id=str(r[7]),
        request_id=str(r[8]),
        client_ip=str(r[9]),
        classification=DataClassification(r[10]),
        details=orjson.loads(r[11]),
        prev_hash=str(r[12]),
        hash=str(r[13]),
        event_position=None if r[14] is None else int(r[14]),
    )


def _database_for(url: str) -> Database:
    if url.startswith(("sqlite://", "sqlite+aiosqlite://")):
        from agentmesh.store.sqlite import SqliteDatabase

        return SqliteDatabase(url)
    if url.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
        from agentmesh.store.postgres import PostgresDatabase

        return PostgresDatabase(url, max_size=4)
    raise ConfigError(f"no SQL audit store for {safe_url(url)!r}")


class SqlAuditStore:
    """Audit entries in table ``api_audit_log`` of a SQLite or PostgreSQL database.

    ``url`` is a ``DATABASE_URL`` (``sqlite:///...``, ``postgresql+asyncpg://...``).
    With ``db`` (the event store's :class:`~agentmesh.store.db.Database`) the store
    shares its connections, else :meth:`connect` migrates the database and opens its
    own. Appends serialize on the database's write lock (``BEGIN IMMEDIATE`` on SQLite,
    an advisory lock on PostgreSQL), so writers in several processes extend one chain.
    """

    def __init__(self, url: str, *, db: Database | None = None) -> None:
        self.url = url
        self._shared = db is not None
        self._db = db
        self._connected = db is not None
        # group commit: entries appended while a write is under way go in the next one
        self._queue: list[tuple[AuditEntry, asyncio.Future[AuditEntry]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def db(self) -> Database:
        if self._db is None or not self._connected:
            raise RuntimeError("SqlAuditStore is not connected")
        return self._db

    async def connect(self) -> None:
        if self._connected:
            return
        from agentmesh.store.migrate import migrate

        await migrate(self.url)
        self._db = self._db or _database_for(self.url)
        await self._db.connect()
        self._connected = True

    async def close(self) -> None:
        if self._connected and not self._shared and self._db is not None:
            await self._db.close()
            self._connected = False

    async def append(self, entry: AuditEntry) -> AuditEntry:
        if entry.event_position is None:
            # concurrent appends share one transaction; each returns once it is durable
            done: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
            self._queue.append((entry, done))
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush())
            return await done
        stored = await self.append_many([entry])
        if stored:
            return stored[0]
        async with self.db.read() as c:
            rows = await c.fetch(f"{_SELECT} WHERE event_position = ?", entry.event_position)
        return _entry(rows[0])

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                stored = await self.append_many([entry for entry, _ in batch])
            except asyncio.CancelledError:
                for _, done in batch + self._queue:
                    done.cancel()
                raise
            except Exception as exc:  # noqa: BLE001 - every waiter of the batch gets the error that failed it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), entry in zip(batch, stored, strict=True):
                if not done.done():
                    done.set_result(entry)

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        if not entries:
            return []
        async with self.db.write() as c:
            if self.db.dialect == "postgresql":
                await c.execute("SELECT pg_advisory_xact_lock(?)", _CHAIN_LOCK)
            seen = await self._stored_positions(c, entries)
            prev = await c.fetchval(f"SELECT hash FROM {TABLE_NAME} ORDER BY seq DESC LIMIT 1")
            prev = prev or GENESIS
            out: list[AuditEntry] = []
            for entry in entries:
                if entry.event_position is not None:
                    if entry.event_position in seen:
                        continue
                    seen.add(entry.event_position)
                stored = entry.chained(prev)
                prev = stored.hash
                out.append(stored)
            if out:
                await c.executemany(_INSERT, [_row(e) for e in out])
            return out

    async def _stored_positions(self, c: Connection, entries: Sequence[AuditEntry]) -> set[int]:
        positions = [e.event_position for e in entries if e.event_position is not None]
        if not positions:
            return set()
        rows = await c.fetch(
            f"SELECT event_position FROM {TABLE_NAME} WHERE event_position BETWEEN ? AND ?",
            min(positions),
            max(positions),
        )
        return {int(r[0]) for r in rows}

    def _where(self, flt: AuditFilter) -> tuple[str, list[Any]]:
        conds = [f"{col} = ?" for col, _ in flt.equalities()]
        args: list[Any] = [value for _, value in flt.equalities()]
        if flt.since is not None:
            conds.append('"timestamp" >= ?')
            args.append(flt.since)
        if flt.until is not None:
            conds.append('"timestamp" < ?')
            args.append(flt.until)
        return (" WHERE " + " AND ".join(conds) if conds else ""), args

    async def query(
        self, flt: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        where, args = self._where(flt)
        async with self.db.read() as c:
            total = await c.fetchval(f"SELECT COUNT(*) FROM {TABLE_NAME}{where}", *args)
            rows = await c.fetch(
                f"{_SELECT}{where} ORDER BY seq DESC LIMIT ? OFFSET ?", *args, limit, offset
            )
        return [_entry(r) for r in rows], int(total or 0)

    async def get_by_id(self, entry_id: str) -> AuditEntry | None:
        async with self.db.read() as c:
            rows = await c.fetch(f"{_SELECT} WHERE entry_id = ?", entry_id)
        return _entry(rows[0]) if rows else None

    async def all_in_order(self) -> list[AuditEntry]:
        async with self.db.read() as c:
            rows = await c.fetch(f"{_SELECT} ORDER BY seq")
        return [_entry(r) for r in rows]


def audit_store_for(url: str | None, *, db: Database | None = None) -> AuditStore:
    """The store for a database URL: SQL for SQLite/PostgreSQL (sharing ``db`` when
    given), memory otherwise."""
    if url and (url.startswith("sqlite") or url.startswith("postgres")):
        return SqlAuditStore(url, db=db)
    return MemoryAuditStore()
