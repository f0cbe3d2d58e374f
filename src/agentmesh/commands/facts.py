"""Command handlers for what the runtime reports (facts, not decisions).

A task first seen on the bus is recorded (:class:`~agentmesh.commands.messages.RecordTask`),
an agent's start of it is assigned + running (``RunTask``), an outcome whose start was not
recorded brings its assigned/running steps along (:func:`run_first`), and a live agent's
announced capabilities are added or upgraded (``SyncAgentCapabilities``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentmesh.domain import AgentAggregate, TaskAggregate, TaskStatus
from agentmesh.errors import ConcurrencyError, Conflict, NotFound
from agentmesh.store.base import OutboxMessage

from . import messages as m
from .follow import capability_changes
from .streams import TENANT_STREAM, agent_stream, task_stream

if TYPE_CHECKING:
    from .handlers import CommandHandlers

WAITING = (TaskStatus.SUBMITTED, TaskStatus.OFFERED, TaskStatus.RETRYING)


def run_first(
    t: TaskAggregate, cmd: m.CompleteTask | m.FailTask, ran: list[bool]
) -> tuple[TaskAggregate, list[Any]]:
    """The assigned/running steps the runtime reported with an outcome, when the
    task's start was not recorded (a lost or late ``task.started``)."""
    ran.clear()
    if cmd.started_at is None or not cmd.agent_id or t.status not in WAITING:
        return t, []
    ran.append(True)
    new, events = t.run_by(cmd.agent_id, attempt=cmd.attempt, at=cmd.started_at)
    return new, list(events)


def agent_done(
    cmd: m.CompleteTask | m.FailTask, ran: list[bool], error: str | None
) -> Callable[[AgentAggregate], tuple[AgentAggregate, list[Any]]]:
    def decide(a: AgentAggregate) -> tuple[AgentAggregate, list[Any]]:
        events: list[Any] = []
        if ran:
            a, started = a.task_started(cmd.task_id, at=cmd.started_at)
            events += started
        kw: dict[str, Any] = (
            {"result": cmd.result, "execution_time_ms": cmd.execution_time_ms}
            if isinstance(cmd, m.CompleteTask)
            else {"error": error, "error_code": cmd.error_code}
        )
        a, done = a.task_finished(cmd.task_id, **kw)
        return a, [*events, *done]

    return decide


class FactHandlers:
    """Handlers of the runtime's facts, on the plumbing of :class:`CommandHandlers`."""

    def __init__(self, handlers: CommandHandlers) -> None:
        self.h = handlers

    async def record_task(self, cmd: m.RecordTask) -> m.CommandResult:
        """Record a task first seen on the bus (its offer is already published); an
        unknown tenant is :class:`NotFound`."""
        if cmd.tenant_id not in self.h.tenants:
            if not await self.h.store.load(cmd.tenant_id, TENANT_STREAM):
                raise NotFound(f"unknown tenant {cmd.tenant_id!r}", code="TENANT_NOT_FOUND")
            self.h.tenants.add(cmd.tenant_id)
        at = cmd.submitted_at
        task, events = TaskAggregate.submit(
            cmd.task_id,
            cmd.tenant_id,
            cmd.task_type or cmd.capability,
            [cmd.capability],
            payload=cmd.payload,
            priority=cmd.priority,
            timeout_seconds=cmd.timeout_seconds,
            max_attempts=cmd.max_attempts,
            at=at,
            parent_task_id=cmd.parent_task_id,
        )
        task, offered = task.offer(cmd.capability, at=at)
        recorded = self.h._recorded(task, OutboxMessage(cmd.subject, cmd.envelope))
        try:
            return await self.h._append(
                cmd.tenant_id, task_stream(cmd.task_id), 0, [*events, *offered, *recorded]
            )
        except ConcurrencyError:
            raise Conflict(f"task {cmd.task_id} already exists", code="TASK_EXISTS") from None

    async def run_task(self, cmd: m.RunTask) -> m.CommandResult:
        """The runtime started the task on ``cmd.agent_id``: assigned + running."""
        _, result = await self.h._task_change(
            cmd.tenant_id,
            cmd.task_id,
            lambda t: t.run_by(cmd.agent_id, attempt=cmd.attempt, at=cmd.at),
            reoffer=False,
        )
        await self.h._agent_follow(
            cmd.tenant_id,
            cmd.agent_id,
            cmd.task_id,
            lambda a: a.task_started(cmd.task_id, at=cmd.at),
            needs_current=False,
        )
        return result

    async def sync_capabilities(self, cmd: m.SyncAgentCapabilities) -> m.CommandResult:
        """Add or upgrade what a live agent announces (no-op when nothing changed)."""
        found = await self.h.follower.follow(
            cmd.tenant_id, cmd.agent_id, lambda a: capability_changes(a, cmd.capabilities)
        )
        if not found:
            raise NotFound(f"agent {cmd.agent_id} not found", code="AGENT_NOT_FOUND")
        version = await self.h.store.stream_version(cmd.tenant_id, agent_stream(cmd.agent_id))
        return m.CommandResult(cmd.agent_id, version, ())
