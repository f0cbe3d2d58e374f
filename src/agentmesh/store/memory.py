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
        check_append(tenant_id, stream_id, expected_version, events)
        async with self._lock:
            stream = self._streams.get((tenant_id, stream_id), [])
            if len(stream) != expected_version:
                raise concurrency_error(tenant_id, stream_id, expected_version, len(stream))
            dup = next((e.event_id for e in events if e.event_id in self._event_ids), None)
            if dup is not None:
                raise ConcurrencyError(f"event {dup} was already appended")
            start = len(self._events) + 1
            stored = [
                StoredEvent(
                    start + i,
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
            self._events.extend(stored)
            self._streams[(tenant_id, stream_id)] = stream + stored
            self._event_ids.update(e.event_id for e in events)
            for msg in outbox:
                self._outbox_seq += 1
                self._outbox[self._outbox_seq] = OutboxRecord(
                    self._outbox_seq, tenant_id, stream_id, msg.subject, msg.envelope.encode()
                )
            return AppendResult(expected_version + len(events), tuple(s.position for s in stored))

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


def concurrency_error(
    tenant_id: str, stream_id: str, expected: int, actual: int
) -> ConcurrencyError:
    return ConcurrencyError(
        f"stream {tenant_id}/{stream_id} is at version {actual}, expected {expected}"
    )
