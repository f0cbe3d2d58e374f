"""Audit log of security-relevant actions (spec 3.8): entries, stores, integrity.

Every entry carries one of the spec's actions (:class:`AuditAction`) and statuses
(:class:`AuditStatus`), the tenant, the actor (token subject), the resource, the request
id and a hash chained to the previous entry, so :meth:`AuditStore.verify_integrity`
detects an edited or deleted row. Two stores implement :class:`AuditStore`:
:class:`MemoryAuditStore` and :class:`SqlAuditStore` (SQLAlchemy async, table
``api_audit_log`` on SQLite or PostgreSQL).

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
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

GENESIS = "0" * 64
TABLE_NAME = "api_audit_log"


class AuditAction(StrEnum):
    """The audit actions of spec 3.8."""

    AGENT_CREATED = "agent_created"
    AGENT_UPDATED = "agent_updated"
    AGENT_TERMINATED = "agent_terminated"
    AGENT_RESTARTED = "agent_restarted"
    TASK_ASSIGNED = "task_assigned"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
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
    """One audit record; ``hash`` chains it to the previous record of its store."""

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
    ) -> AuditEntry:
        """A fresh entry (id and timestamp filled in, not yet chained)."""
        return cls(
            entry_id=uuid.uuid4().hex,
            timestamp=_now(),
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
        )

    def content_hash(self, prev_hash: str) -> str:
        """SHA-256 over ``prev_hash`` and every field but the two hashes."""
        body = {k: v for k, v in asdict(self).items() if k not in ("prev_hash", "hash")}
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
    """What :meth:`AuditStore.query` selects (all given fields must match)."""

    tenant_id: str | None = None
    action: str | None = None
    status: str | None = None
    actor: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    request_id: str | None = None
    since: str | None = None
    until: str | None = None

    def matches(self, e: AuditEntry) -> bool:
        pairs = (
            (self.tenant_id, e.tenant_id),
            (self.action, e.action.value),
            (self.status, e.status.value),
            (self.actor, e.actor),
            (self.resource_type, e.resource_type),
            (self.resource_id, e.resource_id),
            (self.request_id, e.request_id),
        )
        if any(want is not None and want != got for want, got in pairs):
            return False
        if self.since is not None and e.timestamp < self.since:
            return False
        return not (self.until is not None and e.timestamp >= self.until)


@dataclass(frozen=True)
class IntegrityReport:
    ok: bool
    checked: int
    first_bad_entry: str | None = None


@runtime_checkable
class AuditStore(Protocol):
    """Append-only audit storage (spec 3.8 store port)."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, entry: AuditEntry) -> AuditEntry:
        """Chain and store ``entry``; returns it with its hashes."""
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
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(self, entry: AuditEntry) -> AuditEntry:
        async with self._lock:
            prev = self._entries[-1].hash if self._entries else GENESIS
            stored = entry.chained(prev)
            self._entries.append(stored)
            return stored

    async def query(
        self, flt: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        found = [e for e in reversed(self._entries) if flt.matches(e)]
        return found[offset : offset + limit], len(found)

    async def get_by_id(self, entry_id: str) -> AuditEntry | None:
        return next((e for e in self._entries if e.entry_id == entry_id), None)

    async def all_in_order(self) -> list[AuditEntry]:
        return list(self._entries)


_metadata = sa.MetaData()
audit_table = sa.Table(
    TABLE_NAME,
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.String(32), nullable=False, unique=True),
    sa.Column("timestamp", sa.String(40), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(256), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("client_ip", sa.String(64), nullable=False),
    sa.Column("classification", sa.String(16), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index(f"ix_{TABLE_NAME}_tenant_seq", "tenant_id", "seq"),
    sa.Index(f"ix_{TABLE_NAME}_request", "request_id"),
)


def _row_to_entry(r: Any) -> AuditEntry:
    return AuditEntry(
        entry_id=r.entry_id,
        timestamp=r.timestamp,
        action=AuditAction(r.action),
        status=AuditStatus(r.status),
        tenant_id=r.tenant_id,
        actor=r.actor,
        resource_type=r.resource_type,
        resource_id=r.resource_id,
        request_id=r.request_id,
        client_ip=r.client_ip,
        classification=DataClassification(r.classification),
        details=orjson.loads(r.details),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def _entry_row(e: AuditEntry) -> dict[str, Any]:
    row = e.to_dict()
    row["details"] = orjson.dumps(row["details"], default=str).decode()
    return row


class SqlAuditStore:
    """Audit entries in table ``api_audit_log`` (created on :meth:`connect`).

    ``url`` is a SQLAlchemy async URL (``sqlite+aiosqlite:///...`` or
    ``postgresql+asyncpg://...``); ``sqlite://`` and ``postgresql://`` are upgraded to
    their async drivers. Appends of one process are serialized to keep the chain linear.
    """

    def __init__(self, url: str) -> None:
        self.url = async_url(url)
        self._engine: AsyncEngine | None = None
        self._lock = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SqlAuditStore is not connected")
        return self._engine

    async def connect(self) -> None:
        if self._engine is not None:
            return
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        self._engine = create_async_engine(self.url, **kwargs)
        async with self._engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def append(self, entry: AuditEntry) -> AuditEntry:
        async with self._lock, self.engine.begin() as conn:
            prev = await conn.scalar(
                sa.select(audit_table.c.hash).order_by(audit_table.c.seq.desc()).limit(1)
            )
            stored = entry.chained(prev or GENESIS)
            await conn.execute(audit_table.insert().values(**_entry_row(stored)))
            return stored

    def _where(self, flt: AuditFilter) -> list[Any]:
        c = audit_table.c
        conds: list[Any] = []
        for value, col in (
            (flt.tenant_id, c.tenant_id),
            (flt.action, c.action),
            (flt.status, c.status),
            (flt.actor, c.actor),
            (flt.resource_type, c.resource_type),
            (flt.resource_id, c.resource_id),
            (flt.request_id, c.request_id),
        ):
            if value is not None:
                conds.append(col == value)
        if flt.since is not None:
            conds.append(c.timestamp >= flt.since)
        if flt.until is not None:
            conds.append(c.timestamp < flt.until)
        return conds

    async def query(
        self, flt: AuditFilter, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[AuditEntry], int]:
        conds = self._where(flt)
        async with self.engine.connect() as conn:
            total = await conn.scalar(
                sa.select(sa.func.count()).select_from(audit_table).where(*conds)
            )
            rows = await conn.execute(
                sa.select(audit_table)
                .where(*conds)
                .order_by(audit_table.c.seq.desc())
                .limit(limit)
                .offset(offset)
            )
            return [_row_to_entry(r) for r in rows], int(total or 0)

    async def get_by_id(self, entry_id: str) -> AuditEntry | None:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(audit_table).where(audit_table.c.entry_id == entry_id)
            )
            row = rows.first()
        return None if row is None else _row_to_entry(row)

    async def all_in_order(self) -> list[AuditEntry]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(audit_table).order_by(audit_table.c.seq))
            return [_row_to_entry(r) for r in rows]


def async_url(url: str) -> str:
    """The async-driver form of a database URL."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def audit_store_for(url: str | None) -> AuditStore:
    """The store for a database URL: SQL for SQLite/PostgreSQL, memory otherwise."""
    if url and (url.startswith("sqlite") or url.startswith("postgres")):
        return SqlAuditStore(url)
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
    "resource_history",
    "verify_integrity",
]
