"""AnomalyWatch: live per-tenant streams judged by the rolling z-score detector, raised on edges."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from agentmesh.domain.task_events import (
    TaskCompletedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    TaskSubmittedEvent,
)
from agentmesh.observability import metrics
from agentmesh.observability.anomaly_watch import Anomaly, AnomalyWatch

T0 = datetime(2026, 12, 4, tzinfo=UTC)


def task(watch: AnomalyWatch, tenant: str, i: int, latency_ms: float, agent: str = "a-1") -> None:
    at = T0 + timedelta(seconds=i)
    watch.on_event(
        tenant,
        TaskSubmittedEvent(
            aggregate_id=f"t{i}",
            tenant_id=tenant,
            task_type="x",
            required_capabilities=("x",),
            submitted_at=at,
        ),
    )
    watch.on_event(
        tenant,
        TaskCompletedEvent(
            aggregate_id=f"t{i}",
            tenant_id=tenant,
            agent_id=agent,
            completed_at=at + timedelta(milliseconds=latency_ms),
        ),
    )


def counted(tenant: str, stream: str) -> float:
    return metrics.anomalies.labels(tenant, stream)._value.get()  # type: ignore[no-any-return]


async def test_a_slow_task_in_a_steady_stream_raises_one_latency_anomaly() -> None:
    watch = AnomalyWatch()
    got: list[Anomaly] = []
    watch.on_anomaly(got.append)
    rng = random.Random(7)
    before = counted("acme", "task_latency")
    for i in range(40):
        task(watch, "acme", i, 50 + rng.uniform(-10, 10))
    assert await watch.flush() == 0  # steady: nothing
    task(watch, "acme", 40, 2000, agent="slow-1")
    task(watch, "acme", 41, 2100, agent="slow-1")  # still anomalous: no second alert
    assert await watch.flush() == 1
    (a,) = got
    assert a.stream == "task_latency"
    assert a.tenant_id == "acme"
    assert a.value == 2000
    assert a.z_score > 3
    assert a.context == {"task_id": "t40", "agent_id": "slow-1"}
    assert counted("acme", "task_latency") == before + 1
    # other tenants have their own windows: nothing there
    assert "other" not in watch.tenants


async def test_an_alert_rearms_after_enough_normal_points() -> None:
    watch = AnomalyWatch(window_size=10, rearm=3)
    got: list[Anomaly] = []
    watch.on_anomaly(got.append)
    for i in range(10):
        task(watch, "t", i, 50)
    task(watch, "t", 10, 5000)
    for i in range(11, 14):  # 3 normal points re-arm the stream
        task(watch, "t", i, 50)
    for i in range(14, 30):  # the window forgets the spike
        task(watch, "t", i, 50)
    task(watch, "t", 30, 5000)
    await watch.flush()
    assert [a.value for a in got] == [5000, 5000]


async def test_failure_rate_queue_depth_and_heartbeat_gaps_are_sampled_per_tick() -> None:
    gaps = {"t": 1.0}
    watch = AnomalyWatch(window_size=10, heartbeat_gaps=lambda: dict(gaps))
    got: list[Anomaly] = []
    watch.on_anomaly(got.append)
    for tick in range(12):
        task(watch, "t", tick, 50)
        watch.tick()
    assert await watch.flush() == 0
    # a burst of failures, a backlog and a silent agent in one tick
    for i in range(100, 110):
        watch.on_event(
            "t", TaskFailedEvent(aggregate_id=f"f{i}", tenant_id="t", error="boom", failed_at=T0)
        )
    for i in range(200, 260):
        watch.on_event(
            "t",
            TaskSubmittedEvent(
                aggregate_id=f"q{i}",
                tenant_id="t",
                task_type="x",
                required_capabilities=("x",),
                submitted_at=T0,
            ),
        )
    watch.on_event(
        "t", TaskStartedEvent(aggregate_id="q200", tenant_id="t", agent_id="a-1", started_at=T0)
    )
    gaps["t"] = 30.0
    watch.tick()
    await watch.flush()
    by_stream = {a.stream: a for a in got}
    assert set(by_stream) == {"failure_rate", "queue_depth", "heartbeat_gap"}
    assert by_stream["failure_rate"].value == 100.0
    assert by_stream["queue_depth"].value == 59  # one of the 60 started
    assert by_stream["heartbeat_gap"].value == 30.0
