"""The composition root: :class:`Mesh` builds transport, registry and agents from settings.

A whole agent in a few lines::

    from agentmesh import Mesh

    mesh = Mesh("memory://", tenant="acme")

    @mesh.agent("summarizer", capabilities={"summarize": 4})
    async def summarize(task):
        return {"summary": task.payload["text"][:40]}

    async with mesh:
        reply = await mesh.request("summarize", {"text": "a long story ..."})
        task_id = await mesh.submit("summarize", {"text": "durable work"})
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from loguru import logger

from agentmesh import subjects
from agentmesh.config import Settings, get_settings
from agentmesh.domain.task_values import check_task_limits, parse_priority
from agentmesh.domain.workflows import check_workflow_data, workflow_capability
from agentmesh.envelope import Envelope
from agentmesh.errors import MaxRetriesExceededError, RemoteError, ValidationError
from agentmesh.observability import metrics, tracing
from agentmesh.observability.process_metrics import start_requested_metrics
from agentmesh.resilience import RetryPolicy
from agentmesh.runtime.agent import TASK_DELIVERY_CAP, AgentHandler, AgentRuntime
from agentmesh.runtime.approval_client import submit_for_approval
from agentmesh.runtime.bus_transport import mesh_transport
from agentmesh.runtime.context import current_task_id
from agentmesh.runtime.ledger import ledger_for
from agentmesh.runtime.quota import QuotaLease
from agentmesh.runtime.registry import Registry
from agentmesh.runtime.routing import LiveRouter, vetting_route
from agentmesh.safety.guard import SafetyGuard
from agentmesh.transports import (
    Message,
    SubscribeOptions,
    Subscription,
    Transport,
)

PROVISION_RECHECK = 30.0
"""Seconds a mesh trusts a provisioned subject before asking its transport again (which
re-declares the group when its own, broker-specific, ``provision_ttl`` ran out)."""


class Mesh:
    """Agents, a transport and a registry for one tenant; start with ``async with mesh``.
    ``bus_token``: what it presents to NATS (default: security/bus_credentials.py)."""

    def __init__(
        self,
        transport: Transport | str | None = None,
        *,
        tenant: str | None = None,
        settings: Settings | None = None,
        bus_token: str | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.tenant = tenant or self.settings.agentmesh_tenant
        subjects.agent(self.tenant, "probe")  # validates the tenant id early
        self.transport: Transport = (
            transport
            if transport is not None and not isinstance(transport, str)
            else mesh_transport(self.settings, self.tenant, transport, bus_token)
        )
        self.agents: dict[str, AgentRuntime] = {}
        self.registry = Registry(
            self.transport,
            tenant=self.tenant,
            health_check_timeout=self.settings.agentmesh_health_check_timeout,
        )
        self.router = LiveRouter(self)
        #: durable per-task facts shared by every agent on this broker (see runtime.ledger)
        self.ledger = ledger_for(self.transport, self.settings)
        self.quota = QuotaLease(self.transport, self.tenant)  # max_messages_per_hour, via the plane
        #: the safety policy in force in this process (None when AGENTMESH_SAFETY is off)
        self.safety: SafetyGuard | None = SafetyGuard.from_settings(self)
        self._broker_retry = RetryPolicy.for_message_broker(name="mesh.publish")
        self._started = False
        self._subs: list[Subscription] = []
        #: subjects whose agents' durable group this mesh made sure exists (see provision)
        self._provisioned: set[str] = set()
        # what an agent of this mesh's settings subscribes its task queues with
        self._task_options = SubscribeOptions(self.settings.agentmesh_ack_wait, TASK_DELIVERY_CAP)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kw: Any) -> Mesh:
        return cls(settings=settings or get_settings(), **kw)

    # -- agents -------------------------------------------------------------------------
    def agent(
        self,
        agent_id: str,
        *,
        capabilities: Mapping[str, int] | Iterable[str] | str,
        max_concurrent: int = 8,
        **kw: Any,
    ) -> Callable[[AgentHandler], AgentRuntime]:
        """Decorator: turn an async handler ``(task) -> result`` into an agent of this mesh."""

        def register(handler: AgentHandler) -> AgentRuntime:
            if not asyncio.iscoroutinefunction(handler):
                raise ValidationError(f"agent {agent_id!r}: the handler must be an async function")
            runtime = AgentRuntime(
                self,
                agent_id,
                handler,
                capabilities=capabilities,
                max_concurrent=max_concurrent,
                **kw,
            )
            self.add(runtime)
            return runtime

        return register

    def add(self, runtime: AgentRuntime) -> AgentRuntime:
        if runtime.agent_id in self.agents:
            raise ValidationError(
                f"agent {runtime.agent_id!r} already exists in this mesh", code="AGENT_EXISTS"
            )
        self.agents[runtime.agent_id] = runtime
        if self._started:
            task = asyncio.get_running_loop().create_task(runtime.start())
            task.add_done_callback(lambda t: t.exception())
        return runtime

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, *, registry: bool = True) -> None:
        """Connect the transport, start the registry and every agent."""
        if self._started:
            return
        await self.transport.connect()
        if registry:
            await self.registry.start(serve_snapshots=True)
        for runtime in list(self.agents.values()):
            await runtime.start()
        self._started = True
        start_requested_metrics()  # an `agent start*` process: /metrics once it runs

    async def stop(self) -> None:
        """Stop agents (graceful drain), the registry, then the transport."""
        if not self._started:
            return
        self._started = False
        for runtime in list(self.agents.values()):
            try:
                await runtime.stop()
            except Exception:  # noqa: BLE001 - one agent failing to stop must not keep the others running
                logger.exception("agent {} did not stop cleanly", runtime.agent_id)
        await self.registry.stop()
        if self.safety is not None:
            await self.safety.stop()
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()
        await self.ledger.close()
        await self.transport.close()

    async def __aenter__(self) -> Mesh:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- messaging ----------------------------------------------------------------------
    async def submit(
        self,
        capability: str,
        payload: dict[str, Any] | None = None,
        *,
        task_id: str | None = None,
        reply_to: str | None = None,
        priority: int | None = None,
        timeout_seconds: float | None = None,
        max_attempts: int | None = None,
        strategy: str | None = None,
        to_agent: str | None = None,
        parent_task_id: str | None = None,
        requires_approval: bool = False,
        require_vetting: bool = False,
    ) -> str:
        """Offer a durable task to the agents with ``capability``; returns the task id.
        ``requires_approval``: held as ``pending_approval`` until approved (no agent sees it).

        ``to_agent`` sends it straight to one agent's durable inbox instead. The target's
        durable group is provisioned first (once per subject), so a task submitted before
        any agent subscribed waits for the first one on every broker.

        Without ``strategy`` the agents compete for it (pull mode). With one of the five
        routing strategies (``round_robin``, ``least_connections``, ``capability_based``,
        ``load_balanced``, ``priority_queue``) this mesh's registry picks the agent and the
        task goes to that agent's durable inbox (routed mode); when no live agent can take
        it, it waits in the capability queue. The result arrives as a ``task.completed``
        event (see :meth:`on_event` and :meth:`wait_result`).

        Each submit takes one of the tenant's ``max_messages_per_hour`` from the control plane
        (:mod:`agentmesh.runtime.quota`; a used-up hour: ``QuotaExceeded``, nothing published).

        Submitted from inside a task handler, the task records that task as its
        ``parent_task_id`` (or pass ``parent_task_id``): REST lists a task's subtasks.
        ``require_vetting``: the tenant's safety agent vets it first (a veto: ``task.rejected``).
        """
        env = Envelope.create(
            "task.offered",
            dict(payload or {}),
            tenant_id=self.tenant,
            source="mesh",
            routing={
                "required_capabilities": [capability],
                **({"reply_to": reply_to} if reply_to else {}),
            },
        )
        if task_id:
            env.metadata["id"] = task_id
        check_task_limits(priority, timeout_seconds, max_attempts)  # the domain's rules
        if priority is not None:
            env.metadata["priority"] = parse_priority(priority)
        if timeout_seconds is not None:
            env.metadata["timeout_seconds"] = timeout_seconds
        if max_attempts is not None:
            env.metadata["max_attempts"] = max_attempts
        parent = parent_task_id or current_task_id()  # submitted from a task handler
        if parent:
            env.metadata["parent_task_id"] = parent
        if requires_approval:
            return await submit_for_approval(self.transport, env, capability, to_agent)
        subject = subjects.task(self.tenant, capability)
        mode = "pull"
        if require_vetting:  # offered to the safety agent only; it forwards what it vets
            subject, mode, capability = vetting_route(env, to_agent, strategy)
        elif to_agent is not None:
            subject, mode = subjects.inbox(self.tenant, to_agent), "direct"
            env.routing["destination"] = to_agent
        elif strategy is not None:
            chosen = self.router.choose(strategy, capability, priority or 3, env.id)
            if chosen is not None:
                subject, mode = subjects.inbox(self.tenant, chosen), strategy
                env.routing["destination"] = chosen
        await self.quota.take()  # QuotaExceeded before anything is published
        started = time.perf_counter()
        if subject not in self._provisioned:
            dest = env.routing.get("destination")
            await self.provision(
                subject,
                subjects.inbox_group(dest) if dest else subjects.capability_group(capability),
            )
        with tracing.span("task.submit", kind=tracing.SpanKind.PRODUCER, root=True, leaf=True) as s:
            tracing.inject(env, s)
            await self.publish_durably(subject, env)
        metrics.messages_routed.labels(self.tenant, "task.offered", mode).inc()
        metrics.message_routing_latency.labels(mode, self.tenant).observe(
            time.perf_counter() - started
        )
        return env.id

    async def submit_workflow(
        self, workflow_type: str, workflow_data: dict[str, Any] | None = None, **kw: Any
    ) -> str:
        """Submit a ``workflow_type`` (orchestrator_worker, hierarchical, market, swarm; see
        :mod:`agentmesh.domain.workflows`) that the control plane's workflow runner runs;
        the task's result is the workflow's. ``kw`` as for :meth:`submit`."""
        data = check_workflow_data(workflow_type, workflow_data or {})  # 422-worthy input
        return await self.submit(workflow_capability(workflow_type), data, **kw)

    async def provision(self, subject: str, group: str) -> None:
        """Make sure the agents' durable group ``group`` on ``subject`` exists, so that tasks
        published there are kept until an agent subscribes (once per subject per mesh).

        ``group`` is :func:`agentmesh.subjects.capability_group` for a capability's task
        queue, :func:`agentmesh.subjects.inbox_group` for an agent's inbox.
        """
        if subject in self._provisioned:
            return
        try:
            await self._broker_retry.call(
                self.transport.provision, subject, group, options=self._task_options
            )
        except MaxRetriesExceededError as exc:
            raise exc.last_error from None
        self._provisioned.add(subject)
        asyncio.get_running_loop().call_later(PROVISION_RECHECK, self._provisioned.discard, subject)

    async def publish_durably(self, subject: str, env: Envelope) -> None:
        """Publish with retries on transient broker errors (same id: the broker dedupes)."""
        try:
            await self._broker_retry.call(self.transport.publish, subject, env, durable=True)
        except MaxRetriesExceededError as exc:
            raise exc.last_error from None

    async def cancel(self, task_id: str, *, tenant: str | None = None) -> None:
        """Cancel a task: dropped if not started yet, interrupted if running somewhere."""
        tenant = tenant or self.tenant
        await self.ledger.cancel(tenant, task_id)
        env = Envelope.create("task.cancel", {"task_id": task_id}, tenant_id=tenant, source="mesh")
        await self.transport.publish(subjects.system(tenant, "cancel"), env)

    async def request(
        self, capability: str, payload: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Ask any agent with ``capability`` and wait for its result."""
        env = Envelope.create(
            "task.request", dict(payload or {}), tenant_id=self.tenant, source="mesh"
        )
        reply = await self.transport.request(
            subjects.rpc(self.tenant, capability), env, timeout=timeout
        )
        return self._result(reply)

    async def send(
        self,
        agent_id: str,
        payload: dict[str, Any] | None = None,
        *,
        type: str = "agent.message",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send a direct message to one agent and wait for its answer."""
        env = Envelope.create(type, dict(payload or {}), tenant_id=self.tenant, source="mesh")
        reply = await self.transport.request(
            subjects.agent(self.tenant, agent_id), env, timeout=timeout
        )
        return self._result(reply)

    async def ask(self, payload: dict[str, Any] | None = None, **route: Any) -> dict[str, Any]:
        """Send a message to the best live agent for it and wait: see :meth:`LiveRouter.ask`."""
        return await self.router.ask(payload, **route)

    async def control(
        self, agent_id: str, action: str, *, timeout: float = 5.0, tenant: str | None = None
    ) -> dict[str, Any]:
        """Pause, resume or stop an agent, wherever it runs (``tenant``: admin paths)."""
        tenant = tenant or self.tenant
        if action not in ("pause", "resume", "stop"):
            raise ValidationError(f"unknown agent action {action!r}: use pause, resume or stop")
        env = Envelope.create("agent.control", {"action": action}, tenant_id=tenant, source="mesh")
        reply = await self.transport.request(subjects.agent(tenant, agent_id), env, timeout=timeout)
        if "error" in reply.payload:
            raise RemoteError(
                str(reply.payload["error"]), code=str(reply.payload.get("code", "REMOTE_ERROR"))
            )
        return reply.payload

    @staticmethod
    def _result(reply: Envelope) -> dict[str, Any]:
        if reply.type == "task.error":
            raise RemoteError(
                str(reply.payload.get("error")), code=str(reply.payload.get("code", "REMOTE_ERROR"))
            )
        result = reply.payload.get("result", reply.payload)
        return result if isinstance(result, dict) else {"result": result}

    async def on_event(
        self,
        event_type: str,
        handler: Callable[[Envelope], Awaitable[None]],
        *,
        durable: str | None = None,
    ) -> Subscription:
        """Call ``handler`` for each event of ``event_type`` (e.g. ``task.completed``)."""

        async def deliver(msg: Message) -> None:
            await handler(msg.envelope)

        sub = await self.transport.subscribe(
            subjects.event_pattern(self.tenant, event_type), deliver, durable=durable
        )
        self._subs.append(sub)
        return sub

    async def run(
        self,
        capability: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float = 30.0,
        **submit: Any,
    ) -> dict[str, Any]:
        """Submit a durable task and wait for its result (race-free on every broker).

        Takes the keyword arguments of :meth:`submit`; raises :class:`RemoteError` when the
        task failed for good or was cancelled. With a ``task_id`` that already has an
        outcome, that outcome is the answer: the task is not offered again.
        """
        given = submit.pop("task_id", None)
        task_id = given or str(uuid.uuid4())
        done, sub = await self._watch_outcome(task_id)
        try:
            past = await self.ledger.outcome(self.tenant, task_id) if given else None
            if past is not None:
                return self._outcome_result(task_id, past)
            await self.submit(capability, payload, task_id=task_id, **submit)
            env = await asyncio.wait_for(done, timeout)
        finally:
            await sub.unsubscribe()
        return self._outcome_result(task_id, env)

    async def _watch_outcome(self, task_id: str) -> tuple[asyncio.Future[Envelope], Subscription]:
        done: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()

        async def match(msg: Message) -> None:
            if not done.done():
                done.set_result(msg.envelope)

        sub = await self.transport.subscribe(subjects.task_outcomes(self.tenant, task_id), match)
        return done, sub

    async def wait_result(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The result of a submitted task: waits for its outcome event, or finds it when past.

        Past outcomes are looked up in the task ledger (the broker's, or the shared one of
        brokers without key-value storage). Raises :class:`RemoteError` when the task
        failed for good or was cancelled.
        """
        done, sub = await self._watch_outcome(task_id)
        try:
            past = await self.ledger.outcome(self.tenant, task_id)
            if past is not None and not done.done():
                done.set_result(past)
            env = await asyncio.wait_for(done, timeout)
        finally:
            await sub.unsubscribe()
        return self._outcome_result(task_id, env)

    @staticmethod
    def _outcome_result(task_id: str, env: Envelope) -> dict[str, Any]:
        if env.type == "task.failed":
            raise RemoteError(str(env.payload.get("error")), code="TASK_FAILED")
        if env.type == "task.cancelled":
            raise RemoteError(f"task {task_id} was cancelled", code="TASK_CANCELLED")
        if env.type == "task.rejected":
            raise RemoteError(str(env.payload.get("error")), code="TASK_REJECTED")
        result = env.payload.get("result")
        return result if isinstance(result, dict) else {"result": result}
