"""The base of every domain event and its JSON form.

Every event is an immutable dataclass sharing ``aggregate_id``, ``tenant_id``,
``event_id`` (uuid4), ``occurred_at`` (aware UTC) and ``version`` (schema version
"1.0"). :meth:`DomainEvent.to_dict` adds ``event_type`` (e.g. ``"AgentCreated"``) so the
serialized payload says what it is; :func:`agentmesh.domain.codec.event_from_dict` is the
inverse. Subclasses register themselves by ``event_type``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from agentmesh.domain.values import as_utc, utcnow
from agentmesh.errors import ValidationError

SCHEMA_VERSION = "1.0"

EVENT_TYPES: dict[str, type[DomainEvent]] = {}
"""Every concrete event class by its ``event_type``."""


def new_event_id() -> str:
    return str(uuid.uuid4())


def iso(value: datetime) -> str:
    """Canonical text of a datetime: ISO-8601 UTC with microseconds and ``+00:00``."""
    return as_utc(value).isoformat(timespec="microseconds")


def parse_datetime(value: Any, name: str) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be an ISO-8601 datetime, got {value!r}")
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO-8601 datetime, got {value!r}") from None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DomainEvent:
    """Base of all domain events (immutable)."""

    event_type: ClassVar[str] = ""
    topic: ClassVar[str] = ""
    """Dotted lower-case name used in broker subjects, e.g. ``agent.created``."""

    aggregate_id: str
    tenant_id: str
    event_id: str = dataclasses.field(default_factory=new_event_id)
    occurred_at: datetime = dataclasses.field(default_factory=utcnow)
    version: str = SCHEMA_VERSION

    def __init_subclass__(cls) -> None:
        # no super() call: slots=True re-creates the class, which breaks zero-arg super
        if not cls.__dict__.get("topic"):
            return  # an abstract marker base (AgentEvent, TaskEvent ...)
        name = cls.__name__
        if name.endswith("Event"):
            name = name[: -len("Event")]
        if "event_type" not in cls.__dict__:
            cls.event_type = name
        EVENT_TYPES[cls.event_type] = cls

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: every field plus ``event_type``; datetimes as ISO-8601 text."""
        out: dict[str, Any] = {"event_type": self.event_type}
        for f in dataclasses.fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DomainEvent:
        """Rebuild an event of this class from :meth:`to_dict` output."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            ann = str(f.type)
            if "datetime" in ann and value is not None:
                value = parse_datetime(value, f.name)
            elif ann.startswith("tuple") and isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValidationError(f"{cls.event_type}: {exc}") from None


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value
