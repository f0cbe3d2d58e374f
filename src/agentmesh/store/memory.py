"""``memory://``: an in-process event store for unit tests and notebooks.

Same contract as the SQL stores (optimistic concurrency, gapless positions, outbox,
processed-message records); nothing survives the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from agentmesh.errors import ConcurrencyError, ValidationError
from agentmesh.store.base import (
    DEFAULT_PAGE,
    AppendResult,
    NewEvent,
    OutboxMessage,
    OutboxRecord,
    StoredEvent,
    StreamAppend,
)


class MemoryEventStore:
    """Event store held in lists and dicts, guarded by one asyncio lock."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._events: list[StoredEvent] = []
        self._streams: dict[tuple[str, str], list[StoredEvent]] = {}
        self._event_ids: set[str] = set()
        self._outbox: dict[int, OutboxRecord] = {}
        self._outbox_seq = 0
        self._processed: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def append(
        self,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        outbox: Sequence[OutboxMessage] = (),
    ) -> AppendResult:
        one = StreamAppend(stream_id, expected_version, events, outbox)
        return (await self.append_streams(tenant_id, [one]))[0]

    async def append_streams(
        self, tenant_id: str, appends: Sequence[StreamAppend]
    ) -> list[AppendResult]:
        check_appends(tenant_id, appends)
        async with self._lock:
            for a in appends:
                stream = self._streams.get((tenant_id, a.stream_id), [])
                if len(stream) != a.expected_version:
                    raise concurrency_error(tenant_id, a.stream_id, a.expected_version, len(stream))
            ids = [e.event_id for a in appends for e in a.events]
            dup = next((i for i in ids if i in self._event_ids), None)
            if dup is None and len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
            if dup is not None:
                raise ConcurrencyError(f"event {dup} was already appended")
            return [self._write(tenant_id, a) for a in appends]

    def _write(self, tenant_id: str, a: StreamAppend) -> AppendResult:
        start = len(self._events) + 1
        stored = [
            StoredEvent(
                start + i,
                tenant_id,
                a.stream_id,
                a.expected_version + 1 + i,
                e.event_id,
                e.event_type,
                e.occurred_at,
                e.data,
            )
            for i, e in enumerate(a.events)
        ]
        key = (tenant_id, a.stream_id)
        self._events.extend(stored)
        self._streams[key] = self._streams.get(key, []) + stored
        self._event_ids.update(e.event_id for e in a.events)
        for msg in a.outbox:
            self._outbox_seq += 1
            self._outbox[self._outbox_seq] = OutboxRecord(
                self._outbox_seq, tenant_id, a.stream_id, msg.subject, msg.envelope.encode()
            )
        return AppendResult(a.expected_version + len(a.events), tuple(s.position for s in stored))

    async def load(
        self, tenant_id: str, stream_id: str, from_version: int = 1
    ) -> list[StoredEvent]:
        stream = self._streams.get((tenant_id, stream_id), [])
        return stream[max(from_version, 1) - 1 :]

    async def stream_version(self, tenant_id: str, stream_id: str) -> int:
        return len(self._streams.get((tenant_id, stream_id), []))

    async def read_all(
        self, from_position: int = 1, limit: int = DEFAULT_PAGE
    ) -> list[StoredEvent]:
        start = max(from_position, 1) - 1
        return self._events[start : start + max(limit, 0)]

    async def head(self) -> int:
        return len(self._events)

    async def outbox_pending(self, limit: int = 100) -> list[OutboxRecord]:
        return [self._outbox[k] for k in sorted(self._outbox)[:limit]]

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        for i in ids:
            self._outbox.pop(i, None)

    async def outbox_pending_count(self) -> int:
        return len(self._outbox)

    async def record_processed(self, consumer: str, message_id: str) -> bool:
        key = (consumer, message_id)
        if key in self._processed:
            return False
        self._processed.add(key)
        return True

    async def forget_processed(self, consumer: str, message_id: str) -> None:
        self._processed.discard((consumer, message_id))

    def __repr__(self) -> str:
        return f"MemoryEventStore({self.url!r}, events={len(self._events)})"


def check_append(
    tenant_id: str, stream_id: str, expected_version: int, events: Sequence[NewEvent]
) -> None:
    """Validate append arguments the same way in every implementation."""
    if not tenant_id or not stream_id:
        raise ValidationError("tenant_id and stream_id must not be empty")
    if expected_version < 0:
        raise ValidationError(f"expected_version must be >= 0, got {expected_version}")
    if not events:
        raise ValidationError("append needs at least one event")


def check_appends(tenant_id: str, appends: Sequence[StreamAppend]) -> None:
    """Validate :meth:`append_streams` arguments the same way in every implementation."""
    if not appends:
        raise ValidationError("append_streams needs at least one stream")
    seen: set[str] = set()
    for a in appends:
        check_append(tenant_id, a.stream_id, a.expected_version, a.events)
        if a.stream_id in seen:
            raise ValidationError(f"stream {a.stream_id} appears twice in one append")
        seen.add(a.stream_id)


def concurrency_error(
    tenant_id: str, stream_id: str, expected: int, actual: int
) -> ConcurrencyError:
    return ConcurrencyError(
        f"stream {tenant_id}/{stream_id} is at version {actual}, expected {expected}"
    )
