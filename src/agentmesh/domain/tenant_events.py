"""Domain events of tenants and of recorded messages."""

from __future__ import annotations

import dataclasses
from typing import Any

from agentmesh.domain.events import DomainEvent


class TenantEvent(DomainEvent):
    """Marker base of the events of :class:`~agentmesh.domain.tenant.TenantAggregate`."""

    __slots__ = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TenantCreatedEvent(TenantEvent):
    topic = "tenant.created"
    name: str
    max_agents: int = 100
    max_messages_per_hour: int = 10000
    features: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TenantLimitsChangedEvent(TenantEvent):
    topic = "tenant.limits_changed"
    max_agents: int
    max_messages_per_hour: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TenantDeactivatedEvent(TenantEvent):
    topic = "tenant.deactivated"
    reason: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TenantReactivatedEvent(TenantEvent):
    topic = "tenant.reactivated"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class TenantNameReservedEvent(DomainEvent):
    """Claims a tenant name (stream ``tenant-name-<digest>`` of the system tenant)."""

    topic = "tenant.name_reserved"
    name: str
    reserved_for: str


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class MessageRecordedEvent(DomainEvent):
    """An envelope that passed through the mesh, its body as a Fernet token.

    ``ciphertext`` is the encrypted serialized envelope (the domain never sees the key);
    the messages read model stores it as ``messages.payload``.
    """

    topic = "message.recorded"
    message_id: str
    message_type: str = ""
    subject: str = ""
    source: str = ""
    priority: int | None = None
    correlation_id: str | None = None
    ciphertext: str
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
