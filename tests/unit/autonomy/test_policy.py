"""The autonomy hook of an AutonomousAgent: AutonomyPolicy, aggregate_of and offering_of on
real runtimes and task contexts (memory transport)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Envelope, Mesh, TaskContext, subjects
from agentmesh.agents.autonomous import AutonomyPolicy, aggregate_of, autonomous_agent, offering_of
from agentmesh.config import Settings
from agentmesh.domain.autonomy import AgentAutonomyService, TaskOffering
from agentmesh.domain.values import AgentStatus
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.execution import Decision
from agentmesh.transports.message import CoreDelivery, Message
from tests.helpers import eventually

WORKLOAD = "workload at or above 0.8"


def settings(tmp_path: Path) -> Settings:
    return Settings(
        agentmesh_data_dir=tmp_path,
        agentmesh_heartbeat_interval=0.05,
        agentmesh_health_check_timeout=0.5,
        agentmesh_ack_wait=1.0,
    )


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    m = Mesh(f"memory://{uuid.uuid4().hex}", tenant="acme", settings=settings(tmp_path))
    yield m
    await m.stop()


def waiting_handler(gate: asyncio.Event) -> Callable[[TaskContext], Any]:
    async def handle(task: TaskContext) -> dict[str, str]:
        await gate.wait()
        return {"by": task.agent.agent_id}

    return handle


def agent(
    mesh: Mesh,
    caps: dict[str, int] | None = None,
    *,
    gate: asyncio.Event | None = None,
    threshold: float = 0.6,
    max_concurrent: int = 5,
    agent_id: str = "auto-1",
) -> AgentRuntime:
    return autonomous_agent(
        mesh,
        agent_id,
        waiting_handler(gate or asyncio.Event()),
        capabilities=caps or {"summarize": 4},
        accept_threshold=threshold,
        max_concurrent=max_concurrent,
    )


def offered(
    runtime: AgentRuntime,
    payload: dict[str, Any] | None = None,
    *,
    capability: str | None = "summarize",
    routing: dict[str, Any] | None = None,
    **metadata: Any,
) -> TaskContext:
    """A durable task as the executor hands it to the policy (delivered on ``capability``)."""
    env = Envelope.create(
        "task.offered",
        dict(payload or {}),
        tenant_id=runtime.tenant_id,
        source="test",
        routing=routing,
        **metadata,
    )
    subject = (
        subjects.task(runtime.tenant_id, capability)
        if capability
        else subjects.inbox(runtime.tenant_id, runtime.agent_id)
    )
    msg = Message(CoreDelivery(subject, env.encode()), env, durable=True, respond=None)
    return TaskContext(runtime, msg, capability, "task")


def policy_of(runtime: AgentRuntime) -> AutonomyPolicy:
    decide = runtime.executor.decide
    assert isinstance(decide, AutonomyPolicy)
    return decide


# -- aggregate_of -----------------------------------------------------------------------
async def test_aggregate_mirrors_the_runtime(mesh: Mesh) -> None:
    gate = asyncio.Event()
    r = agent(mesh, {"summarize": 4, "translate": 2}, gate=gate, max_concurrent=2)
    assert aggregate_of(r).status is AgentStatus.TERMINATED  # created, not started
    await mesh.start()
    r.tasks_completed, r.tasks_failed = 7, 1
    view = aggregate_of(r)
    assert view.status is AgentStatus.AVAILABLE
    assert (view.agent_id, view.tenant_id) == ("auto-1", "acme")
    assert {c.name: c.proficiency_level for c in view.capabilities} == {
        "summarize": 4,
        "translate": 2,
    }
    assert (view.tasks_completed, view.tasks_failed) == (7, 1)
    running = [asyncio.create_task(r.invoke(offered(r)))]
    await eventually(lambda: r.in_flight == 1)
    assert aggregate_of(r).status is AgentStatus.AVAILABLE  # a free slot left
    running.append(asyncio.create_task(r.invoke(offered(r))))
    await eventually(lambda: r.in_flight == 2)
    assert aggregate_of(r).status is AgentStatus.BUSY  # every slot taken
    gate.set()
    await asyncio.gather(*running)
    await r.pause()
    assert aggregate_of(r).status is AgentStatus.PAUSED
    await r.stop()
    stopped = aggregate_of(r)
    assert stopped.status is AgentStatus.TERMINATED
    assert stopped.terminated_at is not None


# -- offering_of ------------------------------------------------------------------------
async def test_capability_defaults_to_the_queue(mesh: Mesh) -> None:
    r = agent(mesh)
    task = offered(r, {"text": "hi"}, capability="summarize")
    offer = offering_of(task)
    assert offer == TaskOffering(task.task_id, ("summarize",))
    assert offering_of(offered(r, {}, capability=None)).required_capabilities == ()


async def test_routing_required_capabilities_are_honoured(mesh: Mesh) -> None:
    r = agent(mesh)
    routing = {"required_capabilities": ["summarize", "translate"]}
    assert offering_of(offered(r, routing=routing)).required_capabilities == (
        "summarize",
        "translate",
    )
    # the payload's own capability fields win over routing and the queue
    own = offered(r, {"capability": "classify"}, routing=routing)
    assert offering_of(own).required_capabilities == ("classify",)
    listed = offered(r, {"required_capabilities": ["ocr"]}, routing=routing)
    assert offering_of(listed).required_capabilities == ("ocr",)


async def test_priority_comes_from_the_envelope_metadata(mesh: Mesh) -> None:
    r = agent(mesh)
    assert offering_of(offered(r, priority=5)).priority == 5
    assert offering_of(offered(r, {"priority": 2}, priority=5)).priority == 2  # payload wins
    assert offering_of(offered(r, priority="urgent")).priority == 3  # not an int: ignored
    assert offering_of(offered(r)).priority == 3


@pytest.mark.parametrize(
    "payload",
    [
        {"priority": 9},
        {"priority": "high"},
        {"deadline": "tomorrow"},
        {"estimated_resource_load": 7},
        {"required_success_rate": -1},
        {"required_capabilities": 5},
        {"required_capabilities": ["summarize"], "priority": 0},
    ],
)
async def test_a_malformed_payload_falls_back(mesh: Mesh, payload: dict[str, Any]) -> None:
    r = agent(mesh)
    await mesh.start()
    task = offered(r, payload)
    offer = offering_of(task)
    assert offer.task_id == task.task_id
    assert offer.priority == 3
    assert offer.required_capabilities == ("summarize",)
    assert policy_of(r)(task).accept  # still decided on, never raised


# -- AutonomyPolicy ---------------------------------------------------------------------
async def test_accepts_when_capable_and_idle(mesh: Mesh) -> None:
    r = agent(mesh)
    await mesh.start()
    policy = policy_of(r)
    decision = policy(offered(r, {"text": "hi"}))
    # 0.4*3/5 + 0.3*4/5 + 0.2*(1-0) + 0.1*1 = 0.78
    assert decision == Decision(True, "Task accepted (score: 0.78)", 1.0)
    assert policy.last_reason == "Task accepted (score: 0.78)"


async def test_declines_a_missing_capability(mesh: Mesh) -> None:
    r = agent(mesh)
    await mesh.start()
    policy = policy_of(r)
    decision = policy(offered(r, {"capability": "translate"}))
    assert not decision.accept
    assert decision.reason == "Agent missing required capabilities: translate"
    assert policy.last_reason == decision.reason


async def test_declines_a_capability_level_too_low(mesh: Mesh) -> None:
    novice = agent(mesh, {"summarize": 3}, threshold=0.75, agent_id="novice-1")
    expert = agent(mesh, {"summarize": 5}, threshold=0.75, agent_id="expert-1")
    await mesh.start()
    # 0.24 + 0.3*3/5 + 0.2 + 0.1 = 0.72 against 0.84 at level 5
    low = policy_of(novice)(offered(novice))
    assert low == Decision(False, "Task attractiveness score 0.72 below threshold 0.75", 1.0)
    assert policy_of(expert)(offered(expert)).accept
    # a higher priority (from the envelope metadata) tips the novice over the threshold
    assert policy_of(novice)(offered(novice, priority=5)).accept


async def test_declines_when_tasks_in_hand_push_the_workload_to_0_8(mesh: Mesh) -> None:
    gate = asyncio.Event()
    r = agent(mesh, gate=gate, max_concurrent=5)
    await mesh.start()
    policy = policy_of(r)
    running: list[asyncio.Task[dict[str, Any]]] = []
    try:
        for held in range(1, 5):
            running.append(asyncio.create_task(r.invoke(offered(r))))
            await eventually(lambda: r.in_flight == len(running))
            decision = policy(offered(r))
            # BUSY (load 0.8) with held/5 slots: workload (0.8 + held/5) / 2
            assert decision.accept is (held < 4), (held, decision)
        assert decision == Decision(False, WORKLOAD, 1.0)
        assert policy.last_reason == WORKLOAD
    finally:
        gate.set()
        await asyncio.gather(*running)
    assert r.in_flight == 0
    assert policy(offered(r)).accept


async def test_a_paused_or_terminated_runtime_declines(mesh: Mesh) -> None:
    r = agent(mesh)
    await mesh.start()
    policy = policy_of(r)
    await r.pause()
    paused = policy(offered(r))
    assert paused == Decision(False, "Agent is PAUSED, not available for new tasks", 1.0)
    await r.resume()
    assert policy(offered(r)).accept
    await r.stop()
    stopped = policy(offered(r))
    assert stopped == Decision(False, "Agent is TERMINATED, not available for new tasks", 1.0)
    assert policy.last_reason == stopped.reason


async def test_the_decision_carries_the_policy_delay(mesh: Mesh) -> None:
    r = agent(mesh)
    await mesh.start()
    policy = AutonomyPolicy(AgentAutonomyService(0.6, 5), delay=0.25)
    assert policy.last_reason == ""
    yes = policy(offered(r))
    no = policy(offered(r, {"capability": "translate"}))
    assert (yes.accept, yes.delay) == (True, 0.25)
    assert (no.accept, no.delay) == (False, 0.25)
    assert policy.last_reason == no.reason


# -- on a mesh --------------------------------------------------------------------------
async def test_an_underqualified_autonomous_agent_leaves_the_task_to_another(
    mesh: Mesh,
) -> None:
    """The novice's level scores below the threshold: it declines every offer (nak with the
    policy's delay) and the expert completes the tasks."""
    gate = asyncio.Event()
    gate.set()
    novice = agent(mesh, {"summarize": 1}, gate=gate, threshold=0.75, agent_id="novice-1")
    expert = agent(mesh, {"summarize": 5}, gate=gate, threshold=0.75, agent_id="expert-1")
    policy_of(novice).delay = 0.05
    await mesh.start()
    ids = [await mesh.submit("summarize", {"n": i}) for i in range(12)]
    results = [await mesh.wait_result(task_id, timeout=10) for task_id in ids]
    assert results == [{"by": "expert-1"}] * 12
    assert novice.executor.declined > 0
    assert novice.tasks_completed == 0
    assert expert.tasks_completed == 12
    assert "below threshold 0.75" in policy_of(novice).last_reason
