"""Durable task execution: effectively-once handling on top of at-least-once delivery.

For every durable task delivery an agent:

1. re-announces the stored result instead of running again when the ledger says the task
   already completed (an agent died between publishing the result and acking);
2. honours a cancel request (``task.cancelled``, never redelivered);
3. asks its ``decide`` policy (autonomy) whether to take the task; a declined offer is
   released with a delay for another agent, never lost;
4. runs the handler inside the agent's bulkhead and the task's timeout
   (``metadata.timeout_seconds``, 1-3600, default 300) while keeping the delivery alive
   with in-progress signals, and cancels it when asked;
5. on success writes the result to the ledger and publishes ``task.completed`` durably,
   both before the delivery is acked; on failure retries with the RetryConfig backoff up
   to ``metadata.max_attempts`` (default ``AGENTMESH_MAX_DELIVER``), then publishes
   ``task.failed`` and dead-letters the envelope with its error context.

Errors of type ValueError, KeyError, TypeError and NonRetryableError are not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope, now_iso
from agentmesh.errors import BulkheadFullError, BulkheadTimeoutError, TaskPaused, TaskTimeout
from agentmesh.observability import metrics, tracing
from agentmesh.resilience import RetryConfig
from agentmesh.runtime.context import CURRENT_TASK, TaskContext
from agentmesh.runtime.ledger import TaskLedger, past_dedupe_window, unique_first_delivery
from agentmesh.transports import Message
from agentmesh.transports.message import error_context

if TYPE_CHECKING:
    from agentmesh.runtime.agent import AgentRuntime
    from agentmesh.safety.engine import Verdict

DEFAULT_TIMEOUT = 300.0
STARTED_DELAY = 0.2
"""Seconds a task runs before its start is announced to the control plane."""
RESULT_NAMESPACE = uuid.UUID("6f1c3a1e-5b7e-4c55-9a0e-2d6b1f3c9e11")


@dataclass(frozen=True, slots=True)
class Decision:
    """What a ``decide`` policy says about one offered task."""

    accept: bool
    reason: str = ""
    delay: float | None = None  # how long to keep a declined task away from this agent


DecidePolicy = Callable[[TaskContext], Awaitable[Decision | bool] | Decision | bool]


def rejection(agent: AgentRuntime, verdict: Verdict) -> dict[str, Any]:
    """What a safety rejection says (the payload of ``task.rejected`` and of an error)."""
    main = verdict.main
    return {
        "error": f"rejected by safety rule {verdict.rule}: {verdict.reason}",
        "code": "SAFETY_REJECTED",
        "rule": verdict.rule,
        "reason": verdict.reason,
        "severity": main.severity if main else "",
        "agent_id": agent.agent_id,
    }


def result_id(tenant: str, task_id: str, outcome: str) -> str:
    """Deterministic envelope id of a task's outcome, so re-announcing it is deduped."""
    return str(uuid.uuid5(RESULT_NAMESPACE, f"{tenant}/{task_id}/{outcome}"))


def _task_settings(env: Envelope, default_attempts: int) -> tuple[float, int]:
    md = env.metadata
    timeout = md.get("timeout_seconds", DEFAULT_TIMEOUT)
    timeout = (
        float(timeout)
        if isinstance(timeout, int | float) and 1 <= timeout <= 3600
        else DEFAULT_TIMEOUT
    )
    attempts = md.get("max_attempts")
    if not isinstance(attempts, int) or attempts < 1:
        retries = md.get("retries")
        attempts = (
            retries + 1 if isinstance(retries, int) and 0 <= retries <= 5 else default_attempts
        )
    return timeout, attempts


