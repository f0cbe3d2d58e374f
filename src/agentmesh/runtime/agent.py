"""The agent runtime: lifecycle, subscriptions, heartbeats, resilience and control.

An agent serves its capabilities four ways:

* durable tasks on ``am.<tenant>.task.<capability>`` (one named consumer per capability,
  shared by every agent that has it, so agents compete for work; see
  :mod:`agentmesh.runtime.execution` for the effectively-once handling);
* its durable inbox ``am.<tenant>.inbox.<agent_id>`` (tasks routed to it by a strategy);
* request/reply on ``am.<tenant>.rpc.<capability>`` (a queue group per capability);
* direct messages on ``am.<tenant>.agent.<agent_id>`` (also control: pause/resume/stop).

Every handler call runs in the agent's bulkhead (``max_concurrent``); results go to the
broker through a circuit breaker, so a broker outage fails fast and recovers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    BulkheadFullError,
    BulkheadTimeoutError,
    InvalidTransition,
)
from agentmesh.observability import metrics, tracing
from agentmesh.resilience import (
    Bulkhead,
    BulkheadConfig,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
)
from agentmesh.runtime.capabilities import (
    parse_capabilities,
    validate_agent_id,
)
from agentmesh.runtime.capability_specs import CapabilitySpec, parse_specs
from agentmesh.runtime.context import TaskContext
from agentmesh.runtime.execution import DecidePolicy, DurableExecutor
from agentmesh.transports import Message, SubscribeOptions, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

AgentHandler = Callable[[TaskContext], Awaitable[Any]]

TASK_DELIVERY_CAP = 10_000
"""Broker-side delivery cap of task consumers; attempts are counted by the ledger instead,
so declines and crashed agents never use up a task's attempts."""


