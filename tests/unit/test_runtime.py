"""The agent runtime and Mesh API on the in-memory transport."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh import Envelope, Mesh, TaskContext, subjects
from agentmesh.config import Settings
from agentmesh.errors import (
    InvalidTransition,
    NoResponders,
    RemoteError,
    RequestTimeout,
    ValidationError,
)
from agentmesh.observability import metrics
from agentmesh.runtime.capabilities import parse_capabilities, validate_agent_id
from tests.helpers import eventually, quiet_period


def fast_settings(tmp_path: Path, **kw: object) -> Settings:
    base: dict[str, object] = {
        "agentmesh_data_dir": tmp_path,
        "agentmesh_heartbeat_interval": 0.05,
        "agentmesh_health_check_timeout": 0.3,
        "agentmesh_ack_wait": 1.0,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    m = Mesh(f"memory://{uuid.uuid4().hex}", tenant="acme", settings=fast_settings(tmp_path))
    yield m
    await m.stop()


async def test_an_agent_is_a_few_lines(mesh: Mesh) -> None:
    @mesh.agent("summarizer", capabilities={"summarize": 4})
    async def summarize(task: TaskContext) -> dict[str, str]:
        return {"summary": task.payload["text"][:5]}

    await mesh.start()
    assert await mesh.request("summarize", {"text": "hello world"}) == {"summary": "hello"}
    task_id = await mesh.submit("summarize", {"text": "durable work"})
    assert await mesh.wait_result(task_id, timeout=5) == {"summary": "durab"}
    assert summarize.tasks_completed == 1


async def test_non_dict_results_are_wrapped_and_errors_come_back(mesh: Mesh) -> None:
    @mesh.agent("calc", capabilities="add")
    async def add(task: TaskContext) -> int:
        if task.payload.get("fail"):
            raise ValueError("cannot add that")
        return int(task.payload["a"]) + int(task.payload["b"])

    await mesh.start()
    assert await mesh.request("add", {"a": 1, "b": 2}) == {"result": 3}
    with pytest.raises(RemoteError, match="cannot add that"):
        await mesh.request("add", {"fail": True})
    with pytest.raises((NoResponders, RequestTimeout)):
        await mesh.request("nobody-has-this", {}, timeout=0.3)


async def test_durable_task_failure_is_retried_then_reported(tmp_path: Path) -> None:
    m = Mesh(
        f"memory://{uuid.uuid4().hex}",
        tenant="acme",
        settings=fast_settings(tmp_path, agentmesh_max_deliver=3),
    )
    calls: list[int] = []

    @m.agent("flaky", capabilities=["work"])
    async def flaky(task: TaskContext) -> dict[str, int]:
        calls.append(task.attempt)
        if task.attempt < 2:
            raise ConnectionError("transient")
        return {"attempt": task.attempt}

    @m.agent("broken", capabilities=["explode"])
    async def broken(task: TaskContext) -> None:
        raise RuntimeError("always")

    async with m:
        ok = await m.submit("work", {})
        assert await m.wait_result(ok, timeout=10) == {"attempt": 2}
        bad = await m.submit("explode", {})
        with pytest.raises(RemoteError, match="always"):
            await m.wait_result(bad, timeout=10)
    assert calls == [1, 2]


async def test_pause_resume_stop(mesh: Mesh) -> None:
    seen: list[str] = []

    @mesh.agent("worker-1", capabilities=["job"])
    async def worker(task: TaskContext) -> None:
        seen.append(task.payload["n"])

    await mesh.start()
    await worker.pause()
    assert worker.status == "PAUSED"
    await mesh.submit("job", {"n": "while-paused"})
    await quiet_period(0.2)  # a paused agent takes nothing
    assert seen == []
    await worker.resume()
    with pytest.raises(InvalidTransition, match="only a PAUSED agent resumes"):
        await worker.resume()
    await eventually(lambda: seen == ["while-paused"])
    result = await mesh.control("worker-1", "pause")
    assert result["status"] == "PAUSED"
    await mesh.control("worker-1", "resume")
    assert worker.status == "AVAILABLE"
    await mesh.control("worker-1", "stop")
    await eventually(lambda: worker.status == "TERMINATED")


async def test_stop_drains_in_flight_work(mesh: Mesh) -> None:
    finished: list[str] = []
    started = asyncio.Event()

    @mesh.agent("slowpoke", capabilities=["slow"])
    async def slow(task: TaskContext) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(task.task_id)

    await mesh.start()
    task_id = await mesh.submit("slow", {})
    await asyncio.wait_for(started.wait(), 5)
    await slow.stop()
    assert finished == [task_id]


async def test_heartbeats_feed_the_registry_and_timeouts_mark_unhealthy(mesh: Mesh) -> None:
    @mesh.agent("beater", capabilities={"beat": 2})
    async def beat(task: TaskContext) -> None:
        return None

    changes: list[tuple[str | None, str]] = []
    mesh.registry.on_change(lambda rec, old, new: changes.append((old, new)))
    await mesh.start()
    await eventually(lambda: mesh.registry.get("acme", "beater") is not None)
    record = mesh.registry.get("acme", "beater")
    assert record is not None
    assert record.capabilities == {"beat": 2}
    assert record.status == "AVAILABLE"
    # silence the heartbeats: the registry must notice within the health-check timeout
    assert beat._hb_task is not None
    beat._hb_task.cancel()
    await eventually(lambda: record.status == "UNHEALTHY", timeout=3)
    failures = metrics.REGISTRY.get_sample_value(
        "agentmesh_health_check_failures_total",
        {"agent_id": "beater", "failure_reason": "heartbeat_timeout"},
    )
    assert failures is not None
    assert failures >= 1
    # heartbeats return: AVAILABLE again
    beat._hb_task = asyncio.create_task(beat._heartbeat_loop())
    await eventually(lambda: record.status == "AVAILABLE", timeout=3)
    assert (None, "AVAILABLE") in changes
    assert ("AVAILABLE", "UNHEALTHY") in changes
    assert ("UNHEALTHY", "AVAILABLE") in changes
    assert (
        metrics.REGISTRY.get_sample_value(
            "agentmesh_active_agents", {"tenant_id": "acme", "status": "AVAILABLE"}
        )
        == 1
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"a": 4}, {"a": 4}),
        ("a,b", {"a": 3, "b": 3}),
        (["a b", "c:5"], {"a": 3, "b": 3, "c": 5}),
        (["data-processing"], {"data-processing": 3}),
    ],
)
def test_capabilities_accept_commas_spaces_and_levels(
    given: object, expected: dict[str, int]
) -> None:
    assert parse_capabilities(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a b!", {"x": 9}, {"ok": 0}])
def test_bad_capabilities_are_rejected(bad: object) -> None:
    with pytest.raises(ValidationError):
        parse_capabilities(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["ab", "bad id!", "x" * 257, "é-agent"])
def test_bad_agent_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError, match="invalid agent id"):
        validate_agent_id(bad)


def test_sync_handlers_and_duplicate_ids_are_refused(mesh: Mesh) -> None:
    with pytest.raises(ValidationError, match="async"):
        mesh.agent("syncy", capabilities="x")(lambda task: None)  # type: ignore[arg-type,return-value]

    async def h(task: TaskContext) -> None:
        return None

    mesh.agent("twin", capabilities="x")(h)
    with pytest.raises(ValidationError, match="already exists"):
        mesh.agent("twin", capabilities="x")(h)


async def test_queue_depths_feed_the_gauge(mesh: Mesh) -> None:
    from agentmesh.runtime.queues import monitor_queues, queue_depths

    release = asyncio.Event()

    @mesh.agent("holder", capabilities=["hold"], max_concurrent=1)
    async def hold(task: TaskContext) -> None:
        await release.wait()

    await mesh.start()
    for _ in range(3):
        await mesh.submit("hold", {})
    await eventually(lambda: hold.in_flight == 1)
    depths = await queue_depths(mesh.transport)
    assert depths[("acme", "task:cap-hold")] == 3
    monitor = asyncio.create_task(monitor_queues(mesh.transport, interval=0.05))
    await eventually(
        lambda: (
            metrics.REGISTRY.get_sample_value(
                "agentmesh_messages_in_queue", {"tenant_id": "acme", "queue_name": "task:cap-hold"}
            )
            == 3
        )
    )
    release.set()
    await eventually(
        lambda: (
            metrics.REGISTRY.get_sample_value(
                "agentmesh_messages_in_queue", {"tenant_id": "acme", "queue_name": "task:cap-hold"}
            )
            == 0
        )
    )
    monitor.cancel()


async def test_submit_retries_transient_broker_errors(mesh: Mesh) -> None:
    from agentmesh.errors import BrokerUnavailable

    await mesh.start()
    real = mesh.transport.publish
    failures = [BrokerUnavailable("blip"), BrokerUnavailable("blip")]

    async def flaky(subject: str, env: object, *, durable: bool = False) -> None:
        if failures:
            raise failures.pop()
        await real(subject, env, durable=durable)  # type: ignore[arg-type]

    mesh.transport.publish = flaky  # type: ignore[method-assign]
    task_id = await mesh.submit("anything", {})
    assert failures == []
    stored = [Envelope.decode(e.data).id for e in mesh.transport.broker.log]  # type: ignore[attr-defined]
    assert stored.count(task_id) == 1
    failures.extend([BrokerUnavailable("down")] * 10)
    with pytest.raises(BrokerUnavailable, match="down"):
        await mesh.submit("anything", {})


async def test_broker_breaker_opens_fails_fast_and_announces_itself(mesh: Mesh) -> None:
    from agentmesh.errors import BrokerUnavailable, CircuitBreakerOpenException
    from agentmesh.resilience import CircuitState
    from agentmesh.transports import Message

    @mesh.agent("guarded-1", capabilities=["guard"])
    async def guarded(task: TaskContext) -> None:
        return None

    seen: list[Envelope] = []

    async def record(msg: Message) -> None:
        seen.append(msg.envelope)

    await mesh.start()
    await mesh.transport.subscribe(subjects.event("acme", "system.breaker"), record)
    real = mesh.transport.publish

    async def down(subject: str, env: Envelope, *, durable: bool = False) -> None:
        if durable:
            raise BrokerUnavailable("broker down")
        await real(subject, env, durable=durable)

    mesh.transport.publish = down  # type: ignore[method-assign]
    probe = Envelope.create("x", {}, tenant_id="acme")
    for _ in range(5):
        with pytest.raises(BrokerUnavailable):
            await guarded.publish_guarded("am.acme.evt.x", probe, durable=True)
    assert guarded.breaker.state == CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenException):
        await guarded.publish_guarded("am.acme.evt.x", probe, durable=True)
    await eventually(lambda: any(e.payload["to"] == "open" for e in seen))
    assert (
        metrics.REGISTRY.get_sample_value(
            "agentmesh_circuit_breaker_state", {"name": "broker:guarded-1"}
        )
        == 2
    )


async def test_submit_to_one_agents_durable_inbox(mesh: Mesh) -> None:
    async def who(task: TaskContext) -> dict[str, str]:
        return {"by": task.agent.agent_id}

    mesh.agent("left-1", capabilities=["side"])(who)
    mesh.agent("right-1", capabilities=["side"])(who)
    await mesh.start()
    for _ in range(4):
        assert await mesh.run("side", {}, to_agent="right-1", timeout=5) == {"by": "right-1"}
