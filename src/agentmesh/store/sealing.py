"""Encryption at rest of task payloads and results (MultiFernet, keys rotate).

A :class:`SealedStore` wraps any event store: what a task carries (``payload`` of
``TaskSubmitted``, ``result`` of ``TaskCompleted`` and ``AgentTaskCompleted``) is written
as ``{"$sealed": "<Fernet token>"}`` and opened again on every read, and outbox rows hold
their envelope with ``security.encrypted: true`` and the Fernet token of the payload in
``payload.ciphertext`` (the relay opens it before publishing). The task read model seals
the same fields of its documents (:class:`Sealer` in ``TasksProjection`` and
``ReadModels``), so neither the event tables, the outbox nor the read models hold a task's
payload in plaintext. Authorized reads (GET task, ``agentmesh message view``) decrypt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from agentmesh.envelope import Envelope
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import (
    DEFAULT_PAGE,
    AppendResult,
    FullEventStore,
    NewEvent,
    OutboxMessage,
    OutboxRecord,
    StoredEvent,
    StreamAppend,
)

SEALED = "$sealed"
EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "TaskSubmitted": ("payload",),
    "TaskCompleted": ("result",),
    "AgentTaskCompleted": ("result",),
}
DOC_FIELDS = ("payload", "result")


class Sealer:
    """Seals and opens values, event bodies, documents and envelopes with one key ring."""

    def __init__(self, crypto: EncryptionService) -> None:
        self.crypto = crypto

    def seal(self, value: Any) -> dict[str, str]:
        return {SEALED: self.crypto.encrypt(orjson.dumps(value))}

    def open(self, value: Any) -> Any:
        """The plaintext of a sealed value; anything else is returned as it is."""
        if isinstance(value, dict) and len(value) == 1 and SEALED in value:
            return orjson.loads(self.crypto.decrypt(value[SEALED]))
        return value

    def seal_fields(self, data: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        return {k: self.seal(v) if k in fields and v is not None else v for k, v in data.items()}

    def open_fields(self, data: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        return {k: self.open(v) if k in fields else v for k, v in data.items()}

    def seal_event(self, e: NewEvent) -> NewEvent:
        fields = EVENT_FIELDS.get(e.event_type)
        if not fields:
            return e
        body = self.seal_fields(orjson.loads(e.data), fields)
        return NewEvent(e.event_id, e.event_type, e.occurred_at, orjson.dumps(body).decode())

    def open_event(self, e: StoredEvent) -> StoredEvent:
        fields = EVENT_FIELDS.get(e.event_type)
        if not fields or SEALED not in e.data:
            return e
        body = self.open_fields(orjson.loads(e.data), fields)
        return StoredEvent(
            e.position,
            e.tenant_id,
            e.stream_id,
            e.version,
            e.event_id,
            e.event_type,
            e.occurred_at,
            orjson.dumps(body).decode(),
        )

    def seal_envelope(self, env: Envelope) -> Envelope:
        """A copy whose payload is ``{"ciphertext": <Fernet token>}`` and
        ``security.encrypted`` true."""
        # a shallow copy: the other parts are only read (encoded into the outbox row)
        return Envelope(
            metadata=env.metadata,
            routing=env.routing,
            payload={"ciphertext": self.crypto.encrypt(orjson.dumps(env.payload))},
            context=env.context,
            security={**env.security, "encrypted": True, "at_rest": True},
            tenant_id=env.tenant_id,
        )

    def open_envelope(self, data: bytes) -> bytes:
        """The envelope bytes with an at-rest-sealed payload opened (others unchanged)."""
        env = Envelope.decode(data)
        if not env.security.get("at_rest"):
            return data
        env.payload = orjson.loads(self.crypto.decrypt(str(env.payload["ciphertext"])))
        security = {k: v for k, v in env.security.items() if k not in ("encrypted", "at_rest")}
        env.security = security
        return env.encode()


class SealedStore:
    """A :class:`~agentmesh.store.base.FullEventStore` that seals task data at rest."""

    def __init__(self, inner: FullEventStore, sealer: Sealer) -> None:
        self.inner = inner
        self.sealer = sealer
        self.url = inner.url

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def append(
        self,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        outbox: Sequence[OutboxMessage] = (),
    ) -> AppendResult:
        s = self.sealer
        return await self.inner.append(
            tenant_id,
            stream_id,
            expected_version,
            [s.seal_event(e) for e in events],
            outbox=[OutboxMessage(m.subject, s.seal_envelope(m.envelope)) for m in outbox],
        )

    async def append_streams(
        self, tenant_id: str, appends: Sequence[StreamAppend]
    ) -> list[AppendResult]:
        s = self.sealer
        sealed = [
            StreamAppend(
                a.stream_id,
                a.expected_version,
                [s.seal_event(e) for e in a.events],
                [OutboxMessage(m.subject, s.seal_envelope(m.envelope)) for m in a.outbox],
            )
            for a in appends
        ]
        return await self.inner.append_streams(tenant_id, sealed)

    async def load(
        self, tenant_id: str, stream_id: str, from_version: int = 1
    ) -> list[StoredEvent]:
        rows = await self.inner.load(tenant_id, stream_id, from_version)
        return [self.sealer.open_event(e) for e in rows]

    async def stream_version(self, tenant_id: str, stream_id: str) -> int:
        return await self.inner.stream_version(tenant_id, stream_id)

    async def read_all(
        self, from_position: int = 1, limit: int = DEFAULT_PAGE
    ) -> list[StoredEvent]:
        rows = await self.inner.read_all(from_position, limit)
        return [self.sealer.open_event(e) for e in rows]

    async def head(self) -> int:
        return await self.inner.head()

    async def outbox_pending(self, limit: int = 100) -> list[OutboxRecord]:
        rows = await self.inner.outbox_pending(limit)
        return [
            OutboxRecord(
                r.id, r.tenant_id, r.stream_id, r.subject, self.sealer.open_envelope(r.envelope)
            )
            for r in rows
        ]

    async def outbox_mark_sent(self, ids: Sequence[int]) -> None:
        await self.inner.outbox_mark_sent(ids)

    async def outbox_pending_count(self) -> int:
        return await self.inner.outbox_pending_count()

    async def record_processed(self, consumer: str, message_id: str) -> bool:
        return await self.inner.record_processed(consumer, message_id)

    async def forget_processed(self, consumer: str, message_id: str) -> None:
        await self.inner.forget_processed(consumer, message_id)
