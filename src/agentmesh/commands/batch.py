"""Submitting tasks: one (:class:`SubmitTask`) or up to 1,000 at once
(:class:`SubmitTasks`), validated the same way; a batch is written in ONE transaction,
all or nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentmesh.domain import DomainEvent, MessageRecordedEvent, TaskAggregate
from agentmesh.domain.values import AgentId
from agentmesh.errors import ConcurrencyError, Conflict, ValidationError
from agentmesh.observability import metrics
from agentmesh.store.base import NewEvent, StreamAppend

from . import messages as m
from .envelopes import event_envelope, offer_envelope
from .streams import task_stream

if TYPE_CHECKING:
    from .handlers import CommandHandlers

MAX_BATCH = 1000


@dataclass(frozen=True)
class SubmitTasks(m.Command["BatchResult"]):
    """Submit 1-1,000 tasks of one tenant at once: every task is validated as a
    :class:`SubmitTask` is, then all are written in one transaction or none is."""

    tenant_id: str
    tasks: Sequence[m.SubmitTask]


@dataclass(frozen=True)
class BatchResult:
    """The submitted tasks' ids in the order given and their streams' versions."""

    task_ids: tuple[str, ...]
    versions: tuple[int, ...]


def prepare_submit(h: CommandHandlers, cmd: m.SubmitTask) -> tuple[StreamAppend, list[DomainEvent]]:
    """Decide a submission (no I/O): the stream append it makes and its domain events."""
    task_id = cmd.task_id or str(uuid.uuid4())
    task, events = TaskAggregate.submit(
        task_id,
        cmd.tenant_id,
        cmd.task_type or cmd.capability,
        [cmd.capability],
        payload=cmd.payload,
        priority=cmd.priority,
        timeout_seconds=cmd.timeout_seconds,
        max_attempts=cmd.max_attempts,
    )
    task, offered = task.offer(cmd.capability)
    if cmd.strategy is not None:  # needs the live registry: entry points resolve it
        raise ValidationError(m.STRATEGY_NEEDS_PLANE, code="STRATEGY_NEEDS_PLANE")
    if cmd.to_agent is not None:
        AgentId(cmd.to_agent)
    offer = offer_envelope(task, offered[0], cmd.source, cmd.to_agent)  # type: ignore[arg-type]
    if cmd.require_vetting:
        from agentmesh.commands.safety import vetting_offer

        offer = vetting_offer(offer)
    domain = [*events, *offered, *h._recorded(task, offer)]
    outbox = [event_envelope(e) for e in domain if not isinstance(e, MessageRecordedEvent)]
    append = StreamAppend(
        task_stream(task_id), 0, [NewEvent.of(e) for e in domain], [offer, *outbox]
    )
    return append, domain


async def submit_task(h: CommandHandlers, cmd: m.SubmitTask) -> m.CommandResult:
    """One task: validated, counted against the tenant's quota, offered through the outbox."""
    append, domain = prepare_submit(h, cmd)
    if h.quota is not None:  # after validation, before any write
        await h.quota.take_for(cmd.tenant_id)
    try:
        result = await h.store.append(
            cmd.tenant_id, append.stream_id, 0, append.events, outbox=append.outbox
        )
    except ConcurrencyError:
        raise Conflict(
            f"task {domain[0].aggregate_id} already exists", code="TASK_EXISTS"
        ) from None
    _count(cmd.tenant_id, domain)
    return m.CommandResult(
        domain[0].aggregate_id, result.version, tuple(e.event_type for e in domain)
    )


async def submit_tasks(h: CommandHandlers, cmd: SubmitTasks) -> BatchResult:
    """Up to :data:`MAX_BATCH` tasks in one transaction; any invalid task, an id given
    twice or one that exists already refuses the whole batch (nothing is written)."""
    if not 1 <= len(cmd.tasks) <= MAX_BATCH:
        raise ValidationError(
            f"a batch holds 1-{MAX_BATCH} tasks, got {len(cmd.tasks)}", code="BATCH_SIZE"
        )
    prepared: list[tuple[StreamAppend, list[DomainEvent]]] = []
    for i, task in enumerate(cmd.tasks):
        if task.tenant_id != cmd.tenant_id:
            raise ValidationError(f"task {i} belongs to another tenant", code="BATCH_TENANT")
        try:
            prepared.append(prepare_submit(h, task))
        except ValidationError as exc:
            raise ValidationError(f"task {i}: {exc.message}", code=exc.code) from None
    ids = [d[0].aggregate_id for _, d in prepared]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise ValidationError(f"task {twice} appears twice in the batch", code="BATCH_DUPLICATE")
    if h.quota is not None:
        await h.quota.take_many(cmd.tenant_id, len(prepared))
    try:
        results = await h.store.append_streams(cmd.tenant_id, [a for a, _ in prepared])
    except ConcurrencyError as exc:
        if h.quota is not None:
            h.quota.give_back(cmd.tenant_id, len(prepared))
        raise Conflict(
            f"the batch was refused, a task already exists: {exc}", code="TASK_EXISTS"
        ) from None
    _count(cmd.tenant_id, [e for _, domain in prepared for e in domain])
    return BatchResult(tuple(ids), tuple(r.version for r in results))


def _count(tenant_id: str, events: Sequence[DomainEvent]) -> None:
    """``events_saved`` once per event type (a batch has few types and many events)."""
    for event_type, n in Counter(e.event_type for e in events).items():
        metrics.events_saved.labels(tenant_id, event_type).inc(n)
