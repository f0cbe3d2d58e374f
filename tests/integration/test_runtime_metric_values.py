"""Seed metrics of the agent runtime and the live registry, by value: the real task path
runs (memory broker), then the Prometheus text exposition is read back with
prometheus_client's parser and every figure is checked against what happened."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentmesh import Mesh, RemoteError, TaskContext
from agentmesh.observability import metrics
from agentmesh.runtime.execution import Decision
from tests.helpers import eventually, fast_settings

pytestmark = pytest.mark.integration


def value(name: str, **labels: str) -> float:
    """A sample of the exposition, read through the Prometheus text parser (0 if absent)."""
    body, _ = metrics.exposition()
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_task_path_and_registry_metrics_change_by_what_happened(tmp_path: Path) -> None:
    tenant = "m" + uuid.uuid4().hex[:8]
    worker, picky = "w-" + uuid.uuid4().hex[:8], "p-" + uuid.uuid4().hex[:8]
    mesh = Mesh(
        f"memory://{uuid.uuid4().hex}",
        tenant=tenant,
        settings=fast_settings(tmp_path, agentmesh_max_deliver=1),
    )
    gate = asyncio.Event()
    running = asyncio.Event()

    @mesh.agent(worker, capabilities=["count", "explode"], max_concurrent=4)
    async def handle(task: TaskContext) -> dict[str, Any]:
        if task.capability == "explode":
            raise ValueError("boom")
        if task.payload.get("hold"):
            running.set()
            await gate.wait()
        return {"ok": True}

    declined: list[str] = []

    def decide(task: TaskContext) -> Decision:
        declined.append(task.task_id)
        return Decision(len(declined) > 1, reason="warming-up", delay=0.01)

    @mesh.agent(picky, capabilities=["picky"], decide=decide)
    async def picky_handle(task: TaskContext) -> dict[str, Any]:
        return {"picked": True}

    done = ("agentmesh_tasks_completed_total", {"agent_id": worker, "task_type": "count"})
    routed = {"tenant_id": tenant, "message_type": "task.offered", "routing_strategy": "pull"}
    async with mesh:
        for _ in range(3):
            await mesh.run("count", {}, timeout=10)
        assert value(done[0], **done[1], task_status="completed") == 3
        assert value("agentmesh_task_execution_seconds_count", **done[1]) == 3
        assert value("agentmesh_task_execution_seconds_sum", **done[1]) > 0
        assert value("agentmesh_messages_routed_total", **routed) == 3
        latency = {"routing_strategy": "pull", "tenant_id": tenant}
        assert value("agentmesh_message_routing_latency_seconds_count", **latency) == 3

        with pytest.raises(RemoteError):
            await mesh.run("explode", {}, timeout=10, max_attempts=1)
        failed = {"agent_id": worker, "task_type": "explode"}
        assert value("agentmesh_tasks_completed_total", **failed, task_status="failed") == 1
        assert value("agentmesh_task_failures_total", **failed, failure_reason="ValueError") == 1

        # a running task: in progress 1 and the agent BUSY; back to 0 and AVAILABLE after
        busy = {"agent_id": worker, "from_status": "AVAILABLE", "to_status": "BUSY"}
        before = value("agentmesh_agent_state_changes_total", **busy)
        task_id = await mesh.submit("count", {"hold": True})
        await asyncio.wait_for(running.wait(), 10)
        in_progress = {"tenant_id": tenant, "agent_id": worker}
        assert value("agentmesh_tasks_in_progress", **in_progress) == 1
        assert value("agentmesh_agent_state_changes_total", **busy) == before + 1
        gate.set()
        await mesh.wait_result(task_id, timeout=10)
        assert value("agentmesh_tasks_in_progress", **in_progress) == 0

        # autonomy: the first offer is declined (and counted), the task runs after
        assert await mesh.run("picky", {}, timeout=10) == {"picked": True}
        reason = {"tenant_id": tenant, "agent_id": picky, "reason": "warming-up"}
        assert value("agentmesh_tasks_declined_total", **reason) == 1

        # routed submit with no live agent for the capability: a routing error
        await mesh.submit("nobody-has-this", {}, strategy="round_robin")
        no_route = {"tenant_id": tenant, "error_type": "no_route"}
        assert value("agentmesh_routing_errors_total", **no_route) == 1

        # the registry's view, fed by heartbeats
        def registry_figures() -> bool:
            return (
                value("agentmesh_tenant_agents_total", tenant_id=tenant) == 2
                and value(
                    "agentmesh_agent_capability_coverage", tenant_id=tenant, capability="count"
                )
                == 1
                and value("agentmesh_active_agents", tenant_id=tenant, status="AVAILABLE") == 2
            )

        await eventually(registry_figures, timeout=10)
        assert value("agentmesh_agent_load_percent", agent_id=worker) == 0
        new = {"agent_id": picky, "from_status": "NEW", "to_status": "AVAILABLE"}
        assert value("agentmesh_agent_state_changes_total", **new) == 1
