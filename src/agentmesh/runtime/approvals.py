"""The control plane's approval service, and the client side agents and ``Mesh`` use.

* Requests over the bus (``am.<tenant>.sys.approval``, request/reply): ``submit`` (a
  ``Mesh.submit(..., requires_approval=True)``: the task is recorded as
  ``pending_approval``, nothing is published to agents) and ``tool_call`` (an LLM agent
  pauses its running task at a gated tool call). Answered only once the store has it,
  so a reply means the pending state is durable.
* The sweeper: every ``interval`` seconds, each pending approval of every tenant gets its
  rule's deadline fallback (reject, approve, escalate) or reminder when due.
* Optional per-tenant webhooks (:mod:`agentmesh.runtime.approval_webhook`) get the
  approval events the WebSocket ``approvals`` channel gets (with ``webhook_secret``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from loguru import logger

from agentmesh.commands import CqrsBus, SubmitTask
from agentmesh.commands.approvals import GetApprovalPolicy, RequestToolApproval, SweepApproval
from agentmesh.domain import TaskStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, Conflict
from agentmesh.runtime.approval_client import approval_subject
from agentmesh.runtime.approval_webhook import ApprovalWebhook
from agentmesh.safety.approval_rules import ApprovalPolicy
from agentmesh.store.queries import ReadModels
from agentmesh.transports import Message, SubscribeOptions, Subscription, Transport

APPROVAL_GROUP = "controlplane-approvals"


def _submit_command(env: Envelope) -> SubmitTask:
    p = env.payload
    kw: dict[str, Any] = {k: p[k] for k in ("priority", "max_attempts") if p.get(k) is not None}
    timeout = p.get("timeout_seconds")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        kw["timeout_seconds"] = max(1, math.ceil(timeout))
    to_agent = p.get("to_agent")
    return SubmitTask(
        tenant_id=env.tenant_id,
        capability=str(p.get("capability") or ""),
        payload=dict(p.get("payload") or {}),
        task_id=str(p.get("task_id") or env.id),
        source=str(env.metadata.get("source") or "mesh"),
        to_agent=to_agent if isinstance(to_agent, str) else None,
        requires_approval=True,
        **kw,
    )


class ApprovalService:
    """Answers approval requests and sweeps deadlines (see the module doc)."""

    def __init__(
        self,
        transport: Transport,
        bus: CqrsBus,
        read_models: ReadModels | None,
        *,
        interval: float = 1.0,
        webhook_secret: str = "",
    ) -> None:
        self.transport = transport
        self.bus = bus
        self.read_models = read_models
        self.interval = interval
        self._sub: Subscription | None = None
        self._stop = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self.swept: list[tuple[str, str, str]] = []  # (tenant, task, what) for observers
        self.webhook: ApprovalWebhook | None = None
        if webhook_secret:
            self.webhook = ApprovalWebhook(transport, self._policy, webhook_secret)

    async def _policy(self, tenant: str) -> ApprovalPolicy:
        section: ApprovalPolicy = await self.bus.query(GetApprovalPolicy(tenant))
        return section

    async def start(self) -> None:
        opts = SubscribeOptions(max_in_flight=32, dead_letter=False)
        self._sub = await self.transport.subscribe(
            approval_subject("*"), self._answer, queue=APPROVAL_GROUP, options=opts
        )
        if self.webhook is not None:
            await self.webhook.start()
        self._stop.clear()
        self._loop = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        self._stop.set()
        if self._loop is not None:
            with contextlib.suppress(Exception):  # stopping: its errors were logged
                await asyncio.wait_for(self._loop, 10)
            self._loop = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self.webhook is not None:
            await self.webhook.stop()

    # -- requests -----------------------------------------------------------------------
    async def _answer(self, msg: Message) -> None:
        env = msg.envelope
        op = env.payload.get("op")
        try:
            if op == "submit":
                try:
                    result = await self.bus.execute(_submit_command(env))
                    body: dict[str, Any] = {"task_id": str(result.aggregate_id)}
                except Conflict as exc:
                    if exc.code != "TASK_EXISTS":
                        raise
                    body = {"task_id": env.id, "existing": True}  # a retried request
            elif op == "tool_call":
                p = env.payload
                body = await self.bus.execute(
                    RequestToolApproval(
                        tenant_id=env.tenant_id,
                        task_id=str(p.get("task_id", "")),
                        agent_id=str(p.get("agent_id", "")),
                        tool=str(p.get("tool", "")),
                        call_id=str(p.get("call_id", "")),
                        arguments=dict(p.get("arguments") or {}),
                        reasoning=str(p.get("reasoning") or ""),
                        conversation=tuple(p.get("conversation") or ()),
                    )
                )
            else:
                body = {"error": f"unknown approval op {op!r}", "code": "VALIDATION_ERROR"}
        except AgentMeshError as exc:
            body = {"error": str(exc), "code": exc.code}
        await msg.respond(env.reply("approval.answer", body))

    # -- deadlines ----------------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not end the sweeper
                logger.warning("approval sweep: {}", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def sweep(self) -> int:
        """Apply every due deadline and reminder; returns how many were applied."""
        if self.read_models is None:
            return 0
        done = 0
        tenants: list[dict[str, Any]] = []
        while batch := await self.read_models.list_tenants(offset=len(tenants)):
            tenants += batch
            if len(batch) < 1000:
                break
        for tenant in tenants:
            tenant_id = str(tenant["id"])
            page = await self.read_models.list_tasks(
                tenant_id, status=TaskStatus.PENDING_APPROVAL, limit=1000
            )
            for doc in page.items:
                task_id = str(doc["task_id"])
                try:
                    what = await self.bus.execute(SweepApproval(tenant_id, task_id))
                except AgentMeshError as exc:  # decided meanwhile, or a write race
                    logger.debug("approval sweep of {} skipped: {}", task_id, exc)
                    continue
                if what is not None:
                    done += 1
                    self.swept.append((tenant_id, task_id, what))
                    logger.info("approval of task {}/{}: {}", tenant_id, task_id, what)
        return done


__all__ = ["ApprovalService"]
