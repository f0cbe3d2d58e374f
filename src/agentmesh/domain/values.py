"""Value objects of the agent domain (spec 3.3): ids, capabilities, resources, health.

All are frozen dataclasses validated on construction; a bad value raises
:class:`~agentmesh.errors.ValidationError` (a ``ValueError``) with a clear message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from agentmesh import ids
from agentmesh.errors import ValidationError

AGENT_ID_PATTERN = ids.AGENT_ID
CAPABILITY_PATTERN = ids.CAPABILITY
MAX_HEARTBEAT_AGE_SECONDS = 3600.0


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the one clock of the domain)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class AgentStatus(StrEnum):
    """Lifecycle status of an agent."""

    AVAILABLE = "AVAILABLE"
    BUSY = "BUSY"
    PAUSED = "PAUSED"
    UNHEALTHY = "UNHEALTHY"
    TERMINATED = "TERMINATED"
    QUARANTINED = "QUARANTINED"  # safety: takes no work until an admin releases it


class ProficiencyLevel(IntEnum):
    """Capability levels 1..5 and their names."""

    NOVICE = 1
    BASIC = 2
    INTERMEDIATE = 3
    ADVANCED = 4
    EXPERT = 5

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class AgentId:
    """An agent id: 3-256 characters of letters, digits, ``-`` or ``_``."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not AGENT_ID_PATTERN.match(self.value):
            raise ValidationError(
                f"invalid agent id {self.value!r}: use 3-256 letters, digits, '-' or '_'",
                code="INVALID_AGENT_ID",
            )

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class AgentCapability:
    """A named skill with a proficiency level 1 (novice) .. 5 (expert)."""

    name: str
    proficiency_level: int = ProficiencyLevel.INTERMEDIATE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not CAPABILITY_PATTERN.match(self.name):
            raise ValidationError(
                f"invalid capability name {self.name!r}: use 1-100 letters, digits, '-' or '_'"
            )
        level = self.proficiency_level
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise ValidationError(
                f"capability {self.name!r}: proficiency level must be an integer 1-5, got {level!r}"
            )
        object.__setattr__(self, "proficiency_level", int(level))

    @classmethod
    def from_level(cls, name: str, level: float) -> AgentCapability:
        """Build from the API's float level 1.0-5.0 (rounded half up to an int)."""
        if not 1.0 <= float(level) <= 5.0:
            raise ValidationError(f"capability {name!r}: level must be 1.0-5.0, got {level!r}")
        return cls(name, int(float(level) + 0.5))

    @property
    def level_name(self) -> str:
        """novice, basic, intermediate, advanced or expert."""
        return ProficiencyLevel(self.proficiency_level).label


@dataclass(frozen=True, slots=True)
class CostRates:
    """Hourly cost rates used by :meth:`ResourceRequirement.hourly_cost`."""

    cpu_per_core: float = 0.1
    memory_per_gb: float = 0.05
    disk_per_gb: float = 0.01
    gpu: float = 1.0


