"""The tenant aggregate: a unique name and usage limits.

Name uniqueness is a cross-aggregate rule: the command handler reserves the name
(:class:`~agentmesh.domain.tenant_events.TenantNameReservedEvent`) before creating the
tenant. :meth:`TenantAggregate.check_agent_quota` enforces ``max_agents``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from agentmesh.domain.events import DomainEvent
from agentmesh.domain.tenant_events import (
    TenantCreatedEvent,
    TenantDeactivatedEvent,
    TenantEvent,
    TenantLimitsChangedEvent,
    TenantReactivatedEvent,
)
from agentmesh.domain.values import as_utc, utcnow
from agentmesh.errors import Conflict, InvalidTransition, ValidationError

Transition = tuple["TenantAggregate", list[TenantEvent]]


def tenant_name_key(name: str) -> str:
    """Stream id that reserves ``name`` (names may hold any character)."""
    return "tenant-name-" + hashlib.sha256(name.encode()).hexdigest()[:40]


def _check_limits(max_agents: int, max_messages_per_hour: int) -> None:
    for label, value in (
        ("max_agents", max_agents),
        ("max_messages_per_hour", max_messages_per_hour),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"{label} must be an integer >= 1, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class TenantAggregate:
    """A tenant: id, unique name, limits, active flag."""

    tenant_id: str
    name: str
    max_agents: int = 100
    max_messages_per_hour: int = 10000
    features: tuple[str, ...] = ()
    is_active: bool = True
    created_at: datetime = dataclasses.field(default_factory=utcnow)
    version: int = 0

    def __post_init__(self) -> None:
        if not self.tenant_id or not self.tenant_id.strip():
            raise ValidationError("tenant id must not be blank")
        if not self.name or not self.name.strip() or len(self.name) > 256:
            raise ValidationError("tenant name must be 1-256 non-blank characters")
        _check_limits(self.max_agents, self.max_messages_per_hour)

    @classmethod
    def create(
        cls,
        tenant_id: str,
        name: str,
        *,
        max_agents: int = 100,
        max_messages_per_hour: int = 10000,
        features: Iterable[str] = (),
        at: datetime | None = None,
    ) -> Transition:
        event = TenantCreatedEvent(
            aggregate_id=tenant_id,
            tenant_id=tenant_id,
            occurred_at=as_utc(at) if at else utcnow(),
            name=name.strip() if isinstance(name, str) else name,
            max_agents=max_agents,
            max_messages_per_hour=max_messages_per_hour,
            features=tuple(features),
        )
        return cls.from_created(event), [event]

    @classmethod
    def from_created(cls, e: TenantCreatedEvent) -> TenantAggregate:
        return cls(
            tenant_id=e.aggregate_id,
            name=e.name,
            max_agents=e.max_agents,
            max_messages_per_hour=e.max_messages_per_hour,
            features=tuple(e.features),
            created_at=e.occurred_at,
            version=1,
        )

    @classmethod
    def replay(cls, events: Iterable[DomainEvent]) -> TenantAggregate:
        tenant: TenantAggregate | None = None
        for e in events:
            if not isinstance(e, TenantEvent):
                continue
            if tenant is None:
                if not isinstance(e, TenantCreatedEvent):
                    raise ValidationError(
                        f"a tenant stream starts with TenantCreated, got {e.event_type}"
                    )
                tenant = cls.from_created(e)
            else:
                tenant = tenant.apply(e)
        if tenant is None:
            raise ValidationError("no TenantCreated event to replay")
        return tenant

    def apply(self, event: TenantEvent) -> TenantAggregate:
        c: dict[str, Any] = {"version": self.version + 1}
        match event:
            case TenantLimitsChangedEvent():
                c.update(
                    max_agents=event.max_agents, max_messages_per_hour=event.max_messages_per_hour
                )
            case TenantDeactivatedEvent():
                c.update(is_active=False)
            case TenantReactivatedEvent():
                c.update(is_active=True)
            case _:
                raise ValidationError(f"unexpected tenant event {event.event_type}")
        return dataclasses.replace(self, **c)

    def _base(self, at: datetime | None) -> dict[str, Any]:
        return {
            "aggregate_id": self.tenant_id,
            "tenant_id": self.tenant_id,
            "occurred_at": as_utc(at) if at else utcnow(),
        }

    def change_limits(
        self, max_agents: int, max_messages_per_hour: int, *, at: datetime | None = None
    ) -> Transition:
        _check_limits(max_agents, max_messages_per_hour)
        e = TenantLimitsChangedEvent(
            **self._base(at), max_agents=max_agents, max_messages_per_hour=max_messages_per_hour
        )
        return self.apply(e), [e]

    def deactivate(self, reason: str = "", *, at: datetime | None = None) -> Transition:
        if not self.is_active:
            raise InvalidTransition(f"tenant {self.name!r} is already inactive")
        e = TenantDeactivatedEvent(**self._base(at), reason=reason)
        return self.apply(e), [e]

    def reactivate(self, *, at: datetime | None = None) -> Transition:
        if self.is_active:
            raise InvalidTransition(f"tenant {self.name!r} is already active")
        e = TenantReactivatedEvent(**self._base(at))
        return self.apply(e), [e]

    def check_agent_quota(self, current_agents: int) -> None:
        """Raise :class:`Conflict` when one more agent would exceed ``max_agents``."""
        if not self.is_active:
            raise InvalidTransition(f"tenant {self.name!r} is inactive")
        if current_agents >= self.max_agents:
            raise Conflict(
                f"tenant {self.name!r} already has {current_agents} agents (max {self.max_agents})",
                code="TENANT_AGENT_LIMIT",
            )
