"""The control plane's record of LLM tool calls: every ``llm.tool_call`` event an LLM
agent publishes (see :mod:`agentmesh.agents.llm_tools`) becomes an entry of the tenant's
hash-chained audit trail (action ``tool_called``; status ``success``, ``denied`` for a
call outside the allow-list, ``failure`` for invalid arguments or a failed tool).

``agentmesh audit list --action tool_called`` and ``GET /v1/tenants/{t}/audit`` show them.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from agentmesh import subjects
from agentmesh.errors import AgentMeshError
from agentmesh.security.audit import AuditAction, AuditEntry, AuditStatus, AuditStore
from agentmesh.transports import Message, Subscription, Transport

STATUS = {
    "ok": AuditStatus.SUCCESS,
    "refused": AuditStatus.DENIED,
    "denied": AuditStatus.DENIED,
    "invalid": AuditStatus.FAILURE,
    "error": AuditStatus.FAILURE,
}


def entry_of(tenant: str, payload: dict[str, Any]) -> AuditEntry:
    """The audit entry of one ``llm.tool_call`` event payload."""
    details: dict[str, Any] = {
        k: payload[k] for k in ("task_id", "status", "arguments", "ms", "error") if k in payload
    }
    return AuditEntry.new(
        AuditAction.TOOL_CALLED,
        STATUS.get(str(payload.get("status")), AuditStatus.UNKNOWN),
        tenant_id=tenant,
        actor=str(payload.get("agent_id", "")),
        resource_type="tool",
        resource_id=str(payload.get("tool", "")),
        details=details,
    )


class ToolCallAudit:
    """Subscribes to every tenant's ``llm.tool_call`` events and appends them to ``audit``."""

    def __init__(self, transport: Transport, audit: AuditStore) -> None:
        self.transport = transport
        self.audit = audit
        self._sub: Subscription | None = None

    async def start(self) -> None:
        # a queue group: with several control-plane replicas each call is audited once
        queue = "am-plane-tool-audit" if self.transport.capabilities.queue_groups else None
        self._sub = await self.transport.subscribe(
            subjects.events_of("llm.tool_call"), self._on_event, queue=queue
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_event(self, msg: Message) -> None:
        env = msg.envelope
        try:
            await self.audit.append(entry_of(env.tenant_id, dict(env.payload)))
        except AgentMeshError as exc:
            logger.warning("tool call of {} not audited: {}", env.tenant_id, exc)
