"""JSON codec of domain events: ``event_to_json`` / ``event_from_json`` (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from agentmesh.domain import (  # noqa: F401 (registry)
    agent_events,
    federated_events,
    task_events,
    tenant_events,
)
from agentmesh.domain.events import EVENT_TYPES, DomainEvent
from agentmesh.errors import ValidationError


def event_to_dict(event: DomainEvent) -> dict[str, Any]:
    return event.to_dict()


def event_from_dict(data: Mapping[str, Any]) -> DomainEvent:
    """Rebuild any registered event; unknown ``event_type`` raises ValidationError."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"an event is a JSON object, got {type(data).__name__}")
    event_type = data.get("event_type")
    cls = EVENT_TYPES.get(str(event_type))
    if cls is None:
        raise ValidationError(f"unknown event type {event_type!r}")
    return cls.from_dict(data)


def event_to_json(event: DomainEvent) -> str:
    """JSON text of an event; a value JSON cannot hold (an integer beyond 64 bits, say)
    is a :class:`ValidationError` naming the event, raised before anything is written."""
    try:
        return orjson.dumps(event.to_dict()).decode()
    except TypeError as exc:
        raise ValidationError(
            f"{event.event_type} of {event.aggregate_id} cannot be stored: {exc} "
            "(integers must fit in 64 bits)"
        ) from None


def event_from_json(text: str | bytes, event_type: str | None = None) -> DomainEvent:
    """Parse JSON text; ``event_type`` (the store column) wins over the one in the body."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"event data is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"event data must be a JSON object, got {type(data).__name__}")
    if event_type is not None:
        data["event_type"] = event_type
    return event_from_dict(data)
