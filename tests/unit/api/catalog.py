"""Every protected REST operation with a request that is valid for a seeded tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from agentmesh.commands import FailTask, RegisterAgent, SubmitTask
from tests.unit.api.conftest import Api, agent_body

SECRET_MARK = "payload-only-the-owner-may-see"


@dataclass
class Seed:
    tenant: str
    agent_id: str
    task_id: str
    dead_task_id: str
    message_id: str


async def seed_tenant(api: Api, tenant: str) -> Seed:
    """An agent, a task, a dead-lettered task and a recorded message in ``tenant``."""
    bus = api.ctx.bus
    agent_id = f"worker-{tenant}"
    await bus.execute(RegisterAgent(tenant, agent_id, f"Agent of {tenant}", {"summarize": 4.0}))
    task = await bus.execute(SubmitTask(tenant, "summarize", {"secret": SECRET_MARK}))
    dead = await bus.execute(SubmitTask(tenant, "summarize", {"n": 1}, max_attempts=1))
    await bus.execute(FailTask(tenant, str(dead.aggregate_id), "boom", retryable=False))
    await api.ctx.caught_up()
    root = api.root
    r = await api.client.post(
        f"/v1/tenants/{tenant}/messages",
        json=envelope(tenant, {"secret": SECRET_MARK}),
        headers=root,
    )
    assert r.status_code == 202, r.text
    return Seed(
        tenant, agent_id, str(task.aggregate_id), str(dead.aggregate_id), r.json()["message_id"]
    )


def envelope(tenant: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"id": str(uuid.uuid4()), "type": "note.added"},
        "routing": {},
        "payload": payload or {"text": "hello"},
        "context": {},
        "security": {},
        "tenant_id": tenant,
    }


async def fresh_agent(api: Api, tenant: str) -> str:
    agent_id = "a-" + uuid.uuid4().hex[:8]
    await api.ctx.bus.execute(RegisterAgent(tenant, agent_id, "fresh agent", {"summarize": 3.0}))
    await api.ctx.caught_up()
    return agent_id


def request_for(op: str, s: Seed) -> tuple[str, str, Any]:
    """(method, path, json body) of ``op`` against seed ``s``."""
    t = f"/v1/tenants/{s.tenant}"
    table: dict[str, tuple[str, str, Any]] = {
        "create_tenant": ("POST", "/v1/tenants", {"name": "tenant-" + uuid.uuid4().hex[:8]}),
        "list_tenants": ("GET", "/v1/tenants", None),
        "get_tenant": ("GET", t, None),
        "list_agents": ("GET", f"{t}/agents", None),
        "create_agent": ("POST", f"{t}/agents", agent_body("n-" + uuid.uuid4().hex[:8])),
        "get_agent": ("GET", f"{t}/agents/{s.agent_id}", None),
        "list_live_agents": ("GET", f"{t}/agents/live", None),
        "get_metrics_history": ("GET", f"{t}/metrics/history", None),
        "list_clusters": ("GET", f"{t}/clusters?wait=0.05", None),
        "pause_agent": ("POST", f"{t}/agents/{s.agent_id}/pause", None),
        "resume_agent": ("POST", f"{t}/agents/{s.agent_id}/resume", None),
        "terminate_agent": ("POST", f"{t}/agents/{s.agent_id}/terminate", None),
        "submit_task": ("POST", f"{t}/tasks", {"capability": "summarize"}),
        "list_tasks": ("GET", f"{t}/tasks", None),
        "get_task": ("GET", f"{t}/tasks/{s.task_id}", None),
        "cancel_task": ("POST", f"{t}/tasks/{s.task_id}/cancel", None),
        "retry_task": ("POST", f"{t}/tasks/{s.dead_task_id}/retry", None),
        "publish_message": ("POST", f"{t}/messages", envelope(s.tenant)),
        "get_message": ("GET", f"{t}/messages/{s.message_id}", None),
        "list_audit": ("GET", f"{t}/audit", None),
        "list_federated_rounds": ("GET", f"{t}/federated/rounds", None),
        "get_safety_policy": ("GET", f"{t}/safety/policy", None),
        "put_safety_policy": ("PUT", f"{t}/safety/policy", {"version": 2, "name": "catalog"}),
        "agent_feedback": ("POST", f"{t}/agents/{s.agent_id}/feedback", {"rating": 0.9}),
        "release_agent": ("POST", f"{t}/agents/{s.agent_id}/release", {"reason": "catalog"}),
        "get_tenant_asyncapi": ("GET", f"{t}/asyncapi.json", None),
    }
    return table[op]


OBJECT_OPERATIONS = frozenset(
    {
        "get_agent",
        "pause_agent",
        "resume_agent",
        "terminate_agent",
        "get_task",
        "cancel_task",
        "retry_task",
        "get_message",
        "agent_feedback",
        "release_agent",
    }
)
