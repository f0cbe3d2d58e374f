"""Live anomaly streams per tenant, judged by the rolling z-score detector.

:class:`AnomalyWatch` keeps four streams per tenant, each with its own
:class:`~agentmesh.observability.anomaly.AnomalyDetector` (window 30, 3 sigma):

* ``task_latency``: milliseconds from ``task.submitted`` to ``task.completed`` (the
  completion's ``execution_time_ms`` when the submission was not seen), one point per task;
* ``failure_rate``: percent of the tasks finished in the last tick that failed, one point
  per tick with outcomes (percent, not a fraction: the detector's flat-window fallback
  sigma is at least 1.0);
* ``queue_depth``: tasks submitted and not yet started or finished, one point per tick;
* ``heartbeat_gap``: the longest silence (seconds) of a live agent of the tenant, one
  point per tick, when a registry is given.

Domain events come in through :meth:`on_event` (the control plane's store feed calls it);
:meth:`tick` samples the per-tick streams. An anomaly is raised on the edge: a stream that
keeps being anomalous raises once, and again only after ``rearm`` normal points. Each raised
:class:`Anomaly` is counted in ``agentmesh_anomalies_total{tenant_id, stream}`` and handed
to the ``on_anomaly`` callbacks (the control plane pushes it to ``/ws`` and audits it).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentmesh.domain.events import DomainEvent
from agentmesh.domain.task_events import (
    TaskCancelledEvent,
    TaskCompletedEvent,
    TaskDeadLetteredEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    TaskSubmittedEvent,
    TaskTimedOutEvent,
)
from agentmesh.observability import metrics
from agentmesh.observability.anomaly import AnomalyDetector, AnomalyResult

STREAMS = ("task_latency", "failure_rate", "queue_depth", "heartbeat_gap")
HISTORY = 900  # one point per tick (a second): the last 15 minutes
_TRACKED_TASKS = 20_000  # per watch: submitted times and waiting tasks kept (FIFO)
_FINISHED = (TaskCancelledEvent, TaskTimedOutEvent, TaskDeadLetteredEvent)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One raised anomaly: the point, the window it broke and its context."""

    tenant_id: str
    stream: str
    value: float
    mean: float
    std_dev: float
    z_score: float
    at: str
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "stream": self.stream,
            "value": round(self.value, 3),
            "mean": round(self.mean, 3),
            "std_dev": round(self.std_dev, 3),
            "z_score": round(self.z_score, 2),
            "at": self.at,
            **({"context": self.context} if self.context else {}),
        }


@dataclass(slots=True)
class _Stream:
    detector: AnomalyDetector
    armed: bool = True
    normal_run: int = 0


@dataclass(slots=True)
class _Tenant:
    streams: dict[str, _Stream] = field(default_factory=dict)
    submitted: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    waiting: OrderedDict[str, None] = field(default_factory=OrderedDict)
    completed: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)  # of this tick
    raised: list[str] = field(default_factory=list)  # streams raised this tick
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))


AnomalyCallback = Callable[[Anomaly], Awaitable[None] | None]


