"""The autonomy rules on a running agent: the decision an agent makes about each durable
task offered to it, from its live state (capabilities and levels, success history, tasks
in hand). A declined offer is released for another agent, never lost.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from agentmesh.domain.agent import AgentAggregate
from agentmesh.domain.autonomy import AgentAutonomyService, TaskOffering
from agentmesh.domain.values import AgentCapability, AgentStatus
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.runtime.execution import Decision

WORKLOAD_REASON = "workload at or above 0.8"


def aggregate_of(runtime: AgentRuntime) -> AgentAggregate:
    """The domain view of a running agent, for the autonomy rules.

    A runtime that still has free slots counts as AVAILABLE (its tasks in hand go to the
    score through ``active_tasks``), one with every slot taken as BUSY; a paused or stopped
    one as what it is.
    """
    if runtime.status in (AgentStatus.PAUSED, AgentStatus.TERMINATED, "CREATED"):
        status = AgentStatus.TERMINATED if runtime.status == "CREATED" else runtime.status
    else:
        status = (
            AgentStatus.BUSY
            if runtime.in_flight >= runtime.max_concurrent
            else AgentStatus.AVAILABLE
        )
    agent, _ = AgentAggregate.create(
        runtime.agent_id,
        runtime.tenant_id,
        runtime.agent_id,
        [AgentCapability(n, lvl) for n, lvl in runtime.capabilities.items()],
    )
    return dataclasses.replace(
        agent,
        status=AgentStatus(status),
        tasks_completed=runtime.tasks_completed,
        tasks_failed=runtime.tasks_failed,
        terminated_at=datetime.now(UTC) if status == AgentStatus.TERMINATED else None,
    )


def offering_of(task: TaskContext) -> TaskOffering:
    """The :class:`TaskOffering` of a delivered task (capability from the queue it came on)."""
    payload: dict[str, Any] = dict(task.payload)
    md = task.envelope.metadata
    if "priority" not in payload and isinstance(md.get("priority"), int):
        payload["priority"] = md["priority"]
    required = task.envelope.routing.get("required_capabilities")
    if "required_capabilities" not in payload and "capability" not in payload:
        if isinstance(required, list):
            payload["required_capabilities"] = list(required)
        elif task.capability:
            payload["required_capabilities"] = [task.capability]
    try:
        return TaskOffering.from_payload(task.task_id, payload)
    except (TypeError, ValueError):
        # a malformed field: keep the capabilities if they are a list, else the queue's
        caps = payload.get("required_capabilities")
        if isinstance(caps, list | tuple):
            return TaskOffering(task.task_id, tuple(str(c) for c in caps))
        return TaskOffering(task.task_id, (task.capability,) if task.capability else ())


def _holding_view(agent: AgentAggregate, runtime: AgentRuntime) -> AgentAggregate:
    """``agent`` as the workload rule sees it: BUSY (status load 0.8) while the runtime holds
    tasks, though :func:`aggregate_of` keeps it AVAILABLE for the hard constraints."""
    if runtime.in_flight and agent.status is AgentStatus.AVAILABLE:
        return dataclasses.replace(agent, status=AgentStatus.BUSY)
    return agent


class AutonomyPolicy:
    """The ``decide`` hook of an autonomous agent: the autonomy score, then the rule that
    it takes more work only while its workload is below 0.8 (``last_reason`` says why)."""

    def __init__(self, service: AgentAutonomyService | None = None, *, delay: float = 1.0) -> None:
        self.service = service or AgentAutonomyService()
        self.delay = delay
        self.runtime: AgentRuntime | None = None
        self.last_reason = ""

    def __call__(self, task: TaskContext) -> Decision:
        return self.evaluate(task.agent, offering_of(task))

    def evaluate(self, runtime: AgentRuntime, offering: TaskOffering) -> Decision:
        """Accept or decline ``offering`` for ``runtime`` as it is right now."""
        agent = aggregate_of(runtime)
        verdict = self.service.should_accept_task(agent, offering, active_tasks=runtime.in_flight)
        if verdict.should_accept and not self.service.should_accept_more_tasks(
            _holding_view(agent, runtime), active_tasks=runtime.in_flight
        ):
            self.last_reason = WORKLOAD_REASON
            return Decision(False, WORKLOAD_REASON, self.delay)
        self.last_reason = verdict.reason
        return Decision(verdict.should_accept, verdict.reason, self.delay)