class DurableExecutor:
    """Runs one agent's durable tasks (see the module docstring)."""

    def __init__(
        self,
        agent: AgentRuntime,
        ledger: TaskLedger,
        *,
        decide: DecidePolicy | None = None,
        retry: RetryConfig | None = None,
        decline_delay: float = 1.0,
    ) -> None:
        self.agent = agent
        self.ledger = ledger
        self.decide = decide
        self.retry = retry or RetryConfig()
        self.decline_delay = decline_delay
        self.running: dict[str, tuple[asyncio.Task[Any], Message]] = {}
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._cancelling: set[str] = set()
        self._requeue: set[str] = set()  # interrupted by a quarantine: back to the queue
        self._progress_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.declined = 0
        self._announcing: set[asyncio.Task[None]] = set()
        # where a first delivery may repeat a task (a crashed Kafka consumer's records come
        # back as first deliveries; a publish retried after a lost ack is stored twice),
        # the ledger is asked on every delivery
        self._ask_always = not unique_first_delivery(agent.mesh.transport)

    # -- background ---------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        if self._progress_task is None:
            self._progress_task = asyncio.create_task(self._keep_alive())

    async def stop(self) -> None:
        if self._progress_task is not None:
            self._stopping = True
            await stop_task(self._progress_task)
            self._progress_task = None

    async def _keep_alive(self) -> None:
        """In-progress signals for running tasks, so long handlers are not redelivered."""
        interval = max(self.agent.options.ack_wait / 3, 0.05)
        while not self._stopping:
            await asyncio.sleep(interval)
            for _, msg in list(self.running.values()):
                with contextlib.suppress(
                    Exception
                ):  # a keep-alive that fails is retried next interval
                    await msg.in_progress()

    # -- cancel -------------------------------------------------------------------------
    def heard_cancel(self, task_id: str) -> bool:
        """Whether a cancel of ``task_id`` reached this agent (a later delivery is dropped)."""
        return task_id in self._cancelled

    def cancel_local(self, task_id: str) -> bool:
        """Cancel the task if it runs here; remember it so a later delivery is dropped."""
        self._cancelled[task_id] = None
        while len(self._cancelled) > 10_000:
            self._cancelled.popitem(last=False)
        entry = self.running.get(task_id)
        if entry is None:
            return False
        self._cancelling.add(task_id)
        entry[0].cancel()
        return True

    def requeue_running(self) -> None:
        """Interrupt every running task and give it back to the queue (quarantine)."""
        current = asyncio.current_task()
        for task_id, (task, _) in list(self.running.items()):
            if task is not current:
                self._requeue.add(task_id)
                task.cancel()

    # -- the handler --------------------------------------------------------------------
    def handler_for(self, capability: str | None) -> Callable[[Message], Awaitable[None]]:
        async def handle(msg: Message) -> None:
            with tracing.span("task.receive", parent=msg.envelope, kind=tracing.SpanKind.CONSUMER):
                await self._handle(msg, capability)

        return handle

    async def _handle(self, msg: Message, capability: str | None) -> None:
        agent = self.agent
        env = msg.envelope
        tenant = env.tenant_id
        ctx = TaskContext(agent, msg, capability, "task")
        task_id = ctx.task_id
        CURRENT_TASK.set(task_id)  # subtasks submitted by the handler name it as parent
        guard = agent.mesh.safety
        if agent.status == AgentStatus.QUARANTINED:
            await msg.nak(self.decline_delay / 10)  # not here: another agent takes it
            return
        redelivered = msg.attempt > 1 or self._ask_always or past_dedupe_window(env)
        if redelivered:
            done = await self.ledger.completed(tenant, task_id)
            if done is not None:  # handled before: announce again (deduped), never rerun
                await self._publish_outcome(tenant, "task.completed", done)
                return
            last = await self.ledger.outcome(tenant, task_id)
            if last is not None and last.type == "task.failed" and last.causation_id == env.id:
                # this very offer failed for good (a copy redelivered before its term
                # reached the broker): announce again (deduped), never rerun
                await self._publish_outcome(tenant, "task.failed", last)
                await msg.term()
                return
        if task_id in self._cancelled or (
            redelivered and await self.ledger.is_cancelled(tenant, task_id)
        ):
            await self._cancelled_outcome(ctx, msg, "cancelled before start")
            return
        if guard is not None:
            verdict = guard.check_offer(agent, ctx)
            if not verdict.allowed:
                await self._rejected(ctx, msg, verdict, "offer")
                return
            if guard.over_rate(agent):
                await msg.nak(self.decline_delay)
                return
        if self.decide is not None:
            with tracing.span("autonomy.decide"):
                decision = self.decide(ctx)
                if asyncio.iscoroutine(decision):
                    decision = await decision
            if isinstance(decision, bool):
                decision = Decision(decision)
            assert isinstance(decision, Decision)
            if not decision.accept:
                self.declined += 1
                metrics.tasks_declined.labels(
                    tenant, agent.agent_id, decision.reason or "declined"
                ).inc()
                await msg.nak(decision.delay if decision.delay is not None else self.decline_delay)
                return
        timeout, max_attempts = _task_settings(env, agent.options.max_deliver)
        # the failure budget belongs to this offer: a manual retry re-offers with a new id
        failures = await self.ledger.failures(tenant, env.id) if redelivered else 0
        ctx.attempt = failures + 1
        started_at = now_iso()
        # a task still running after STARTED_DELAY is announced as started; a quicker one
        # is not (its outcome carries started_at), which keeps the hot path one publish
        announce = asyncio.get_running_loop().call_later(
            STARTED_DELAY, self._announce_start, ctx, started_at, msg.attempt
        )
        current = asyncio.current_task()
        assert current is not None
        self.running[task_id] = (current, msg)
        try:
            try:
                async with asyncio.timeout(timeout):
                    with tracing.span("task.handler"):
                        result = await agent.bulkhead.execute(agent.invoke, ctx)
            except TimeoutError as exc:
                if isinstance(exc, BulkheadTimeoutError):
                    raise
                raise TaskTimeout(f"task {task_id} exceeded its timeout of {timeout:g}s") from None
        except asyncio.CancelledError:
            if task_id in self._requeue and current.uncancel() == 0:
                self._requeue.discard(task_id)
                await msg.nak(0)
                return
            if task_id in self._cancelling and current.uncancel() == 0:
                self._cancelling.discard(task_id)
                await self._cancelled_outcome(ctx, msg, "cancelled while running")
                return
            raise
        except (BulkheadFullError, BulkheadTimeoutError):
            await msg.nak(self.decline_delay)  # busy: give the task to someone else
            return
        except TaskPaused:  # waits for an approval in the store; offered again on the decision
            return
        except Exception as exc:  # noqa: BLE001 - a user handler's error is the task's failure (classified by the retry rules)
            await self._failed(ctx, msg, exc, max_attempts, started_at)
            return
        finally:
            announce.cancel()
            self.running.pop(task_id, None)
        if guard is not None:
            checked = await guard.check_result(agent, ctx, result)
            if not checked.allowed:
                await self._withheld(ctx, msg, checked, max_attempts)
                return
            result = checked.value
        agent.tasks_completed += 1
        done = env.reply(
            "task.completed",
            {
                "task_id": task_id,
                "capability": capability,
                "agent_id": agent.agent_id,
                "result": result,
                "attempt": ctx.attempt,
                "delivery": msg.attempt,
                "started_at": started_at,
            },
        )
        done.metadata["id"] = result_id(tenant, task_id, "completed")
        # durable (and findable by the ledger) before the dispatcher acks on return
        await self._publish_outcome(tenant, "task.completed", done)
        reply_to = env.routing.get("reply_to")
        if isinstance(reply_to, str) and subjects.is_valid(reply_to):
            await agent.mesh.transport.publish(reply_to, done)

    def _announce_start(self, ctx: TaskContext, started_at: str, delivery: int) -> None:
        extra = {"delivery": delivery, "started_at": started_at}
        task = asyncio.get_running_loop().create_task(self._progress(ctx, "started", extra))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def _progress(self, ctx: TaskContext, kind: str, extra: dict[str, Any]) -> None:
        """Tell the control plane a task started or will be retried (core publish, best
        effort: the outcome carries ``started_at`` too)."""
        env = ctx.envelope.reply(
            f"task.{kind}",
            {
                "task_id": ctx.task_id,
                "capability": ctx.capability,
                "agent_id": self.agent.agent_id,
                "attempt": ctx.attempt,
                **extra,
            },
        )
        try:
            await self.agent.mesh.transport.publish(
                subjects.task_progress(ctx.tenant_id, kind, ctx.task_id), env
            )
        except Exception as exc:  # noqa: BLE001 - the task runs on; the outcome fills the start in
            logger.debug("task {} progress {} not published: {}", ctx.task_id, kind, exc)

    async def _publish_outcome(self, tenant: str, kind: str, env: Envelope) -> None:
        task_id = str(env.payload["task_id"])
        with tracing.span("task.outcome", kind=tracing.SpanKind.PRODUCER, leaf=True) as span:
            tracing.inject(env, span)
            await self.ledger.record_outcome(tenant, task_id, env)
            await self.agent.publish_guarded(
                subjects.task_outcome(tenant, kind, task_id), env, durable=True
            )

    async def _rejected(self, ctx: TaskContext, msg: Message, verdict: Verdict, stage: str) -> None:
        """A safety rule denied the task: ``task.rejected`` (never retried), then drop it."""
        logger.warning(
            "task {} rejected on {} ({}): {}",
            ctx.task_id,
            self.agent.agent_id,
            verdict.rule,
            verdict.reason,
        )
        env = ctx.envelope.reply(
            "task.rejected",
            {
                "task_id": ctx.task_id,
                "capability": ctx.capability,
                "stage": stage,
                **rejection(self.agent, verdict),
            },
        )
        env.metadata["id"] = result_id(ctx.tenant_id, ctx.task_id, "rejected")
        await self._publish_outcome(ctx.tenant_id, "task.rejected", env)
        await msg.term()

    async def _withheld(
        self, ctx: TaskContext, msg: Message, verdict: Verdict, max_attempts: int
    ) -> None:
        """A result a safety rule denies is never published: the task goes back to the queue
        for another agent (the violation counts against this one), and is rejected once
        its attempts are used up."""
        failures = await self.ledger.add_failure(ctx.tenant_id, ctx.envelope.id)
        if failures < max_attempts:
            await msg.nak(0)
            return
        await self._rejected(ctx, msg, verdict, "result")

    async def _cancelled_outcome(self, ctx: TaskContext, msg: Message, reason: str) -> None:
        env = ctx.envelope.reply(
            "task.cancelled",
            {
                "task_id": ctx.task_id,
                "capability": ctx.capability,
                "agent_id": self.agent.agent_id,
                "reason": reason,
            },
        )
        env.metadata["id"] = result_id(ctx.tenant_id, ctx.task_id, "cancelled")
        await self._publish_outcome(ctx.tenant_id, "task.cancelled", env)
        await msg.term()

    async def _failed(
        self, ctx: TaskContext, msg: Message, exc: Exception, max_attempts: int, started_at: str
    ) -> None:
        agent = self.agent
        tenant, task_id = ctx.tenant_id, ctx.task_id
        error = f"{type(exc).__name__}: {exc}"
        metrics.task_failures.labels(
            agent.agent_id, ctx.capability or "direct", type(exc).__name__
        ).inc()
        failures = await self.ledger.add_failure(tenant, ctx.envelope.id)
        retryable = not isinstance(exc, self.retry.non_retryable_exceptions)
        if retryable and failures < max_attempts:
            delay = self.retry.calculate_delay(failures) / 1000
            logger.info(
                "task {} failed on {} (attempt {}/{}), retry in {:.2f}s: {}",
                task_id,
                agent.agent_id,
                failures,
                max_attempts,
                delay,
                error,
            )
            await self._progress(
                ctx, "retrying", {"error": error, "retry_in": delay, "started_at": started_at}
            )
            await msg.nak(delay)
            return
        agent.tasks_failed += 1
        logger.warning(
            "task {} failed for good on {} after {} attempt(s): {}",
            task_id,
            agent.agent_id,
            failures,
            error,
        )
        failed = ctx.envelope.reply(
            "task.failed",
            {
                "task_id": task_id,
                "capability": ctx.capability,
                "agent_id": agent.agent_id,
                "error": error,
                "attempts": failures,
                "attempt": ctx.attempt,
                "retryable": retryable,
                "started_at": started_at,
            },
        )
        failed.metadata["id"] = result_id(tenant, task_id, f"failed-{failures}")
        await self._publish_outcome(tenant, "task.failed", failed)
        dead = ctx.envelope
        dead.context["error_context"] = error_context(msg.subject, error, failures)
        await agent.publish_guarded(subjects.dead_letter(msg.subject), dead, durable=True)
        await msg.term()
