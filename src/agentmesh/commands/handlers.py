"""Command handlers: load -> decide (domain) -> append (events + outbox in one transaction).

Every appended domain event is also published, through the outbox, on
``am.<tenant>.evt.<topic>`` (e.g. ``am.acme.evt.task.submitted``); a task offer goes to
``am.<tenant>.task.<capability>`` as a ``task.offered`` envelope and, when an
:class:`~agentmesh.security.crypto.EncryptionService` is configured, is recorded
(Fernet-encrypted) for the messages read model. A concurrent write to the same
aggregate is retried (reload and decide again) a few times before
:class:`~agentmesh.errors.ConcurrencyError` reaches the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from agentmesh import subjects
from agentmesh.domain import (
    AgentAggregate,
    AgentCapability,
    AgentEvent,
    AgentHeartbeat,
    DomainEvent,
    MessageRecordedEvent,
    ResourceRequirement,
    TaskAggregate,
    TenantAggregate,
    TenantNameReservedEvent,
    tenant_name_key,
)
from agentmesh.domain.task_events import TaskOfferedEvent
from agentmesh.errors import ConcurrencyError, Conflict, NotFound, ValidationError
from agentmesh.observability import metrics
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import EventStore, NewEvent, OutboxMessage
from agentmesh.store.queries import ReadModels

from . import batch
from . import messages as m
from .envelopes import event_envelope, offer_envelope, recorded_offer
from .facts import agent_done, run_first
from .follow import AgentFollower
from .quota import QuotaWindow
from .streams import TENANT_STREAM, agent_stream, task_stream

T = TypeVar("T")
RETRIES = 5


class CommandHandlers:
    """The handlers of every command of :mod:`agentmesh.commands.messages`."""

    def __init__(
        self,
        store: EventStore,
        read_models: ReadModels | None = None,
        crypto: EncryptionService | None = None,
    ) -> None:
        self.store = store
        self.read_models = read_models
        self.crypto = crypto
        self.follower = AgentFollower(self._load_agent, self._append_agent, since=self._agent_since)
        self.quota = QuotaWindow(read_models) if read_models is not None else None
        self.tenants: set[str] = set()  # tenants known to exist (tenants are never deleted)

    # -- plumbing ----------------------------------------------------------------------
    async def _append(
        self,
        tenant_id: str,
        stream: str,
        expected: int,
        events: Sequence[DomainEvent],
        extra: Sequence[OutboxMessage] = (),
    ) -> m.CommandResult:
        outbox = [event_envelope(e) for e in events if not isinstance(e, MessageRecordedEvent)]
        result = await self.store.append(
            tenant_id,
            stream,
            expected,
            [NewEvent.of(e) for e in events],
            outbox=[*extra, *outbox],
        )
        for e in events:
            metrics.events_saved.labels(tenant_id, e.event_type).inc()
        aggregate = events[0].aggregate_id if events else stream
        return m.CommandResult(aggregate, result.version, tuple(e.event_type for e in events))

    async def _retry(self, fn: Callable[[], Awaitable[T]]) -> T:
        for _ in range(RETRIES - 1):
            try:
                return await fn()
            except ConcurrencyError:
                continue
        return await fn()

    async def load_agent(self, tenant_id: str, agent_id: str) -> AgentAggregate | None:
        return await self.follower.latest(tenant_id, agent_id)

    async def _load_agent(self, tenant_id: str, agent_id: str) -> tuple[AgentAggregate, int] | None:
        """The agent and its stream version, or None when it is not registered."""
        stored = await self.store.load(tenant_id, agent_stream(agent_id))
        if not stored:
            return None
        return AgentAggregate.replay(s.decode() for s in stored), stored[-1].version

    async def _agent_since(
        self, tenant_id: str, agent_id: str, agent: AgentAggregate, version: int
    ) -> tuple[AgentAggregate, int]:
        """``agent`` at ``version`` caught up with the events stored since."""
        stored = await self.store.load(tenant_id, agent_stream(agent_id), version + 1)
        for event in (s.decode() for s in stored):
            if isinstance(event, AgentEvent):
                agent = agent.apply(event)
        return agent, (stored[-1].version if stored else version)

    async def load_task(self, tenant_id: str, task_id: str) -> TaskAggregate:
        return (await self._load_task(tenant_id, task_id))[0]

    async def _load_task(self, tenant_id: str, task_id: str) -> tuple[TaskAggregate, int]:
        """The task and its stream version (the stream also holds recorded messages)."""
        stored = await self.store.load(tenant_id, task_stream(task_id))
        if not stored:
            raise NotFound(f"task {task_id} not found in tenant {tenant_id}", code="TASK_NOT_FOUND")
        return TaskAggregate.replay(s.decode() for s in stored), stored[-1].version

    async def _agent(self, tenant_id: str, agent_id: str) -> tuple[AgentAggregate, int]:
        found = await self._load_agent(tenant_id, agent_id)
        if found is None:
            raise NotFound(
                f"agent {agent_id} not found in tenant {tenant_id}", code="AGENT_NOT_FOUND"
            )
        return found

    def _recorded(self, task: TaskAggregate, msg: OutboxMessage) -> list[DomainEvent]:
        return recorded_offer(task, msg, self.crypto)

    # -- tenants -----------------------------------------------------------------------
    async def create_tenant(self, cmd: m.CreateTenant) -> m.CommandResult:
        """Reserve the unique name, then create the tenant (id: uuid4 unless given)."""
        tenant_id = cmd.tenant_id or str(uuid.uuid4())
        tenant, events = TenantAggregate.create(
            tenant_id,
            cmd.name,
            max_agents=cmd.max_agents,
            max_messages_per_hour=cmd.max_messages_per_hour,
        )
        reserve = TenantNameReservedEvent(
            aggregate_id=tenant_name_key(tenant.name),
            tenant_id=subjects.SYSTEM_TENANT,
            name=tenant.name,
            reserved_for=tenant_id,
        )
        try:
            await self.store.append(
                subjects.SYSTEM_TENANT, reserve.aggregate_id, 0, [NewEvent.of(reserve)]
            )
        except ConcurrencyError:
            raise Conflict(
                f"Tenant with name '{tenant.name}' already exists.", code="TENANT_EXISTS"
            ) from None
        try:
            return await self._append(tenant_id, TENANT_STREAM, 0, events)
        except ConcurrencyError:
            raise Conflict(f"tenant id {tenant_id} already exists", code="TENANT_EXISTS") from None

    # -- agents ------------------------------------------------------------------------
    async def register_agent(self, cmd: m.RegisterAgent) -> m.CommandResult:
        caps = [AgentCapability.from_level(n, lvl) for n, lvl in cmd.capabilities.items()]
        agent, events = AgentAggregate.create(
            cmd.agent_id,
            cmd.tenant_id,
            cmd.name,
            caps,
            description=cmd.description,
            agent_type=cmd.agent_type,
            metadata=cmd.metadata,
            tags=cmd.tags,
            resource_requirements=(
                ResourceRequirement.from_dict(cmd.resource_requirements)
                if cmd.resource_requirements
                else None
            ),
        )
        if self.read_models is not None:
            doc = await self.read_models.get_tenant(cmd.tenant_id)
            if doc is not None:
                from agentmesh.store.documents import tenant_from_doc

                count = await self.read_models.count_agents(cmd.tenant_id)
                tenant_from_doc(doc).check_agent_quota(count)
        try:
            result = await self._append(cmd.tenant_id, agent_stream(agent.agent_id), 0, events)
        except ConcurrencyError:
            raise Conflict(
                f"agent {cmd.agent_id} already exists in tenant {cmd.tenant_id}",
                code="AGENT_EXISTS",
            ) from None
        metrics.agents_created.labels(cmd.tenant_id).inc()
        return result

    async def _agent_change(
        self,
        tenant_id: str,
        agent_id: str,
        decide: Callable[[AgentAggregate], tuple[AgentAggregate, Sequence[DomainEvent]]],
    ) -> m.CommandResult:
        """Through the follower, on the latest stored state (caught up from its cache)."""
        done: list[m.CommandResult] = []

        async def append(t: str, a: str, version: int, events: Sequence[DomainEvent]) -> int:
            done.append(await self._append(t, agent_stream(a), version, events))
            return done[-1].version

        if not await self.follower.follow(tenant_id, agent_id, decide, fresh=True, append=append):
            raise NotFound(
                f"agent {agent_id} not found in tenant {tenant_id}", code="AGENT_NOT_FOUND"
            )
        if not done:
            raise ValidationError("append needs at least one event")
        return done[-1]

    async def activate_agent(self, cmd: m.ActivateAgent) -> m.CommandResult:
        return await self._agent_change(cmd.tenant_id, cmd.agent_id, lambda a: a.activate())

    async def pause_agent(self, cmd: m.PauseAgent) -> m.CommandResult:
        return await self._agent_change(cmd.tenant_id, cmd.agent_id, lambda a: a.pause(cmd.reason))

    async def resume_agent(self, cmd: m.ResumeAgent) -> m.CommandResult:
        return await self._agent_change(cmd.tenant_id, cmd.agent_id, lambda a: a.resume())

    async def terminate_agent(self, cmd: m.TerminateAgent) -> m.CommandResult:
        result = await self._agent_change(
            cmd.tenant_id, cmd.agent_id, lambda a: a.terminate(cmd.reason)
        )
        metrics.agents_terminated.labels(cmd.tenant_id).inc()
        return result

    async def record_heartbeat(self, cmd: m.RecordHeartbeat) -> m.CommandResult:
        from agentmesh.domain.values import utcnow

        beat = AgentHeartbeat(cmd.agent_id, cmd.at or utcnow(), cmd.metrics)
        return await self._agent_change(
            cmd.tenant_id, cmd.agent_id, lambda a: a.record_heartbeat(beat)
        )

    async def mark_unhealthy(self, cmd: m.MarkAgentUnhealthy) -> m.CommandResult:
        return await self._agent_change(
            cmd.tenant_id, cmd.agent_id, lambda a: a.mark_unhealthy(cmd.reason)
        )

    async def mark_healthy(self, cmd: m.MarkAgentHealthy) -> m.CommandResult:
        return await self._agent_change(
            cmd.tenant_id, cmd.agent_id, lambda a: a.mark_healthy(cmd.metrics)
        )

    async def _agent_follow(
        self,
        tenant_id: str,
        agent_id: str | None,
        task_id: str,
        decide: Callable[[AgentAggregate], tuple[AgentAggregate, Sequence[DomainEvent]]],
        *,
        needs_current: bool = True,
    ) -> None:
        """Apply the agent side of a task transition when the agent is registered."""
        if not agent_id:
            return

        def guarded(agent: AgentAggregate) -> tuple[AgentAggregate, Sequence[DomainEvent]]:
            if needs_current and agent.current_task_id != task_id:
                return agent, []
            return decide(agent)

        await self.follower.follow(tenant_id, agent_id, guarded)

    async def _append_agent(
        self, tenant_id: str, agent_id: str, version: int, events: Sequence[DomainEvent]
    ) -> int:
        result = await self._append(tenant_id, agent_stream(agent_id), version, events)
        return result.version

    # -- tasks -------------------------------------------------------------------------
    async def submit_task(self, cmd: m.SubmitTask) -> m.CommandResult:
        return await batch.submit_task(self, cmd)

    async def submit_tasks(self, cmd: batch.SubmitTasks) -> batch.BatchResult:
        return await batch.submit_tasks(self, cmd)

    async def _task_change(
        self,
        tenant_id: str,
        task_id: str,
        decide: Callable[[TaskAggregate], tuple[TaskAggregate, list[Any]]],
        source: str = "agentmesh",
        *,
        reoffer: bool = True,
    ) -> tuple[TaskAggregate, m.CommandResult]:
        """Load, decide, append; a new offer is published through the outbox unless
        ``reoffer`` is False (the runtime redelivers the task itself)."""

        async def attempt() -> tuple[TaskAggregate, m.CommandResult]:
            task, version = await self._load_task(tenant_id, task_id)
            new, events = decide(task)
            extra: list[OutboxMessage] = []
            recorded: list[DomainEvent] = []
            for e in events:
                if reoffer and isinstance(e, TaskOfferedEvent):
                    offer = offer_envelope(new, e, source)
                    extra.append(offer)
                    recorded += self._recorded(new, offer)
            result = await self._append(
                tenant_id, task_stream(task_id), version, [*events, *recorded], extra
            )
            return new, result

        return await self._retry(attempt)

    async def assign_task(self, cmd: m.AssignTask) -> m.CommandResult:
        agent = await self.load_agent(cmd.tenant_id, cmd.agent_id)
        if agent is not None:
            agent.assign_task(cmd.task_id)  # refuse early (busy, paused ...) before writing
        _, result = await self._task_change(
            cmd.tenant_id, cmd.task_id, lambda t: t.assign(cmd.agent_id)
        )
        await self._agent_follow(
            cmd.tenant_id,
            cmd.agent_id,
            cmd.task_id,
            lambda a: a.assign_task(cmd.task_id),
            needs_current=False,
        )
        return result

    async def start_task(self, cmd: m.StartTask) -> m.CommandResult:
        _, result = await self._task_change(
            cmd.tenant_id, cmd.task_id, lambda t: t.start(cmd.agent_id)
        )
        return result

    async def complete_task(self, cmd: m.CompleteTask) -> m.CommandResult:
        ran: list[bool] = []

        def decide(t: TaskAggregate) -> tuple[TaskAggregate, list[Any]]:
            t, e1 = run_first(t, cmd, ran)
            new, e2 = t.complete(
                cmd.result, agent_id=cmd.agent_id, execution_time_ms=cmd.execution_time_ms
            )
            return new, [*e1, *e2]

        task, result = await self._task_change(cmd.tenant_id, cmd.task_id, decide)
        await self._agent_follow(
            cmd.tenant_id,
            task.agent_id,
            cmd.task_id,
            agent_done(cmd, ran, None),
            needs_current=False,
        )
        return result

    def _after_failure(self, t: TaskAggregate, retryable: bool) -> tuple[TaskAggregate, list[Any]]:
        if retryable and t.retries_left > 0:
            t2, e2 = t.retry()
            t3, e3 = t2.offer()
            return t3, [*e2, *e3]
        t2, e2 = t.dead_letter()
        return t2, list(e2)

    async def fail_task(self, cmd: m.FailTask) -> m.CommandResult:
        ran: list[bool] = []

        def decide(t: TaskAggregate) -> tuple[TaskAggregate, list[Any]]:
            t, e0 = run_first(t, cmd, ran)
            failed, e1 = t.fail(cmd.error, error_code=cmd.error_code, agent_id=cmd.agent_id)
            new, e2 = self._after_failure(failed, cmd.retryable)
            return new, [*e0, *e1, *e2]

        before = await self.load_task(cmd.tenant_id, cmd.task_id)
        _, result = await self._task_change(cmd.tenant_id, cmd.task_id, decide, reoffer=cmd.reoffer)
        await self._agent_follow(
            cmd.tenant_id,
            cmd.agent_id or before.agent_id,
            cmd.task_id,
            agent_done(cmd, ran, cmd.error),
            needs_current=False,
        )
        return result

    async def time_out_task(self, cmd: m.TimeOutTask) -> m.CommandResult:
        def decide(t: TaskAggregate) -> tuple[TaskAggregate, list[Any]]:
            timed, e1 = t.time_out()
            new, e2 = self._after_failure(timed, True)
            return new, [*e1, *e2]

        before = await self.load_task(cmd.tenant_id, cmd.task_id)
        _, result = await self._task_change(cmd.tenant_id, cmd.task_id, decide)
        await self._agent_follow(
            cmd.tenant_id,
            before.agent_id,
            cmd.task_id,
            lambda a: a.fail_task("task timed out", error_code="TIMEOUT"),
        )
        return result

    async def cancel_task(self, cmd: m.CancelTask) -> m.CommandResult:
        before = await self.load_task(cmd.tenant_id, cmd.task_id)
        _, result = await self._task_change(
            cmd.tenant_id, cmd.task_id, lambda t: t.cancel(cmd.reason)
        )
        await self._agent_follow(
            cmd.tenant_id,
            before.agent_id,
            cmd.task_id,
            lambda a: a.fail_task(cmd.reason or "task cancelled", error_code="CANCELLED"),
        )
        return result

    async def retry_task(self, cmd: m.RetryTask) -> m.CommandResult:
        def decide(t: TaskAggregate) -> tuple[TaskAggregate, list[Any]]:
            t2, e2 = t.retry(manual=True)
            t3, e3 = t2.offer()
            return t3, [*e2, *e3]

        _, result = await self._task_change(cmd.tenant_id, cmd.task_id, decide)
        return result
