"""The handler of :class:`~agentmesh.commands.messages.RecordMessage`: an envelope
published through the control plane becomes a sealed ``message.recorded`` event on its own
stream and, in the same transaction, an outbox entry for the broker."""

from __future__ import annotations

from agentmesh.domain import MessageRecordedEvent
from agentmesh.errors import ConcurrencyError, Conflict, NotSupported
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import EventStore, NewEvent, OutboxMessage

from . import messages as m
from .streams import message_stream


class MessageHandlers:
    """Records published envelopes (the key seals them at rest)."""

    def __init__(self, store: EventStore, crypto: EncryptionService | None) -> None:
        self.store = store
        self.crypto = crypto

    async def record_message(self, cmd: m.RecordMessage) -> m.CommandResult:
        if self.crypto is None:
            raise NotSupported("recording a message needs the encryption key (ENCRYPTION_KEY)")
        env = cmd.envelope
        priority = env.metadata.get("priority")
        recorded = MessageRecordedEvent(
            aggregate_id=env.id,
            tenant_id=cmd.tenant_id,
            message_id=env.id,
            message_type=cmd.message_type,
            subject=cmd.subject,
            source=str(env.metadata.get("source", "")),
            priority=priority
            if isinstance(priority, int) and not isinstance(priority, bool)
            else None,
            correlation_id=env.correlation_id,
            ciphertext=self.crypto.encrypt(env.encode()),
        )
        try:
            result = await self.store.append(
                cmd.tenant_id,
                message_stream(env.id),
                0,
                [NewEvent.of(recorded)],
                outbox=[] if cmd.delivered else [OutboxMessage(cmd.subject, env)],
            )
        except ConcurrencyError:
            raise Conflict(f"message {env.id} already exists", code="MESSAGE_EXISTS") from None
        return m.CommandResult(env.id, result.version, (recorded.event_type,))