class AgentRuntime:
    """A running agent: create with :meth:`Mesh.agent`, then ``await mesh.start()``.

    ``decide`` is an optional policy ``(task) -> bool | Decision`` consulted before a
    durable task runs (the autonomy hook); a declined task is released for other agents.
    """

    def __init__(
        self,
        mesh: Mesh,
        agent_id: str,
        handler: AgentHandler,
        *,
        capabilities: Mapping[str, int] | Iterable[str] | str,
        max_concurrent: int = 8,
        tenant_id: str | None = None,
        ack_wait: float | None = None,
        max_deliver: int | None = None,
        description: str = "",
        decide: DecidePolicy | None = None,
        capability_specs: Mapping[str, CapabilitySpec | Mapping[str, Any]] | None = None,
        agent_type: str = "general",
    ) -> None:
        self.mesh = mesh
        self.agent_id = validate_agent_id(agent_id)
        self.handler = handler
        self.capabilities = parse_capabilities(capabilities)
        self.tenant_id = tenant_id or mesh.tenant
        self.max_concurrent = max_concurrent
        self.description = description
        #: per capability: a description and the JSON Schema of its payload (heartbeats)
        self.capability_specs = parse_specs(self.capabilities, capability_specs)
        self.agent_type = agent_type  # the safety policy's capability and tool lists use it
        self.options = SubscribeOptions(
            ack_wait=ack_wait or mesh.settings.agentmesh_ack_wait,
            max_deliver=max_deliver or mesh.settings.agentmesh_max_deliver,
            max_in_flight=max_concurrent,
        )
        self._task_options = SubscribeOptions(
            ack_wait=self.options.ack_wait,
            max_deliver=TASK_DELIVERY_CAP,
            max_in_flight=max_concurrent,
        )
        self.bulkhead = Bulkhead(
            BulkheadConfig(
                max_concurrent=max_concurrent,
                max_queue=max_concurrent * 4,
                timeout_ms=None,
                queue_timeout_ms=None,
            ),
            name=f"agent:{self.agent_id}",
        )
        self.breaker = CircuitBreaker(
            CircuitBreakerConfig(failure_threshold=5, recovery_timeout_seconds=5.0),
            name=f"broker:{self.agent_id}",
            on_state_change=self._breaker_changed,
        )
        self.executor = DurableExecutor(self, mesh.ledger, decide=decide)
        self.status = "CREATED"
        self.in_flight = 0
        self.tasks_completed = 0
        self.tasks_failed = 0
        self.started_at: str | None = None
        self._work_subs: list[Subscription] = []
        self._control_subs: list[Subscription] = []
        self._hb_task: asyncio.Task[None] | None = None
        self._beating = False
        self._stopper: asyncio.Task[None] | None = None
        self._metric_cache: dict[tuple[int, tuple[str, ...]], Any] = {}

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.status not in ("CREATED", AgentStatus.TERMINATED):
            return
        t = self.mesh.transport
        if self.mesh.safety is not None:
            await self.mesh.safety.watch(self.tenant_id)
        self._control_subs = [
            await t.subscribe(subjects.agent(self.tenant_id, self.agent_id), self._on_direct),
            await t.subscribe(subjects.system(self.tenant_id, "cancel"), self._on_cancel),
        ]
        await self._subscribe_work()
        self.executor.start()
        self.started_at = datetime.now(UTC).isoformat()
        self._set_status(AgentStatus.AVAILABLE)
        self._beating = True
        self._hb_task = asyncio.create_task(self._heartbeat_loop())
        logger.info("agent {}/{} started with {}", self.tenant_id, self.agent_id, self.capabilities)

    async def _subscribe_work(self) -> None:
        t = self.mesh.transport
        for cap in self.capabilities:
            self._work_subs.append(
                await t.subscribe(
                    subjects.task(self.tenant_id, cap),
                    self.executor.handler_for(cap),
                    durable=subjects.capability_group(cap),
                    options=self._task_options,
                )
            )
            if t.capabilities.request_reply:
                # without queue groups (Kafka) every agent of the capability sees a request
                # and the first answer wins
                queue = subjects.capability_group(cap) if t.capabilities.queue_groups else None
                self._work_subs.append(
                    await t.subscribe(
                        subjects.rpc(self.tenant_id, cap),
                        self._rpc_handler(cap),
                        queue=queue,
                        options=self.options,
                    )
                )
        self._work_subs.append(
            await t.subscribe(
                subjects.inbox(self.tenant_id, self.agent_id),
                self.executor.handler_for(None),
                durable=subjects.inbox_group(self.agent_id),
                options=self._task_options,
            )
        )

    async def _unsubscribe_work(self) -> None:
        subs, self._work_subs = self._work_subs, []
        for sub in subs:
            await sub.unsubscribe()  # waits for in-flight handlers: graceful drain

    def quarantine(self) -> bool:
        """Safety quarantine until :meth:`release`: no work, running tasks back to the queue."""
        if self.status in ("CREATED", AgentStatus.TERMINATED, AgentStatus.QUARANTINED):
            return False
        self._set_status(AgentStatus.QUARANTINED)
        self.executor.requeue_running()  # beat now: every registry sees it before the next one
        self._isolating = asyncio.gather(
            self._beat(), self._unsubscribe_work(), return_exceptions=True
        )
        return True

    async def release(self) -> bool:
        """Lift a quarantine (an admin's decision): take work again."""
        if self.status != AgentStatus.QUARANTINED:
            return False
        await self._subscribe_work()
        self._set_status(AgentStatus.BUSY if self.in_flight else AgentStatus.AVAILABLE)
        await self._beat()
        return True

    async def pause(self) -> None:
        """Stop taking work (in-flight tasks finish); direct messages still arrive."""
        if self.status == AgentStatus.PAUSED:
            return
        if self.status in ("CREATED", AgentStatus.TERMINATED, AgentStatus.QUARANTINED):
            raise InvalidTransition(f"agent {self.agent_id} is {self.status}; cannot pause")
        await self._unsubscribe_work()
        self._set_status(AgentStatus.PAUSED)
        await self._beat()

    async def resume(self) -> None:
        if self.status != AgentStatus.PAUSED:
            raise InvalidTransition(
                f"agent {self.agent_id} is {self.status}; only a PAUSED agent resumes"
            )
        await self._subscribe_work()
        self._set_status(AgentStatus.BUSY if self.in_flight else AgentStatus.AVAILABLE)
        await self._beat()

    async def stop(self) -> None:
        """Drain in-flight work, announce TERMINATED, release every subscription."""
        if self.status in ("CREATED", AgentStatus.TERMINATED):
            return
        await self._unsubscribe_work()
        await self.executor.stop()
        if self._hb_task:
            self._beating = False
            await stop_task(self._hb_task)
            self._hb_task = None
        self._set_status(AgentStatus.TERMINATED)
        with contextlib.suppress(
            Exception
        ):  # the last heartbeat is a courtesy; the registry times out anyway
            await self._beat()
        subs, self._control_subs = self._control_subs, []
        for sub in subs:
            await sub.unsubscribe()
        logger.info("agent {}/{} stopped", self.tenant_id, self.agent_id)

    def _metric(self, metric: Any, *labels: str) -> Any:
        """A cached labelled child: ``labels()`` is too slow for the per-task path."""
        key = (id(metric), labels)
        child = self._metric_cache.get(key)
        if child is None:
            child = self._metric_cache[key] = metric.labels(*labels)
        return child

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self._metric(metrics.agent_state_changes, self.agent_id, self.status, status).inc()
            self.status = status

    def _breaker_changed(self, name: str, old: CircuitState, new: CircuitState) -> None:
        """Metric, log line and a ``system.breaker`` event (core publish: the client buffers
        it while reconnecting, so it arrives when the broker is back)."""
        states = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
        metrics.circuit_breaker_state.labels(name).set(states[new])
        logger.warning("circuit {} {} -> {}", name, old, new)
        env = Envelope.create(
            "system.breaker",
            {"breaker": name, "agent_id": self.agent_id, "from": str(old), "to": str(new)},
            tenant_id=self.tenant_id,
            source=self.agent_id,
        )
        task = asyncio.get_running_loop().create_task(
            self.mesh.transport.publish(subjects.event(self.tenant_id, "system.breaker"), env)
        )
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def publish_guarded(self, subject: str, env: Envelope, *, durable: bool = False) -> None:
        """Publish through the broker circuit breaker (fails fast while the broker is down)."""
        await self.breaker.call(self.mesh.transport.publish, subject, env, durable=durable)

    # -- heartbeats ---------------------------------------------------------------------
    def heartbeat_payload(self) -> dict[str, Any]:
        payload = {
            "agent_id": self.agent_id,
            "status": self.status,
            "capabilities": self.capabilities,
            "in_flight": self.in_flight,
            "max_concurrent": self.max_concurrent,
            "load": round(self.in_flight / self.max_concurrent, 4),
            "tasks_completed": self.tasks_completed,
            "tasks_failed": self.tasks_failed,
            "declined": self.executor.declined,
            "breaker": str(self.breaker.state),
            "started_at": self.started_at,
            **(self.mesh.safety.heartbeat_fields(self) if self.mesh.safety is not None else {}),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        if self.capability_specs:
            payload["capability_specs"] = {
                cap: spec.to_dict() for cap, spec in self.capability_specs.items()
            }
        return payload

    async def _beat(self) -> None:
        started = time.perf_counter()  # the agent's health check: its status, published
        env = Envelope.create(
            "agent.heartbeat",
            self.heartbeat_payload(),
            tenant_id=self.tenant_id,
            source=self.agent_id,
        )
        await self.mesh.transport.publish(subjects.heartbeat(self.tenant_id, self.agent_id), env)
        self._metric(metrics.health_check_duration, self.agent_id).observe(
            time.perf_counter() - started
        )

    async def _heartbeat_loop(self) -> None:
        interval = self.mesh.settings.agentmesh_heartbeat_interval
        while self._beating:
            try:
                await self._beat()
            except Exception as exc:  # noqa: BLE001 - a heartbeat failure must not end the heartbeat loop
                logger.warning("heartbeat of {} failed: {}", self.agent_id, exc)
            await asyncio.sleep(interval)

    # -- handling -----------------------------------------------------------------------
    async def invoke(self, ctx: TaskContext) -> dict[str, Any]:
        """Run the handler for one task with bookkeeping (status, metrics)."""
        self.in_flight += 1
        if self.status == AgentStatus.AVAILABLE:
            self._set_status(AgentStatus.BUSY)
        in_progress = self._metric(metrics.tasks_in_progress, self.tenant_id, self.agent_id)
        in_progress.inc()
        started = time.perf_counter()
        status = "failed"
        try:
            result = await self.handler(ctx)
            status = "completed"
            return result if isinstance(result, dict) else {"result": result}
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self.status == AgentStatus.BUSY:
                self._set_status(AgentStatus.AVAILABLE)
            in_progress.dec()
            kind = ctx.capability or "direct"
            self._metric(metrics.task_execution_seconds, self.agent_id, kind).observe(
                time.perf_counter() - started, tracing.exemplar()
            )
            self._metric(metrics.tasks_completed, self.agent_id, kind, status).inc()

    def _rpc_handler(self, capability: str | None) -> Callable[[Message], Awaitable[None]]:
        async def handle(msg: Message) -> None:
            ctx = TaskContext(self, msg, capability, "request" if msg.reply_subject else "direct")
            guard = self.mesh.safety  # checks the request and the answer (SafetyRejected)
            run = self.invoke if guard is None else guard.runner(self)
            try:
                result = await self.bulkhead.execute(run, ctx)
            except (BulkheadFullError, BulkheadTimeoutError) as exc:
                await msg.respond(
                    msg.envelope.reply(
                        "task.error",
                        {
                            "error": f"agent {self.agent_id} is at capacity: {exc}",
                            "code": "AGENT_BUSY",
                            "agent_id": self.agent_id,
                        },
                    )
                )
                return
            except Exception as exc:
                logger.warning("agent {} failed a request: {}", self.agent_id, exc)
                await msg.respond(
                    msg.envelope.reply(
                        "task.error",
                        {
                            "error": f"{type(exc).__name__}: {exc}",
                            "code": getattr(exc, "code", "HANDLER_ERROR"),
                            "agent_id": self.agent_id,
                        },
                    )
                )
                if not msg.reply_subject:
                    raise
                return
            await msg.respond(
                msg.envelope.reply(
                    "task.result",
                    {"task_id": ctx.task_id, "agent_id": self.agent_id, "result": result},
                )
            )

        return handle

    async def _on_cancel(self, msg: Message) -> None:
        task_id = msg.envelope.payload.get("task_id")
        if isinstance(task_id, str) and self.executor.cancel_local(task_id):
            logger.info("agent {} cancelled running task {}", self.agent_id, task_id)

    async def _on_direct(self, msg: Message) -> None:
        env = msg.envelope
        if env.type == "agent.control":
            action = env.payload.get("action")
            if action == "stop":  # stopping drains this very inbox: answer first, stop after
                await msg.respond(
                    env.reply(
                        "agent.control.result",
                        {"agent_id": self.agent_id, "status": AgentStatus.TERMINATED},
                    )
                )
                self._stopper = asyncio.create_task(self.stop())
                return
            if action in ("pause", "resume"):
                try:
                    await getattr(self, action)()
                    answer = {"agent_id": self.agent_id, "status": self.status}
                except InvalidTransition as exc:
                    answer = {"error": str(exc), "code": exc.code}
                await msg.respond(env.reply("agent.control.result", answer))
                return
        await self._rpc_handler(None)(msg)

    def __repr__(self) -> str:
        return f"AgentRuntime({self.tenant_id}/{self.agent_id}, {self.status}, {self.capabilities})"
