"""The seed's agent kinds, built on :class:`~agentmesh.runtime.agent.AgentRuntime`.

=====================  ======================================================================
SimpleAgent            :func:`simple_agent`: serves its capabilities with a handler (echo)
TaskExecutorAgent      :func:`task_executor`: runs the built-in operations of assigned tasks
OrchestratorAgent      :func:`orchestrator_agent` (fan-out plans) and :func:`assign_task`
AutonomousAgent        :func:`agentmesh.agents.autonomous.autonomous_agent`
SwarmOrchestrator      :class:`agentmesh.patterns.swarm.SwarmOrchestrator`
SwarmWorkerAgent       :class:`agentmesh.patterns.swarm.SwarmWorker`
=====================  ======================================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentmesh import subjects
from agentmesh.agents.builtin import echo
from agentmesh.envelope import Envelope
from agentmesh.errors import ValidationError
from agentmesh.patterns.orchestrator_worker import POLICIES, Orchestrator, Subtask
from agentmesh.patterns.swarm import SwarmOrchestrator, SwarmWorker
from agentmesh.runtime.agent import AgentHandler, AgentRuntime
from agentmesh.runtime.context import TaskContext

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

Capabilities = Mapping[str, int] | Iterable[str] | str
SwarmWorkerAgent = SwarmWorker
__all__ = [
    "SwarmOrchestrator",
    "SwarmWorkerAgent",
    "assign_task",
    "execute_operation",
    "orchestrator_agent",
    "simple_agent",
    "task_executor",
]


def simple_agent(
    mesh: Mesh, agent_id: str, *, capabilities: Capabilities, handler: AgentHandler = echo
) -> AgentRuntime:
    """SimpleAgent: a plain subscriber of its capabilities (echo unless told otherwise)."""
    return mesh.add(AgentRuntime(mesh, agent_id, handler, capabilities=capabilities))


OPERATIONS = ("echo", "sum", "word_count", "uppercase", "sleep")


async def execute_operation(task: TaskContext) -> dict[str, Any]:
    """The TaskExecutorAgent's work: ``{"operation": one of OPERATIONS, ...}``."""
    p = task.payload
    op = p.get("operation", "echo")
    if op == "sum":
        values = p.get("values")
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise ValidationError("operation 'sum' needs 'values': a list of numbers")
        return {"operation": op, "result": sum(values)}
    if op == "word_count":
        return {"operation": op, "result": len(str(p.get("text", "")).split())}
    if op == "uppercase":
        return {"operation": op, "result": str(p.get("text", "")).upper()}
    if op == "sleep":
        seconds = float(p.get("seconds", 0.1))
        if not 0 <= seconds <= 300:
            raise ValidationError("operation 'sleep' takes 0-300 seconds")
        await asyncio.sleep(seconds)
        return {"operation": op, "result": seconds}
    if op == "echo":
        return {"operation": op, "result": await echo(task)}
    raise ValidationError(f"unknown operation {op!r}: use one of {', '.join(OPERATIONS)}")


def task_executor(
    mesh: Mesh, agent_id: str, *, capabilities: Capabilities, max_concurrent: int = 8
) -> AgentRuntime:
    """TaskExecutorAgent: executes the operations of tasks assigned to it or its queues."""
    return mesh.add(
        AgentRuntime(
            mesh,
            agent_id,
            execute_operation,
            capabilities=capabilities,
            max_concurrent=max_concurrent,
        )
    )


def orchestrator_agent(
    mesh: Mesh, agent_id: str, *, capabilities: Capabilities, max_concurrent: int = 8
) -> AgentRuntime:
    """OrchestratorAgent: a task ``{"subtasks": [{"capability", "payload"}], "policy",
    "deadline"}`` is fanned out to workers and the results come back aggregated."""

    async def orchestrate(task: TaskContext) -> dict[str, Any]:
        p = task.payload
        raw = p.get("subtasks")
        if not isinstance(raw, list) or not raw:
            raise ValidationError("an orchestration needs 'subtasks': a non-empty list")
        policy = p.get("policy", "retry")
        if policy not in POLICIES:
            raise ValidationError(f"unknown policy {policy!r}")
        orch = Orchestrator(mesh, policy=policy, deadline=float(p.get("deadline", 300)))
        out = await orch.run(
            [Subtask(str(s["capability"]), dict(s.get("payload") or {})) for s in raw],
            run_id=task.task_id.replace(".", "_")[:64],
        )
        return {**out.to_dict(), "results": [r.result for r in out.results]}

    return mesh.add(
        AgentRuntime(
            mesh, agent_id, orchestrate, capabilities=capabilities, max_concurrent=max_concurrent
        )
    )


async def assign_task(
    mesh: Mesh, source: str, target_agent_id: str, details: dict[str, Any]
) -> str:
    """Send one ``TaskAssigned`` (a durable task) to an agent's inbox; returns the task id."""
    env = Envelope.create(
        "task.offered",
        dict(details),
        tenant_id=mesh.tenant,
        source=source,
        routing={"destination": target_agent_id, "assigned_by": source},
        domain_event="TaskAssigned",
    )
    inbox = subjects.inbox(mesh.tenant, target_agent_id)
    await mesh.provision(inbox, subjects.inbox_group(target_agent_id))  # kept until it starts
    await mesh.publish_durably(inbox, env)
    return env.id
