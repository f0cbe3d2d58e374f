"""The client side of approvals over the bus: what ``Mesh.submit(...,
requires_approval=True)`` and a pausing LLM agent send the control plane (its
:class:`~agentmesh.runtime.approvals.ApprovalService` answers). Kept free of the store
and the command bus, so a broker-only process imports little."""

from __future__ import annotations

from typing import Any

from agentmesh import ids, subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import RemoteError
from agentmesh.transports import Transport

REQUEST_TIMEOUT = 10.0


def approval_subject(tenant: str) -> str:
    """Where approval requests of ``tenant`` go (``*``: every tenant, the plane listens)."""
    t = tenant if tenant == "*" else ids.check_tenant_id(tenant)
    return f"{subjects.PREFIX}.{t}.sys.approval"


def submit_body(env: Envelope, capability: str, to_agent: str | None) -> dict[str, Any]:
    """The ``submit`` request of a task ``Mesh.submit`` built (``env``) for approval."""
    md = env.metadata
    return {
        "op": "submit",
        "task_id": env.id,
        "capability": capability,
        "payload": dict(env.payload),
        "priority": md.get("priority"),
        "timeout_seconds": md.get("timeout_seconds"),
        "max_attempts": md.get("max_attempts"),
        "to_agent": to_agent,
    }


async def request_approval(
    transport: Transport, tenant: str, body: dict[str, Any], *, source: str = "mesh"
) -> dict[str, Any]:
    """Send an approval request to the control plane and return its answer; an error it
    answers is raised as :class:`~agentmesh.errors.RemoteError` (with its code)."""
    env = Envelope.create("approval.request", body, tenant_id=tenant, source=source)
    reply = await transport.request(approval_subject(tenant), env, timeout=REQUEST_TIMEOUT)
    answer = dict(reply.payload)
    if "error" in answer:
        raise RemoteError(str(answer["error"]), code=str(answer.get("code") or "REMOTE_ERROR"))
    return answer


async def submit_for_approval(
    transport: Transport, env: Envelope, capability: str, to_agent: str | None
) -> str:
    """Hand a task ``Mesh.submit`` built to the control plane for approval; returns its
    id once the plane stored it as ``pending_approval``."""
    body = submit_body(env, capability, to_agent)
    answer = await request_approval(
        transport, env.tenant_id, body, source=str(env.metadata.get("source") or "mesh")
    )
    return str(answer["task_id"])


__all__ = ["approval_subject", "request_approval", "submit_body", "submit_for_approval"]