class AnomalyWatch:
    """Per-tenant live streams feeding anomaly detectors (see the module docstring)."""

    def __init__(
        self,
        *,
        window_size: int = 30,
        std_dev_threshold: float = 3.0,
        rearm: int = 5,
        heartbeat_gaps: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.window_size = window_size
        self.std_dev_threshold = std_dev_threshold
        self.rearm = rearm
        self.heartbeat_gaps = heartbeat_gaps
        self.tenants: dict[str, _Tenant] = {}
        self.callbacks: list[AnomalyCallback] = []
        self.pending: list[Anomaly] = []
        self.raised = 0

    def on_anomaly(self, callback: AnomalyCallback) -> None:
        """Call ``callback`` with every raised anomaly (from :meth:`flush`)."""
        self.callbacks.append(callback)

    # -- input --------------------------------------------------------------------------
    def on_event(self, tenant_id: str, event: DomainEvent) -> None:
        """Feed one domain event of ``tenant_id``."""
        t = self._tenant(tenant_id)
        task_id = event.aggregate_id
        if isinstance(event, TaskSubmittedEvent):
            _remember(t.submitted, task_id, event.submitted_at)
            _remember(t.waiting, task_id, None)
        elif isinstance(event, TaskStartedEvent):
            t.waiting.pop(task_id, None)
        elif isinstance(event, TaskCompletedEvent):
            t.waiting.pop(task_id, None)
            t.completed += 1
            started = t.submitted.pop(task_id, None)
            latency = (
                (event.completed_at - started).total_seconds() * 1000
                if started is not None
                else float(event.execution_time_ms)
            )
            t.latencies.append(latency)
            self._observe(tenant_id, "task_latency", latency, {"task_id": task_id} | _agent(event))
        elif isinstance(event, TaskFailedEvent):
            t.waiting.pop(task_id, None)
            t.submitted.pop(task_id, None)
            t.failed += 1
        elif isinstance(event, _FINISHED):
            t.waiting.pop(task_id, None)
            t.submitted.pop(task_id, None)

    def tick(self) -> None:
        """Sample the per-tick streams (failure rate, queue depth, heartbeat gaps)."""
        gaps = self.heartbeat_gaps() if self.heartbeat_gaps is not None else {}
        for tenant_id, gap in gaps.items():
            self._observe(tenant_id, "heartbeat_gap", gap, {})
        now = time.time()
        for tenant_id, t in list(self.tenants.items()):
            finished = t.completed + t.failed
            if finished:
                self._observe(tenant_id, "failure_rate", 100.0 * t.failed / finished, {})
            self._observe(tenant_id, "queue_depth", float(len(t.waiting)), {})
            lat = sorted(t.latencies)
            t.history.append(
                {
                    "t": round(now, 3),
                    "completed": t.completed,
                    "failed": t.failed,
                    "p50_ms": _rank(lat, 0.50),
                    "p99_ms": _rank(lat, 0.99),
                    "queue_depth": len(t.waiting),
                    "anomalies": t.raised,
                }
            )
            t.completed = t.failed = 0
            t.latencies, t.raised = [], []

    def history(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's points of the last 15 minutes (one per tick), oldest first."""
        t = self.tenants.get(tenant_id)
        return list(t.history) if t is not None else []

    async def flush(self) -> int:
        """Hand the anomalies raised since the last flush to the callbacks."""
        raised, self.pending = self.pending, []
        for anomaly in raised:
            for callback in self.callbacks:
                result = callback(anomaly)
                if result is not None:
                    await result
        return len(raised)

    # -- judging ------------------------------------------------------------------------
    def _tenant(self, tenant_id: str) -> _Tenant:
        t = self.tenants.get(tenant_id)
        if t is None:
            t = self.tenants[tenant_id] = _Tenant()
        return t

    def _observe(self, tenant_id: str, stream: str, value: float, ctx: dict[str, Any]) -> None:
        streams = self._tenant(tenant_id).streams
        s = streams.get(stream)
        if s is None:
            s = streams[stream] = _Stream(AnomalyDetector(self.window_size, self.std_dev_threshold))
        verdict = s.detector.observe(value)
        if not verdict.is_anomaly:
            s.normal_run += 1
            if s.normal_run >= self.rearm:
                s.armed = True
            return
        s.normal_run = 0
        if not s.armed:
            return
        s.armed = False
        self._raise(tenant_id, stream, verdict, ctx)

    def _raise(self, tenant_id: str, stream: str, v: AnomalyResult, ctx: dict[str, Any]) -> None:
        anomaly = Anomaly(  # an anomaly is always an evaluated point: the stats are set
            tenant_id,
            stream,
            v.value,
            v.mean or 0.0,
            v.std_dev or 0.0,
            v.z_score or 0.0,
            datetime.now(UTC).isoformat(),
            ctx,
        )
        metrics.anomalies.labels(tenant_id, stream).inc()
        self._tenant(tenant_id).raised.append(stream)
        self.raised += 1
        self.pending.append(anomaly)


def _remember(d: OrderedDict[str, Any], key: str, value: Any) -> None:
    d[key] = value
    while len(d) > _TRACKED_TASKS:
        d.popitem(last=False)


def _rank(ordered: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of sorted values (None when empty)."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _agent(event: TaskCompletedEvent) -> dict[str, Any]:
    return {"agent_id": event.agent_id} if event.agent_id else {}


def registry_gaps(registry: Any, live: tuple[str, ...] = ("AVAILABLE", "BUSY")) -> dict[str, float]:
    """The longest heartbeat silence (seconds) per tenant among its live agents."""
    now = time.time()
    gaps: dict[str, float] = {}
    for record in registry.agents():
        if record.status in live and record.last_seen:
            gap = now - record.last_seen
            gaps[record.tenant_id] = max(gaps.get(record.tenant_id, 0.0), gap)
    return gaps
