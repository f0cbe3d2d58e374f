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
from datetime import UTC, datetime
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
    if value.tzinfo is UTC:  # the domain's own clock: no conversion needed (hot path)
        return value.isoformat(timespec="microseconds")
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
        for name in _names(type(self)):
            out[name] = _to_json(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DomainEvent:
        """Rebuild an event of this class from :meth:`to_dict` output."""
        kwargs: dict[str, Any] = {}
        for name, kind in _plan(cls):
            if name not in data:
                continue
            value = data[name]
            if kind == _DATETIME and value is not None:
                value = parse_datetime(value, name)
            elif kind == _TUPLE and isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValidationError(f"{cls.event_type}: {exc}") from None


_DATETIME, _TUPLE, _PLAIN = 1, 2, 0
_NAMES: dict[type, tuple[str, ...]] = {}
_PLANS: dict[type, tuple[tuple[str, int], ...]] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _names(cls: type) -> tuple[str, ...]:
    """The field names of an event class (``dataclasses.fields`` once per class: hot)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plan(cls: type) -> tuple[tuple[str, int], ...]:
    """Each field of an event class with how :meth:`DomainEvent.from_dict` converts it."""
    plan = _PLANS.get(cls)
    if plan is None:
        out = []
        for f in dataclasses.fields(cls):
            ann = str(f.type)
            kind = _DATETIME if "datetime" in ann else _TUPLE if ann.startswith("tuple") else _PLAIN
            out.append((f.name, kind))
        plan = _PLANS[cls] = tuple(out)
    return plan


def _to_json(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value
