"""The execution engine: effectively-once results, retries, timeouts, cancel, autonomy, routing.

Every test runs on the in-memory broker and on a real NATS server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Envelope, Mesh, TaskContext, subjects
from agentmesh.config import Settings
from agentmesh.errors import NotFound, RemoteError
from agentmesh.runtime.execution import Decision
from agentmesh.transports import Message
from tests.helpers import Collector, eventually, quiet_period, registry_knows

pytestmark = pytest.mark.integration


def settings(tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "agentmesh_data_dir": tmp_path,
        "agentmesh_heartbeat_interval": 0.1,
        "agentmesh_health_check_timeout": 1.0,
        "agentmesh_ack_wait": 1.0,
        "agentmesh_max_deliver": 3,
    }
    base.update(kw)
    return Settings(**base)


@pytest.fixture(params=["memory", "nats"])
def make_mesh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Mesh]:
    url = (
        f"memory://{uuid.uuid4().hex}"
        if request.param == "memory"
        else request.getfixturevalue("nats_url")
    )
    tenant = "t" + uuid.uuid4().hex[:8]

    def make(**kw: Any) -> Mesh:
        return Mesh(url, tenant=tenant, settings=settings(tmp_path, **kw))

    return make


@pytest.fixture
async def events(
    make_mesh: Callable[..., Mesh],
) -> AsyncIterator[tuple[Mesh, dict[str, list[Envelope]]]]:
    """A client mesh that records every task outcome event."""
    client = make_mesh()
    seen: dict[str, list[Envelope]] = {}
    await client.start()
    for kind in ("task.completed", "task.failed", "task.cancelled"):

        async def record(env: Envelope, kind: str = kind) -> None:
            seen.setdefault(kind, []).append(env)

        await client.on_event(kind, record, durable=f"watch-{kind.replace('.', '-')}")
    yield client, seen
    await client.stop()


async def lose_first_settle_then_redeliver_elsewhere(
    make_mesh: Callable[..., Mesh],
    client: Mesh,
    capability: str,
    handler: Callable[[TaskContext], Any],
    settle: str,
) -> tuple[str, list[str]]:
    """Run a task on one agent whose ``settle`` (ack/term) of the offer never reaches the
    broker (the agent dies right after publishing the outcome), then start another agent:
    the broker redelivers the offer to it after the ack wait. Returns the task id and the
    offers settled through ``settle`` (the lost one first)."""
    original = getattr(Message, settle)
    settled: list[str] = []

    async def lose_first(self: Message) -> None:
        if self.envelope.type != "task.offered":
            await original(self)
            return
        settled.append(self.envelope.id)
        if len(settled) == 1:
            self.settled = True
            self.outcome = "lost"
            return
        await original(self)

    patch = pytest.MonkeyPatch()
    patch.setattr(Message, settle, lose_first)
    try:
        first = make_mesh()
        first.agent(f"{capability}-1", capabilities=[capability])(handler)
        async with first:
            task_id = await client.submit(capability, {})
            await eventually(lambda: len(settled) >= 1, timeout=15, what="the first settle")
        second = make_mesh()
        second.agent(f"{capability}-2", capabilities=[capability])(handler)
        async with second:  # the redelivery reaches the second agent after the ack wait
            await eventually(lambda: len(settled) >= 2, timeout=15, what="the redelivery")
    finally:
        patch.undo()
    return task_id, settled


async def test_a_redelivered_completed_task_is_not_run_again(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, seen = events
    calls: list[str] = []

    async def once(task: TaskContext) -> dict[str, str]:
        calls.append(task.task_id)
        return {"ok": "yes"}

    task_id, acked = await lose_first_settle_then_redeliver_elsewhere(
        make_mesh, client, "once", once, "ack"
    )
    assert acked == [task_id, task_id]
    assert calls == [task_id], "the handler ran once although the task was delivered twice"
    announced = {e.id for e in seen["task.completed"]}
    assert len(announced) == 1, "re-announcing the result reuses its envelope id"


async def test_a_redelivered_task_that_failed_for_good_is_not_run_again(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, seen = events
    calls: list[int] = []

    async def strict(task: TaskContext) -> None:
        calls.append(task.attempt)
        raise ValueError("bad input, retrying cannot help")

    task_id, termed = await lose_first_settle_then_redeliver_elsewhere(
        make_mesh, client, "strict", strict, "term"
    )
    assert termed == [task_id, task_id]
    assert calls == [1], "the handler ran once although the task was delivered twice"
    await eventually(lambda: seen.get("task.failed"))
    announced = {e.id for e in seen["task.failed"]}
    assert len(announced) == 1, "re-announcing the failure reuses its envelope id"


async def test_timeout_retries_then_fails_with_a_clear_error(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, _ = events
    worker = make_mesh()
    runs: list[int] = []

    @worker.agent("sleepy-1", capabilities=["sleepy"])
    async def sleepy(task: TaskContext) -> None:
        runs.append(task.attempt)
        await asyncio.sleep(30)

    async with worker:
        task_id = await client.submit("sleepy", {}, timeout_seconds=1, max_attempts=2)
        with pytest.raises(RemoteError, match="exceeded its timeout of 1s"):
            await client.wait_result(task_id, timeout=20)
    assert runs == [1, 2]


async def test_non_retryable_errors_fail_at_once_and_poison_is_dead_lettered(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, seen = events
    worker = make_mesh()
    attempts: dict[str, list[int]] = {}

    @worker.agent("picky-1", capabilities=["picky"], max_concurrent=16)
    async def picky(task: TaskContext) -> dict[str, int]:
        attempts.setdefault(task.payload["kind"], []).append(task.attempt)
        if task.payload["kind"] == "poison":
            raise RuntimeError("poison pill")
        if task.payload["kind"] == "invalid":
            raise ValueError("bad input, retrying cannot help")
        return {"n": task.payload["n"]}

    dlq = Collector()
    await client.transport.subscribe(
        subjects.dead_letter(subjects.task(client.tenant, "picky")), dlq, durable="dlq"
    )
    async with worker:
        poison = await client.submit("picky", {"kind": "poison", "n": -1}, max_attempts=3)
        invalid = await client.submit("picky", {"kind": "invalid", "n": -2}, max_attempts=3)
        good = list(
            await asyncio.gather(
                *(client.submit("picky", {"kind": "good", "n": i}) for i in range(998))
            )
        )
        await eventually(lambda: len(seen.get("task.completed", [])) >= 998, timeout=60)
        await eventually(lambda: len(seen.get("task.failed", [])) >= 2, timeout=30)
        await dlq.wait_for(2, timeout=10)
    assert attempts["poison"] == [1, 2, 3]
    assert attempts["invalid"] == [1]
    assert {e.payload["task_id"] for e in seen["task.completed"]} == set(good)
    failed = {e.payload["task_id"]: e.payload for e in seen["task.failed"]}
    assert failed[poison]["attempts"] == 3
    assert "poison pill" in failed[poison]["error"]
    assert failed[invalid]["retryable"] is False
    dead = {m.envelope.id: m.envelope.context["error_context"] for m in dlq.messages}
    assert dead[poison]["retry_count"] == 3
    assert "poison pill" in dead[poison]["error"]


async def test_cancel_reaches_a_running_task(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, seen = events
    worker = make_mesh()
    started, interrupted = asyncio.Event(), asyncio.Event()

    @worker.agent("long-1", capabilities=["long"])
    async def long(task: TaskContext) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            interrupted.set()
            raise

    async with worker:
        task_id = await client.submit("long", {})
        await asyncio.wait_for(started.wait(), 10)
        await client.cancel(task_id)
        await asyncio.wait_for(interrupted.wait(), 5)
        with pytest.raises(RemoteError, match="cancelled"):
            await client.wait_result(task_id, timeout=10)
        # cancelled before start: the agent drops it when it arrives
        early = str(uuid.uuid4())
        await client.cancel(early)
        executor = worker.agents["long-1"].executor
        await eventually(lambda: executor.heard_cancel(early), what="the cancel heard")
        await client.submit("long", {}, task_id=early)
        await eventually(
            lambda: any(e.payload["task_id"] == early for e in seen.get("task.cancelled", []))
        )
    assert worker.agents["long-1"].in_flight == 0


async def test_long_tasks_are_kept_alive_and_never_redelivered(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, _ = events
    worker = make_mesh()
    deliveries: list[int] = []

    @worker.agent("marathon-1", capabilities=["marathon"])
    async def marathon(task: TaskContext) -> dict[str, bool]:
        deliveries.append(task.attempt)
        await asyncio.sleep(3.2)  # more than 3x the 1 s ack wait
        return {"done": True}

    async with worker:
        task_id = await client.submit("marathon", {})
        assert await client.wait_result(task_id, timeout=20) == {"done": True}
        await quiet_period(1.2)  # past another ack wait: no redelivery may follow
    assert deliveries == [1]


async def test_declined_offers_go_to_other_agents(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, seen = events
    worker = make_mesh()

    def refuse(task: TaskContext) -> Decision:
        return Decision(False, "not my kind of work", delay=0.05)

    async def handle(task: TaskContext) -> dict[str, str]:
        return {"by": task.agent.agent_id}

    worker.agent("grumpy-1", capabilities=["chore"], decide=refuse)(handle)
    worker.agent("willing-1", capabilities=["chore"], decide=lambda task: True)(handle)
    async with worker:
        ids = [await client.submit("chore", {"n": i}) for i in range(20)]
        await eventually(lambda: len(seen.get("task.completed", [])) >= 20, timeout=30)
    assert {e.payload["task_id"] for e in seen["task.completed"]} == set(ids)
    assert {e.payload["agent_id"] for e in seen["task.completed"]} == {"willing-1"}
    assert worker.agents["grumpy-1"].executor.declined > 0


async def test_routed_mode_spreads_work_and_waits_for_a_capable_agent(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, seen = events
    worker = make_mesh()

    async def handle(task: TaskContext) -> dict[str, str]:
        return {"by": task.agent.agent_id}

    worker.agent("router-a", capabilities=["route"])(handle)
    worker.agent("router-b", capabilities=["route"])(handle)
    async with worker:
        await eventually(
            lambda: len(client.registry.agents(client.tenant, capability="route")) == 2
        )
        ids = [await client.submit("route", {}, strategy="round_robin") for _ in range(10)]
        await eventually(lambda: len(seen.get("task.completed", [])) >= 10, timeout=20)
        by_agent = [
            e.payload["agent_id"] for e in seen["task.completed"] if e.payload["task_id"] in ids
        ]
        assert by_agent.count("router-a") == 5
        assert by_agent.count("router-b") == 5
        # nobody can translate yet: the task waits in the queue with a visible reason
        waiting = await client.submit("translate", {}, strategy="least_connections")
        assert "no agent has capability translate" in client.router.last_reason
        late = make_mesh()
        late.agent("translator-9", capabilities=["translate"])(handle)
        async with late:
            assert await client.wait_result(waiting, timeout=15) == {"by": "translator-9"}


async def test_ask_sends_a_message_to_the_best_scored_agent_and_spreads_by_load(
    make_mesh: Callable[..., Mesh], events: tuple[Mesh, dict[str, list[Envelope]]]
) -> None:
    client, _ = events
    worker = make_mesh()

    async def handle(task: TaskContext) -> dict[str, Any]:
        return {"by": task.agent.agent_id, "got": task.payload}

    worker.agent("analyst-1", capabilities=["analyze", "reasoning"])(handle)
    worker.agent("generalist-1", capabilities=["analyze"])(handle)
    worker.agent("writer-1", capabilities=["generate", "create"])(handle)
    async with worker:
        await registry_knows(client, "analyst-1", "generalist-1", "writer-1")
        first = await client.ask({"q": 1}, intent="analysis")
        # both capabilities of the intent: 0.4 + 0.3 (idle) + 0.2 * 0.8 + 0.1 (same tenant) * 0.9
        assert first == {"agent_id": "analyst-1", "score": 0.95, "result": first["result"]}
        assert first["result"]["got"] == {"q": 1}
        answered = [(await client.ask({}, intent="analysis"))["agent_id"] for _ in range(9)]
        # each message routed to the analyst costs it 0.03: after seven the generalist
        # (one of the two capabilities, 0.75) is ahead
        assert answered[:6] == ["analyst-1"] * 6
        assert "generalist-1" in answered
        assert "writer-1" not in answered
        wrote = await client.ask({}, capabilities=["generate"])
        assert wrote["agent_id"] == "writer-1"
        with pytest.raises(NotFound, match="no agent has any of translate") as caught:
            await client.ask({}, capabilities=["translate"])
        assert caught.value.code == "NO_ROUTE"
