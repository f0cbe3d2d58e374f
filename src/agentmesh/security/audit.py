"""The audit trail: entries, the hash chain, the store port and integrity checks.

Every entry carries one of the audit actions (:class:`AuditAction`) and statuses
(:class:`AuditStatus`), the tenant, the actor, the resource, the request id and a hash
chained to the previous entry, so :func:`verify_integrity` detects an edited or deleted
row. One trail holds two kinds of entries on one chain:

* what the API saw (auth failures, denied attempts, admin actions ...), appended by
  the control plane with the token's subject as actor;
* what the domain did (``task_completed``, ``agent_terminated`` ...), appended by
  :class:`~agentmesh.store.audit_trail.AuditTrail` from the event store. Such an entry
  carries ``event_position``, the global position of its event; a store keeps at most
  one entry per position, so replaying events never duplicates an entry.

Two stores implement :class:`AuditStore`, in :mod:`agentmesh.store.audit_log`:
``MemoryAuditStore`` and ``SqlAuditStore`` (table ``api_audit_log`` of the store's
database, SQLite or PostgreSQL, created by the store's Alembic migrations).

>>> store = MemoryAuditStore()
>>> entry = await store.append(AuditEntry.new(AuditAction.AUTH_FAILURE, AuditStatus.FAILURE,
...                                           tenant_id="acme"))   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import orjson

GENESIS = "0" * 64


class AuditAction(StrEnum):
    """The audit actions: agents, tasks, messages, auth and secrets, policy and config,
    admin and compliance (plus ``task_submitted`` and ``task_retried``, which the
    domain's task events add)."""

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
    ANOMALY_DETECTED = "anomaly_detected"  # a live stream broke its window (observability)
    APPROVAL_REQUESTED = "approval_requested"  # a task or tool call waits for a person
    APPROVAL_DECIDED = "approval_decided"
    APPROVAL_EDITED = "approval_edited"  # approved with edited arguments
    APPROVAL_TIMEOUT = "approval_timeout"  # the rule's deadline decided
    APPROVAL_ESCALATED = "approval_escalated"
    APPROVAL_REMINDED = "approval_reminded"


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
        # the fields themselves, not asdict's deep copy: orjson renders nested dataclasses,
        # enums and tuples exactly as asdict's copies, so the hash is the same, faster
        body = {k: getattr(self, k) for k in _HASHED}
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


_HASHED = tuple(f.name for f in fields(AuditEntry) if f.name not in ("prev_hash", "hash"))


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
    """Append-only audit storage (the audit store port).

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


__all__ = [
    "GENESIS",
    "AuditAction",
    "AuditEntry",
    "AuditFilter",
    "AuditStatus",
    "AuditStore",
    "DataClassification",
    "IntegrityReport",
    "actor_history",
    "export_range",
    "get_by_request_id",
    "iso_timestamp",
    "resource_history",
    "verify_integrity",
]