@dataclass(frozen=True, slots=True)
class ResourceRequirement:
    """Resources an agent needs; cpu, memory and disk > 0, gpu >= 0."""

    cpu_cores: float = 1.0
    memory_gb: float = 1.0
    disk_gb: float = 10.0
    gpu_count: int = 0
    custom: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("cpu_cores", "memory_gb", "disk_gb"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValidationError(f"{name} must be a number > 0, got {value!r}")
        if isinstance(self.gpu_count, bool) or not isinstance(self.gpu_count, int):
            raise ValidationError(f"gpu_count must be an integer >= 0, got {self.gpu_count!r}")
        if self.gpu_count < 0:
            raise ValidationError(f"gpu_count must be >= 0, got {self.gpu_count}")

    def hourly_cost(self, rates: CostRates | None = None) -> float:
        """Estimated cost per hour under ``rates`` (default rates of spec 3.3)."""
        r = rates or CostRates()
        return (
            self.cpu_cores * r.cpu_per_core
            + self.memory_gb * r.memory_per_gb
            + self.disk_gb * r.disk_per_gb
            + self.gpu_count * r.gpu
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_cores": self.cpu_cores,
            "memory_gb": self.memory_gb,
            "disk_gb": self.disk_gb,
            "gpu_count": self.gpu_count,
            "custom": dict(self.custom) if self.custom is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceRequirement:
        return cls(
            cpu_cores=data.get("cpu_cores", 1.0),
            memory_gb=data.get("memory_gb", 1.0),
            disk_gb=data.get("disk_gb", 10.0),
            gpu_count=data.get("gpu_count", 0),
            custom=data.get("custom"),
        )


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Thresholds of :meth:`HealthMetrics.is_healthy` (defaults of spec 3.3)."""

    min_success_rate: float = 0.8
    max_error_rate: float = 0.1
    max_response_time_ms: float = 5000.0
    max_cpu_percent: float = 90.0
    max_memory_percent: float = 90.0


@dataclass(frozen=True, slots=True)
class HealthMetrics:
    """A snapshot of an agent's health figures."""

    success_rate: float = 1.0
    error_rate: float = 0.0
    response_time_ms: float = 0.0
    cpu_usage_percent: float = 0.0
    memory_usage_percent: float = 0.0
    tasks_completed: int = 0
    tasks_failed: int = 0

    def __post_init__(self) -> None:
        _in_range("success_rate", self.success_rate, 0.0, 1.0)
        _in_range("error_rate", self.error_rate, 0.0, 1.0)
        _in_range("response_time_ms", self.response_time_ms, 0.0, None)
        _in_range("cpu_usage_percent", self.cpu_usage_percent, 0.0, 100.0)
        _in_range("memory_usage_percent", self.memory_usage_percent, 0.0, 100.0)
        _in_range("tasks_completed", self.tasks_completed, 0, None)
        _in_range("tasks_failed", self.tasks_failed, 0, None)

    def is_healthy(self, thresholds: HealthThresholds | None = None) -> bool:
        """True when every figure is within ``thresholds`` (0.8 / 0.1 / 5000 ms / 90 % / 90 %)."""
        t = thresholds or HealthThresholds()
        return (
            self.success_rate >= t.min_success_rate
            and self.error_rate <= t.max_error_rate
            and self.response_time_ms <= t.max_response_time_ms
            and self.cpu_usage_percent <= t.max_cpu_percent
            and self.memory_usage_percent <= t.max_memory_percent
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "success_rate": self.success_rate,
            "error_rate": self.error_rate,
            "response_time_ms": self.response_time_ms,
            "cpu_usage_percent": self.cpu_usage_percent,
            "memory_usage_percent": self.memory_usage_percent,
            "tasks_completed": self.tasks_completed,
            "tasks_failed": self.tasks_failed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthMetrics:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class AgentHeartbeat:
    """A liveness signal: not in the future and at most 3600 s old when created.

    ``now`` (default: the current time) is the reference for validation; it is not stored.
    """

    agent_id: str
    timestamp: datetime
    metrics: HealthMetrics | None = None
    now: datetime | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        AgentId(self.agent_id)
        ts = as_utc(self.timestamp)
        object.__setattr__(self, "timestamp", ts)
        ref = as_utc(self.now) if self.now is not None else utcnow()
        age = (ref - ts).total_seconds()
        if age < 0:
            raise ValidationError(f"heartbeat of {self.agent_id} is in the future ({ts})")
        if age > MAX_HEARTBEAT_AGE_SECONDS:
            raise ValidationError(
                f"heartbeat of {self.agent_id} is {age:.0f} s old (max {MAX_HEARTBEAT_AGE_SECONDS:.0f} s)"
            )
        object.__setattr__(self, "now", None)

    def is_recent(self, max_age_seconds: float = 30.0, now: datetime | None = None) -> bool:
        """True when the heartbeat is at most ``max_age_seconds`` old."""
        ref = as_utc(now) if now is not None else utcnow()
        return (ref - self.timestamp).total_seconds() <= max_age_seconds


def _in_range(name: str, value: object, low: float, high: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValidationError(f"{name} must be {bounds}, got {value}")
