"""The audit trail of spec 3.8: entries, stores, integrity.

Every entry carries one of the spec's actions (:class:`AuditAction`) and statuses
(:class:`AuditStatus`), the tenant, the actor, the resource, the request id and a hash
chained to the previous entry, so :func:`verify_integrity` detects an edited or deleted
row. One trail holds two kinds of entries on one chain:

* what the API saw (auth failures, denied attempts, admin actions ...), appended by
  the control plane with the token's subject as actor;
* what the domain did (``task_completed``, ``agent_terminated`` ...), appended by
  :class:`~agentmesh.store.audit_trail.AuditTrail` from the event store. Such an entry
  carries ``event_position``, the global position of its event; a store keeps at most
  one entry per position, so replaying events never duplicates an entry.

Two stores implement :class:`AuditStore`: :class:`MemoryAuditStore` and
:class:`SqlAuditStore` (table ``api_audit_log`` of the store's database, SQLite or
PostgreSQL, created by the store's Alembic migrations).

>>> store = MemoryAuditStore()
>>> entry = await store.append(AuditEntry.new(AuditAction.AUTH_FAILURE, AuditStatus.FAILURE,
...                                           tenant_id="acme"))   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import orjson

from agentmesh.errors import ConfigError
from agentmesh.store.db import Connection, Database, safe_url

GENESIS = "0" * 64
TABLE_NAME = "api_audit_log"
_CHAIN_LOCK = 7_431_250_002  # PostgreSQL advisory lock: one appender of the chain at a time


class AuditAction(StrEnum):
    """The audit actions of spec 3.8 (plus ``task_submitted`` and ``task_retried``,
    which the domain's task events add)."""

    AGENT_CREATED = "agent_created"
    AGENT_UPDATED = "agent_updated"
    AGENT_TERMINATED = "agent_terminated"
    AGENT_RESTARTED = "agent_restarted"
    TASK_SUBMITTED = "task_submitted"
    TASK_ASSIGNED = "task_assigned"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_RETRIED = "task_retried"
    TASK_CANCELLED = "task_cancelled"
    MESSAGE_ROUTED = "message_routed"
    MESSAGE_DELIVERED = "message_delivered"
    MESSAGE_FAILED = "message_failed"
    AUTH_SUCCESS = "auth_success"
    AUTH_FAILURE = "auth_failure"
    UNAUTHORIZED_ACCESS = "unauthorized_access"
    SECRET_ACCESSED = "secret_accessed"
    SECRET_ROTATED = "secret_rotated"
    SECRET_REVOKED = "secret_revoked"
    POLICY_CREATED = "policy_created"
    POLICY_UPDATED = "policy_updated"
    POLICY_DELETED = "policy_deleted"
    CONFIG_CHANGED = "config_changed"
    AUDIT_LOG_EXPORTED = "audit_log_exported"
    COMPLIANCE_CHECK = "compliance_check"
    ADMIN_ACTION = "admin_action"
    TOOL_CALLED = "tool_called"  # an LLM agent's tool call (agentmesh.agents.llm_audit)


class AuditStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


class DataClassification(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class AuditEntry:
    """One audit record; ``hash`` chains it to the previous record of its store.

    ``event_position`` is the global position of the domain event an entry records
    (None for what the API saw itself).
    """

    entry_id: str
    timestamp: str
    action: AuditAction
    status: AuditStatus
    tenant_id: str
    actor: str = ""
    resource_type: str = ""
    resource_id: str = ""
    request_id: str = ""
    client_ip: str = ""
    classification: DataClassification = DataClassification.INTERNAL
    details: Mapping[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""
    event_position: int | None = None

    @classmethod
    def new(
        cls,
        action: AuditAction | str,
        status: AuditStatus | str,
        *,
        tenant_id: str,
        actor: str = "",
        resource_type: str = "",
        resource_id: str = "",
        request_id: str = "",
        client_ip: str = "",
        classification: DataClassification | str = DataClassification.INTERNAL,
        details: Mapping[str, Any] | None = None,
        timestamp: str | None = None,
        event_position: int | None = None,
    ) -> AuditEntry:
        """A fresh entry (id filled in, timestamp now unless given, not yet chained)."""
        return cls(
            entry_id=uuid.uuid4().hex,
            timestamp=timestamp or _now(),
            action=AuditAction(action),
            status=AuditStatus(status),
            tenant_id=tenant_id,
            actor=actor,
            resource_type=resource_type,
            resource_id=resource_id,
            request_id=request_id,
            client_ip=client_ip,
            classification=DataClassification(classification),
            details=dict(details or {}),
            event_position=event_position,
        )

    def content_hash(self, prev_hash: str) -> str:
        """SHA-256 over ``prev_hash`` and every field but the two hashes.

        An entry without ``event_position`` hashes as it did before the field existed,
        so older chains still verify.
        """
        body = {k: v for k, v in asdict(self).items() if k not in ("prev_hash", "hash")}
        if body["event_position"] is None:
            del body["event_position"]
        data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(prev_hash.encode() + data).hexdigest()

    def chained(self, prev_hash: str) -> AuditEntry:
        return replace(self, prev_hash=prev_hash, hash=self.content_hash(prev_hash))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["action"] = self.action.value
        out["status"] = self.status.value
        out["classification"] = self.classification.value
        out["details"] = dict(self.details)
        return out


@dataclass(frozen=True)
class AuditFilter:
    """What :meth:`AuditStore.query` selects (all given fields must match).

    ``since`` (inclusive) and ``until`` (exclusive) compare with the entries' ISO-8601
    UTC timestamps as text, so give them in the same form (see :func:`iso_timestamp`).
    """

    tenant_id: str | None = None
    action: str | None = None
    status: str | None = None
    actor: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    request_id: str | None = None
    since: str | None = None
    until: str | None = None

    def equalities(self) -> list[tuple[str, str]]:
        """``(column, value)`` of every given exact-match field."""
        pairs = (
            ("tenant_id", self.tenant_id),
            ("action", self.action),
            ("status", self.status),
            ("actor", self.actor),
            ("resource_type", self.resource_type),
            ("resource_id", self.resource_id),
            ("request_id", self.request_id),
        )
        return [(col, value) for col, value in pairs if value is not None]

    def matches(self, e: AuditEntry) -> bool:
        row = e.to_dict()
        if any(row[col] != value for col, value in self.equalities()):
            return False
        if self.since is not None and e.timestamp < self.since:
            return False
        return not (self.until is not None and e.timestamp >= self.until)


def iso_timestamp(value: datetime) -> str:
    """``value`` in the form of the entries' timestamps (UTC, microseconds; naive = UTC)."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class IntegrityReport:
    ok: bool
    checked: int
    first_bad_entry: str | None = None


@runtime_checkable
class AuditStore(Protocol):
    """Append-only audit storage (spec 3.8 store port).

    Appends of every writer (API, audit trail, other processes) form ONE chain in
    append order. An entry whose ``event_position`` is already stored is skipped.
    """

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, entry: AuditEntry) -> AuditEntry:
        """Chain and store ``entry``; returns it with its hashes (or the entry already
        stored for its ``event_position``)."""
        ...

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """Chain and store ``entries`` in order, atomically, skipping event positions
        already stored; returns the entries actually appended."""
        ...

    async def query(
        self, flt: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        """Matching entries, newest first, and the total number of matches."""
        ...

    async def get_by_id(self, entry_id: str) -> AuditEntry | None: ...

    async def all_in_order(self) -> list[AuditEntry]:
        """Every entry, oldest first (integrity checks and exports)."""
        ...


async def get_by_request_id(store: AuditStore, request_id: str) -> list[AuditEntry]:
    entries, _ = await store.query(AuditFilter(request_id=request_id), limit=1000)
    return entries


async def actor_history(
    store: AuditStore, tenant_id: str, actor: str, limit: int = 100
) -> list[AuditEntry]:
    entries, _ = await store.query(AuditFilter(tenant_id=tenant_id, actor=actor), limit=limit)
    return entries


async def resource_history(
    store: AuditStore, tenant_id: str, resource_type: str, resource_id: str, limit: int = 100
) -> list[AuditEntry]:
    flt = AuditFilter(tenant_id=tenant_id, resource_type=resource_type, resource_id=resource_id)
    entries, _ = await store.query(flt, limit=limit)
    return entries


async def export_range(
    store: AuditStore, since: str, until: str, tenant_id: str | None = None
) -> list[AuditEntry]:
    """Entries with ``since <= timestamp < until``, oldest first."""
    flt = AuditFilter(tenant_id=tenant_id, since=since, until=until)
    return [e for e in await store.all_in_order() if flt.matches(e)]


async def verify_integrity(store: AuditStore) -> IntegrityReport:
    """Recompute the hash chain; the first entry whose hash does not fit is reported."""
    prev = GENESIS
    checked = 0
    for e in await store.all_in_order():
        if e.prev_hash != prev or e.hash != e.content_hash(prev):
            return IntegrityReport(False, checked, e.entry_id)
        prev = e.hash
        checked += 1
    return IntegrityReport(True, checked)


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
            except Exception as exc:
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


__all__: Sequence[str] = [
    "AuditAction",
    "AuditEntry",
    "AuditFilter",
    "AuditStatus",
    "AuditStore",
    "DataClassification",
    "IntegrityReport",
    "MemoryAuditStore",
    "SqlAuditStore",
    "actor_history",
    "audit_store_for",
    "export_range",
    "get_by_request_id",
    "iso_timestamp",
    "resource_history",
    "verify_integrity",
]
