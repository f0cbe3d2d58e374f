"""The envelopes command handlers put in the outbox: domain events and task offers."""

from __future__ import annotations

import uuid

from agentmesh import subjects
from agentmesh.domain import DomainEvent, MessageRecordedEvent, TaskAggregate
from agentmesh.domain.task_events import TaskOfferedEvent
from agentmesh.envelope import Envelope
from agentmesh.observability import tracing
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import OutboxMessage

_OFFER_NS = uuid.UUID("6f1c1d8e-3f4e-4c55-9a51-0c2b5f1a7e01")


def event_envelope(event: DomainEvent) -> OutboxMessage:
    """The integration envelope of a domain event (its id is the event id)."""
    env = Envelope.create(
        event.topic, event.to_dict(), tenant_id=event.tenant_id, source="agentmesh.store"
    )
    env.metadata["id"] = event.event_id
    return OutboxMessage(subjects.event(event.tenant_id, event.topic), env)


def offer_envelope(
    task: TaskAggregate, offered: TaskOfferedEvent, source: str, to_agent: str | None = None
) -> OutboxMessage:
    """The ``task.offered`` envelope agents with the capability receive (or, with
    ``to_agent``, that agent's durable inbox)."""
    env = Envelope.create(
        "task.offered",
        {**task.payload, "task_id": task.task_id},
        tenant_id=task.tenant_id,
        source=source,
        routing={"required_capabilities": list(task.required_capabilities)},
        priority=task.priority,
        timeout_seconds=task.timeout_seconds,
        attempt=task.attempt,
        task_type=task.task_type,
        recorded=True,  # the control plane has it already (see runtime.recorder)
    )
    env.metadata["id"] = str(uuid.uuid5(_OFFER_NS, offered.event_id))
    tracing.inject(env)  # the relay continues the submitter's trace (the REST span)
    if to_agent is not None:
        env.routing["destination"] = to_agent
        return OutboxMessage(subjects.inbox(task.tenant_id, to_agent), env)
    return OutboxMessage(subjects.task(task.tenant_id, offered.capability), env)


def recorded_offer(
    task: TaskAggregate, msg: OutboxMessage, crypto: EncryptionService | None
) -> list[DomainEvent]:
    """The ``MessageRecorded`` event of a task's offer (Fernet-encrypted), when the
    messages read model is kept (a crypto service is configured); else nothing."""
    if crypto is None:
        return []
    env = msg.envelope
    return [
        MessageRecordedEvent(
            aggregate_id=task.task_id,
            tenant_id=task.tenant_id,
            message_id=env.id,
            message_type=env.type or "",
            subject=msg.subject,
            source=str(env.metadata.get("source", "")),
            priority=task.priority,
            correlation_id=env.correlation_id,
            ciphertext=crypto.encrypt(env.encode()),
        )
    ]
