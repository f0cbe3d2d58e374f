"""The task recorder: every task offered on a tenant's mesh becomes a recorded task.

A submitter with the store (REST, the CLI, ``agentmesh up --demo``) writes
``TaskSubmitted`` and the offer in one transaction; its offer carries
``metadata.recorded = true``. Any other submitter (``Mesh.submit`` from a notebook or an
agent process, the patterns' subtasks, the agent kinds) only publishes the offer. The
control plane runs this recorder, which listens to

* the offers (``am.*.task.*`` and ``am.*.inbox.*``) and records the ones the store does not
  have (``RecordTask``: submitted + offered, with the offer's timestamp);
* the runtime's progress (``am.*.run.started.<id>``, sent when an attempt runs longer
  than :data:`~agentmesh.runtime.execution.STARTED_DELAY`: assigned + running on that
  agent; ``am.*.run.retrying.<id>``: a failed attempt the runtime retries);
* the outcomes (``am.*.evt.task.{completed,failed,cancelled}.<id>``).

Events of one task are applied in arrival order by one of a few workers (sharded by task
id). An event that arrives before its task's offer is parked until the offer is recorded;
when the offer never comes (the plane was down when it was published), the task is
recorded from what the event carries once ``park_seconds`` passed. An offer of an unknown
tenant, or one the domain refuses, goes to the dead-letter subject with the reason and
the recorder keeps going.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from agentmesh import ids, subjects
from agentmesh.aio import stop_task
from agentmesh.commands import (
    CancelTask,
    CompleteTask,
    CqrsBus,
    FailTask,
    RecordTask,
    RunTask,
)
from agentmesh.commands.safety import RejectTask
from agentmesh.domain.events import parse_datetime
from agentmesh.domain.task_values import MAX_ATTEMPTS
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    AgentMeshError,
    ConcurrencyError,
    Conflict,
    InvalidTransition,
    NotFound,
)
from agentmesh.observability import tracing
from agentmesh.transports import Message, SubscribeOptions, Subscription, Transport
from agentmesh.transports.message import error_context

Rejected = Callable[[Envelope, str, str], Awaitable[None]]
"""Called with (envelope, subject, reason) for an offer that cannot be recorded."""


@dataclass
class _Item:
    kind: str  # "offer", "progress", "outcome", "flush"
    env: Envelope
    subject: str
    key: tuple[str, str]


@dataclass
class _Parked:
    items: list[_Item] = field(default_factory=list)
    deadline: float = 0.0


def offered_task_id(env: Envelope) -> str:
    """The task id of an offer: ``payload.task_id`` when the store made it, else its id."""
    tid = env.payload.get("task_id")
    return tid if isinstance(tid, str) and tid else env.id


def parent_of(env: Envelope) -> str | None:
    """The task whose handler offered ``env`` (``metadata.parent_task_id``, set by
    ``Mesh.submit`` and the patterns inside a task handler), when it is a valid id."""
    parent = env.metadata.get("parent_task_id") or env.context.get("parent_task_id")
    return parent if isinstance(parent, str) and ids.SEGMENT.match(parent) else None


class TaskRecorder:
    """Records bus-side tasks and their lifecycle in the store (see the module doc)."""

    def __init__(
        self,
        transport: Transport,
        bus: CqrsBus,
        *,
        default_attempts: int = 5,
        shards: int = 4,
        park_seconds: float = 3.0,
        on_rejected: Rejected | None = None,
    ) -> None:
        self.transport = transport
        self.bus = bus
        self.default_attempts = default_attempts
        self.park_seconds = park_seconds
        self.on_rejected = on_rejected
        self._queues: list[asyncio.Queue[_Item]] = [asyncio.Queue() for _ in range(shards)]
        self._workers: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self._parked: dict[tuple[str, str], _Parked] = {}
        self.recorded = 0
        self.applied = 0
        self.rejected = 0

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(q)) for q in self._queues]
        opts = SubscribeOptions(max_in_flight=256, dead_letter=False)
        for pattern, kind in (
            (subjects.task_offers(), "offer"),
            (subjects.inbox_offers(), "offer"),
            (subjects.task_progress_all(), "progress"),
            (subjects.task_outcomes_all(), "outcome"),
        ):
            self._subs.append(
                await self.transport.subscribe(pattern, self._intake(kind), options=opts)
            )

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
        try:
            await asyncio.wait_for(self.drained(), 10)
        except TimeoutError:
            logger.warning("recorder: stopped with events left unapplied")
        for w in self._workers:
            await stop_task(w)
        self._workers.clear()

    async def drained(self) -> None:
        """Return once everything received so far is applied (tests, shutdown)."""
        for q in self._queues:
            await q.join()

    # -- intake -------------------------------------------------------------------------
    def _intake(self, kind: str) -> Callable[[Message], Awaitable[None]]:
        async def receive(msg: Message) -> None:
            env = msg.envelope
            if kind == "offer":
                if env.type != "task.offered" or env.metadata.get("recorded") is True:
                    return
                task_id = offered_task_id(env)
            else:
                task_id = str(env.payload.get("task_id") or "")
                if not task_id:
                    return
            self._put(_Item(kind, env, msg.subject, (env.tenant_id, task_id)))

        return receive

    def _put(self, item: _Item) -> None:
        shard = zlib.crc32(item.key[1].encode()) % len(self._queues)
        self._queues[shard].put_nowait(item)

    async def _work(self, q: asyncio.Queue[_Item]) -> None:
        while True:
            item = await q.get()
            try:
                await self._process(item)
            except Exception:  # noqa: BLE001 - one bad event never stops the recorder
                logger.exception("recorder: {} of task {} failed", item.kind, item.key[1])
            finally:
                q.task_done()

    # -- processing ---------------------------------------------------------------------
    async def _process(self, item: _Item) -> None:
        key = item.key
        parked = self._parked.get(key)
        if item.kind == "flush":
            if parked is not None:
                await self._flush(key, parked)
            return
        if item.kind == "offer":
            await self._record(item.env, item.subject)
            if parked is not None:
                del self._parked[key]
                for p in parked.items:
                    await self._apply(p)
            return
        if parked is not None:  # keep the task's order: behind the parked ones
            parked.items.append(item)
            return
        if not await self._apply(item):
            loop = asyncio.get_running_loop()
            self._parked[key] = _Parked([item], loop.time() + self.park_seconds)
            self._schedule_flush(key)

    def _schedule_flush(self, key: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        flush = _Item("flush", Envelope.create("recorder.flush"), "", key)
        loop.call_later(min(0.2, self.park_seconds), self._put, flush)

    async def _flush(self, key: tuple[str, str], parked: _Parked) -> None:
        if asyncio.get_running_loop().time() < parked.deadline:
            if not await self._apply(parked.items[0]):
                self._schedule_flush(key)
                return
            parked.items.pop(0)
        else:  # the offer never came: record the task from what its first event carries
            first = parked.items[0]
            await self._record(first.env, first.subject, from_event=True)
        del self._parked[key]
        for p in parked.items:
            await self._apply(p)

    async def _record(self, env: Envelope, subject: str, *, from_event: bool = False) -> None:
        try:
            await self.bus.execute(self._record_command(env, subject, from_event))
        except Conflict:
            return  # recorded already (by its submitter, or an earlier copy)
        except AgentMeshError as exc:
            await self._reject(env, subject, str(exc))
            return
        self.recorded += 1

    def _record_command(self, env: Envelope, subject: str, from_event: bool) -> RecordTask:
        md, p = env.metadata, env.payload
        if from_event:
            task_id = str(p["task_id"])
            capability = p.get("capability")
            payload: dict[str, Any] = {}
        else:
            task_id = offered_task_id(env)
            caps = env.routing.get("required_capabilities")
            capability = (
                subject.rsplit(".", 1)[-1]
                if subjects.kind_of(subject) == "task"
                and subject != subjects.vetting(env.tenant_id)
                else (caps[0] if isinstance(caps, list) and caps else None)
            )
            payload = {k: v for k, v in p.items() if k != "task_id"}
        capability = capability if isinstance(capability, str) and capability else "direct"
        attempts = md.get("max_attempts")
        attempts = attempts if isinstance(attempts, int) else self.default_attempts
        timeout = md.get("timeout_seconds", 300)
        return RecordTask(
            tenant_id=env.tenant_id,
            task_id=task_id,
            capability=capability,
            envelope=env,
            subject=subject,
            payload=payload,
            task_type=md.get("task_type") if isinstance(md.get("task_type"), str) else None,
            priority=md.get("priority", 3),
            timeout_seconds=math.ceil(timeout) if isinstance(timeout, int | float) else timeout,
            max_attempts=min(max(attempts, 1), MAX_ATTEMPTS),
            submitted_at=None if from_event else env.timestamp,
            parent_task_id=parent_of(env),
        )

    async def _reject(self, env: Envelope, subject: str, reason: str) -> None:
        self.rejected += 1
        logger.warning("recorder: offer {} on {} not recorded: {}", env.id, subject, reason)
        dead = Envelope.decode(env.encode())
        dead.context["error_context"] = error_context(subject, reason, 1)
        try:
            await self.transport.publish(subjects.dead_letter(subject), dead, durable=True)
        except AgentMeshError as exc:
            logger.warning("recorder: dead-letter of {} failed: {}", env.id, exc)
        if self.on_rejected is not None:
            await self.on_rejected(env, subject, reason)

    async def _apply(self, item: _Item) -> bool:
        """Apply a progress or outcome event; False when its task is not recorded yet."""
        command = self._command(item)
        if command is None:
            return True
        try:
            with tracing.span("tracker.apply", parent=item.env, kind=tracing.SpanKind.CONSUMER):
                await self.bus.execute(command)
        except NotFound:
            return False
        except ConcurrencyError as exc:
            logger.warning("recorder: {} lost a write race: {}", type(command).__name__, exc)
            return True
        except (InvalidTransition, Conflict) as exc:  # applied already, or superseded
            logger.debug("recorder: {} not applied: {}", type(command).__name__, exc)
            return True
        except AgentMeshError as exc:
            logger.warning("recorder: {} failed: {}", type(command).__name__, exc)
            return True
        self.applied += 1
        return True

    @staticmethod
    def _command(item: _Item) -> Any:
        env, (tenant, task_id) = item.env, item.key
        p = env.payload
        agent = p.get("agent_id") if isinstance(p.get("agent_id"), str) else None
        attempt = p.get("attempt") if isinstance(p.get("attempt"), int) else None
        if env.type == "task.started" and agent:
            return RunTask(tenant, task_id, agent, attempt, at=_started_at(p) or env.timestamp)
        if env.type == "task.retrying":
            error = str(p.get("error") or "failed")
            return FailTask(
                tenant,
                task_id,
                error,
                agent_id=agent,
                retryable=True,
                reoffer=False,
                started_at=_started_at(p),
                attempt=attempt,
            )
        return outcome_command(env)


def _started_at(p: dict[str, Any]) -> datetime | None:
    value = p.get("started_at")
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value, "started_at")
    except AgentMeshError:
        return None


def outcome_command(env: Envelope) -> Any:
    """The store command of a task outcome event, or None for another event."""
    p = env.payload
    tenant, task_id = env.tenant_id, str(p.get("task_id", ""))
    agent_id = p.get("agent_id") if isinstance(p.get("agent_id"), str) else None
    attempt = p.get("attempt") if isinstance(p.get("attempt"), int) else None
    if env.type == "task.completed":
        result = p.get("result")
        return CompleteTask(
            tenant,
            task_id,
            result if isinstance(result, dict) else {"result": result},
            agent_id=agent_id,
            started_at=_started_at(p),
            attempt=attempt,
        )
    if env.type == "task.failed":  # the runtime used the attempts: dead-lettered
        return FailTask(
            tenant,
            task_id,
            str(p.get("error", "failed")),
            agent_id=agent_id,
            retryable=False,
            started_at=_started_at(p),
            attempt=attempt,
        )
    if env.type == "task.cancelled":
        return CancelTask(tenant, task_id, str(p.get("reason", "")))
    if env.type == "task.rejected":  # a safety rule denied it (terminal, not retried)
        return RejectTask(
            tenant,
            task_id,
            str(p.get("rule") or "safety"),
            str(p.get("reason") or "rejected"),
            agent_id=agent_id,
            stage=str(p.get("stage", "offer")),
        )
    return None
