"""The event store seam: a ladder of small Protocols (read, append, outbox, dedupe).

Every state change is a domain event appended to a *stream* ``(tenant_id, stream_id)``
with optimistic concurrency, and gets a *global position*: 1, 2, 3 ... with no gaps,
in commit order, so projections can follow the whole store with a checkpoint::

    result = await store.append("acme", "agent-a1", 0, [NewEvent.of(event)], outbox=[...])
    events = await store.load("acme", "agent-a1")          # one stream, by version
    page = await store.read_all(from_position=1, limit=500)  # every tenant, by position

* ``append`` writes all events (and their outbox messages) in ONE transaction or
  nothing; a stale ``expected_version`` raises
  :class:`~agentmesh.errors.ConcurrencyError`.
* Every read of events takes a tenant id, except :meth:`EventReader.read_all`, which
  serves projections and admin tools.
* :class:`OutboxStore` and :class:`ProcessedMessages` back the transactional outbox
  (:mod:`agentmesh.store.outbox`) and idempotent consumers.

Implementations: :mod:`~agentmesh.store.memory` (``memory://``),
:mod:`~agentmesh.store.sqlite` (``sqlite+aiosqlite:///path``) and
:mod:`~agentmesh.store.postgres` (``postgresql+asyncpg://...``). One contract suite
(``tests/contract/test_event_store_contract.py``) runs against all of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agentmesh.domain.codec import event_from_json, event_to_json
from agentmesh.domain.events import DomainEvent, iso
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    CorruptEventError,
)

DEFAULT_PAGE = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its id, type, time (ISO-8601 UTC) and JSON body."""

    event_id: str
    event_type: str
    occurred_at: str
    data: str

    @classmethod
    def of(cls, event: DomainEvent) -> NewEvent:
        return cls(event.event_id, event.event_type, iso(event.occurred_at), event_to_json(event))


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: stream, version within the stream, global position."""

    position: int
    tenant_id: str
    stream_id: str
    version: int
    event_id: str
    event_type: str
    occurred_at: str
    data: str

    def decode(self) -> DomainEvent:
        """The domain event; raises :class:`CorruptEventError` naming the position."""
        try:
            return event_from_json(self.data, self.event_type)
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptEventError(self.position, f"cannot be decoded: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An envelope to publish on ``subject`` once the append commits."""

    subject: str
    envelope: Envelope


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A pending outbox row: ``id`` orders publication (commit order)."""

    id: int
    tenant_id: str
    stream_id: str
    subject: str
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StreamAppend:
    """One stream's part of :meth:`EventStore.append_streams`."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]
    outbox: Sequence[OutboxMessage] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class AppendResult:
    """The stream version after the append and the positions given to the events."""

    version: int
    positions: tuple[int, ...]


@runtime_checkable
class EventReader(Protocol):
    """Reads events: one stream of a tenant, or everything in global order."""

    async def load(
        self, tenant_id: str, stream_id: str, from_version: int = 1
    ) -> list[StoredEvent]:
        """Events of one stream with version >= ``from_version``, oldest first ([] if none)."""
        ...

    async def stream_version(self, tenant_id: str, stream_id: str) -> int:
        """Version of a stream (0 when it does not exist)."""
        ...

    async def read_all(
        self, from_position: int = 1, limit: int = DEFAULT_PAGE
    ) -> list[StoredEvent]:
        """Up to ``limit`` events with position >= ``from_position`` in position order.

        Positions are gapless and a committed batch is contiguous; admin/projection use.
        """
        ...

    async def head(self) -> int:
        """The last committed global position (0 for an empty store)."""
        ...


@runtime_checkable
class EventStore(EventReader, Protocol):
    """An :class:`EventReader` that appends with optimistic concurrency."""

    url: str

    async def connect(self) -> None:
        """Open connections and run migrations (idempotent)."""
        ...

    async def close(self) -> None: ...

    async def append(
        self,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        outbox: Sequence[OutboxMessage] = (),
    ) -> AppendResult:
        """Append atomically when the stream is at ``expected_version`` (0 = new stream).

        Raises :class:`~agentmesh.errors.ConcurrencyError` otherwise; nothing is written.
        """
        ...

    async def append_streams(
        self, tenant_id: str, appends: Sequence[StreamAppend]
    ) -> list[AppendResult]:
        """Append to several streams of a tenant in ONE transaction, all or nothing.

        Each stream must be at its ``expected_version`` and appear once; the events get
        contiguous positions in the order given. A conflict on any stream raises
        :class:`~agentmesh.errors.ConcurrencyError` and nothing is written.
        """
        ...


@runtime_checkable
class OutboxStore(Protocol):
    """The outbox side of a store (rows written by :meth:`EventStore.append`)."""

    async def outbox_pending(self, limit: int = 100) -> list[OutboxRecord]:
        """Unsent rows in commit order."""
        ...

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None: ...

    async def outbox_pending_count(self) -> int: ...


@runtime_checkable
class ProcessedMessages(Protocol):
    """Idempotent consumers: remembers which (consumer, message id) pairs were applied."""

    async def record_processed(self, consumer: str, message_id: str) -> bool:
        """True the first time a pair is recorded, False for a duplicate."""
        ...

    async def forget_processed(self, consumer: str, message_id: str) -> None:
        """Remove a record (the handler failed; let a redelivery try again)."""
        ...


class FullEventStore(EventStore, OutboxStore, ProcessedMessages, Protocol):
    """What every AgentMesh store implements."""
