"""``workflow_type`` submissions are run by the control plane's workflow runner: the task's
result is the workflow's, and the subtasks are recorded tasks naming their parent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.commands import CreateTenant, GetTask, ListTasks, SubmitTask
from agentmesh.config import Settings
from agentmesh.controlplane import ControlPlane
from agentmesh.domain.workflows import check_workflow_data, workflow_capability
from agentmesh.errors import NotFound
from agentmesh.patterns.hierarchical import NodeContext, node
from agentmesh.patterns.market import MarketParticipant
from agentmesh.patterns.swarm import SwarmOrchestrator, SwarmWorker
from agentmesh.patterns.workflows import WorkflowHost
from agentmesh.runtime.registry import Registry
from tests.helpers import registry_knows, until

pytestmark = pytest.mark.integration


def fast(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        agentmesh_data_dir=tmp_path,
        agentmesh_heartbeat_interval=0.1,
        agentmesh_health_check_timeout=2.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
    )


@pytest.fixture
async def plane(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ControlPlane]:
    kind = getattr(request, "param", "memory")
    url = f"memory://{uuid.uuid4().hex}" if kind == "memory" else request.getfixturevalue(kind)
    settings = fast(tmp_path)
    mesh = Mesh(url, tenant="ops", settings=settings)
    mesh.registry = Registry(mesh.transport, tenant="*", health_check_timeout=2.0)
    await mesh.start()
    cp = ControlPlane(settings, mesh, projection_interval=0.05, sweep_interval=1.0)
    await cp.start()
    yield cp
    await cp.stop()
    await mesh.stop()


async def finished(cp: ControlPlane, tenant: str, task_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = await cp.bus.query(GetTask(tenant, task_id))
        return doc if doc["status"] in ("completed", "failed", "dead_lettered") else None

    doc: dict[str, Any] = await until(done, 20, not_yet=(NotFound,))
    return doc


async def children(cp: ControlPlane, tenant: str, parent: str, n: int) -> list[dict[str, Any]]:
    """The ``n`` finished subtasks of ``parent`` as the read model lists them."""

    async def listed() -> list[dict[str, Any]] | None:
        page = await cp.bus.query(ListTasks(tenant, parent_task_id=parent))
        items: list[dict[str, Any]] = page.items
        ok = len(items) == n and all(t["status"] == "completed" for t in items)
        return items if ok else None

    found: list[dict[str, Any]] = await until(listed, 20, not_yet=(NotFound,))
    return found


async def new_tenant(cp: ControlPlane) -> str:
    tenant = f"wf{uuid.uuid4().hex[:8]}"
    await cp.bus.execute(CreateTenant(tenant, tenant_id=tenant))
    return tenant


@pytest.mark.parametrize("plane", ["memory", "nats_url"], indirect=True)
async def test_orchestrator_worker_from_the_store_and_from_the_bus(plane: ControlPlane) -> None:
    cp = plane
    tenant = await new_tenant(cp)
    workers = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)

    @workers.agent("counter-1", capabilities=["count"])
    async def count(task: TaskContext) -> dict[str, Any]:
        return {"n": len(str(task.payload["text"]))}

    data = {"subtasks": [{"capability": "count", "payload": {"text": t}} for t in ("a", "bb")]}
    async with workers:
        stored = await cp.bus.execute(  # as REST and the CLI submit it
            SubmitTask(
                tenant,
                workflow_capability("orchestrator_worker"),
                check_workflow_data("orchestrator_worker", data),
                task_type="orchestrator_worker",
            )
        )
        wf = str(stored.aggregate_id)
        doc = await finished(cp, tenant, wf)
        assert doc["status"] == "completed", doc
        assert doc["result"]["value"] == [{"n": 1}, {"n": 2}]
        assert doc["agent_id"] == "workflow-runner"
        subs = await children(cp, tenant, wf, 2)
        assert {s["agent_id"] for s in subs} == {"counter-1"}
        assert sorted(s["result"]["n"] for s in subs) == [1, 2]
        assert all(s["parent_task_id"] == wf for s in subs)

        # a client with only the broker: Mesh.submit_workflow (the alias "orchestrator")
        client = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)
        async with client:
            bus_wf = await client.submit_workflow("orchestrator", {**data, "deadline": 30})
            doc = await finished(cp, tenant, bus_wf)
        assert doc["result"]["value"] == [{"n": 1}, {"n": 2}]
        await children(cp, tenant, bus_wf, 2)


async def test_hierarchical_runs_the_tree_and_records_each_level(plane: ControlPlane) -> None:
    cp = plane
    tenant = await new_tenant(cp)
    tree = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)

    @node(tree, "lead-1", role="lead", level=0, subordinates="review")
    async def lead(ctx: NodeContext) -> dict[str, Any]:
        parts = str(ctx.payload["doc"]).split("|")
        reviews = await ctx.delegate_all([{"part": p} for p in parts])
        return {"approved": all(r["ok"] for r in reviews), "reviews": reviews}

    @node(tree, "reviewer-1", role="review", level=1)
    async def review(ctx: NodeContext) -> dict[str, Any]:
        return {"ok": "typo" not in ctx.payload["part"], "by": ctx.node.agent_id}

    async with tree:
        await registry_knows(tree, "lead-1", "reviewer-1")
        client = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)
        async with client:
            wf = await client.submit_workflow(
                "hierarchical", {"capability": "lead", "payload": {"doc": "intro|body"}}
            )
            doc = await finished(cp, tenant, wf)
    assert doc["status"] == "completed", doc
    assert doc["result"]["result"]["approved"] is True
    assert doc["result"]["agent_id"] == "lead-1"
    (root,) = await children(cp, tenant, wf, 1)
    assert root["agent_id"] == "lead-1"
    leaves = await children(cp, tenant, root["task_id"], 2)
    assert {t["agent_id"] for t in leaves} == {"reviewer-1"}


async def test_market_and_swarm_workflows(plane: ControlPlane) -> None:
    cp = plane
    tenant = await new_tenant(cp)
    farm = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)

    async def render(task: TaskContext) -> dict[str, Any]:
        return {"frames": task.payload["frames"], "by": task.agent.agent_id}

    bidders = [
        MarketParticipant(farm.agent(a, capabilities=["render"])(render), base_price=p)
        for a, p in (("cheap-1", 1.0), ("dear-1", 3.0))
    ]
    farm.add(SwarmOrchestrator(farm, "swarm-1"))

    async def work(task: TaskContext) -> dict[str, Any]:
        return {"n": int(task.payload.get("n", 0)) * 10}

    farm.add(SwarmWorker(farm, "worker-1", work, swarm_id="swarm-1", capabilities="processing"))
    async with farm:
        for b in bidders:
            await b.start()
        await registry_knows(farm, "swarm-1", "worker-1")
        client = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)
        async with client:
            auction = await client.submit_workflow(
                "market_based",
                {"capability": "render", "payload": {"frames": 24}, "bid_window": 0.3},
            )
            swarm = await client.submit_workflow(
                "swarm",
                {
                    "payload": {
                        "tasks": [{"id": "one", "capability": "processing", "payload": {"n": 4}}]
                    }
                },
            )
            won = await finished(cp, tenant, auction)
            job = await finished(cp, tenant, swarm)
        for b in bidders:
            await b.stop()
    assert won["status"] == "completed", won
    assert won["result"]["winner"] == "cheap-1"
    assert won["result"]["result"] == {"frames": 24, "by": "cheap-1"}
    assert job["status"] == "completed", job
    assert job["result"]["result"]["results"]["one"] == {"n": 40}
    (coordinator,) = await children(cp, tenant, swarm, 1)
    assert coordinator["agent_id"] == "swarm-1"
    (step,) = await children(cp, tenant, coordinator["task_id"], 1)
    assert step["agent_id"] == "worker-1"


async def test_a_restarted_host_resumes_workflows_offered_while_it_was_down(
    plane: ControlPlane,
) -> None:
    cp = plane
    tenant = await new_tenant(cp)
    assert cp.workflows is not None
    await cp.workflows.stop()  # no runner, nobody watching for workflow offers
    workers = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)

    @workers.agent("counter-1", capabilities=["count"])
    async def count(task: TaskContext) -> dict[str, Any]:
        return {"n": len(str(task.payload["text"]))}

    data = {"subtasks": [{"capability": "count", "payload": {"text": "abc"}}]}
    async with workers:
        stored = await cp.bus.execute(
            SubmitTask(
                tenant,
                workflow_capability("orchestrator_worker"),
                check_workflow_data("orchestrator_worker", data),
            )
        )
        wf = str(stored.aggregate_id)
        await until(lambda: cp.bus.query(GetTask(tenant, wf)), 20, not_yet=(NotFound,))
        assert (await cp.bus.query(GetTask(tenant, wf)))["status"] == "offered"
        host = cp.workflows = WorkflowHost(cp.mesh, cp.bus)
        assert await host.resume() == [tenant]
        doc = await finished(cp, tenant, wf)
    assert doc["status"] == "completed", doc
    assert doc["result"]["value"] == [{"n": 3}]
