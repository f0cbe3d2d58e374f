"""Running a submitted ``workflow_type``: the workflow runner and its host in the plane.

A task on ``workflow-<type>`` (see :mod:`agentmesh.domain.workflows`) is taken by the
tenant's :class:`WorkflowRunner`, an agent that runs the pattern with the task's payload
and returns the workflow's result as the task's result:

* ``orchestrator_worker``: :class:`~agentmesh.patterns.orchestrator_worker.Orchestrator`
  fans the subtasks out and aggregates (``value``: the completed results in order);
* ``hierarchical``: one command to the root node (an agent with the role capability),
  which delegates down its tree; the result is the root's;
* ``market``: an :class:`~agentmesh.patterns.market.Auctioneer` auction; the result is
  the winner's delivery, its price and the bids;
* ``swarm``: one job for the swarm's coordinators; the result is the job's.

Everything the runner submits is a recorded task whose ``parent_task_id`` is the workflow
task (the runtime names the running task; see
:func:`agentmesh.runtime.context.current_task_id`), and the patterns' own subtasks name
theirs: ``GET /v1/tenants/{t}/tasks?parent_task_id=<id>`` walks the tree.

:class:`WorkflowHost` (started by the control plane) starts a tenant's runner the first
time a workflow task of that tenant is offered on the bus; the task waits in its durable
queue meanwhile. A runner runs until the plane stops.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.commands import CqrsBus, ListTasks, ListTenants
from agentmesh.domain.workflows import (
    WORKFLOW_TYPES,
    check_workflow_data,
    workflow_capability,
    workflow_of,
)
from agentmesh.errors import AgentMeshError, OrchestrationFailed
from agentmesh.patterns.market import Auctioneer
from agentmesh.patterns.orchestrator_worker import Orchestrator, Subtask
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.transports import Message, SubscribeOptions, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

RUNNER_ID = "workflow-runner"
UNFINISHED = ("offered", "assigned", "running", "retrying", "submitted")


class WorkflowRunner(AgentRuntime):
    """The agent that runs a tenant's workflow tasks (module doc)."""

    def __init__(self, mesh: Mesh, agent_id: str = RUNNER_ID, max_concurrent: int = 32) -> None:
        super().__init__(
            mesh,
            agent_id,
            self._run,
            capabilities=[workflow_capability(t) for t in WORKFLOW_TYPES],
            max_concurrent=max_concurrent,
            description="runs submitted workflow types",
        )

    async def _run(self, task: TaskContext) -> Any:
        kind = workflow_of(task.capability)
        if kind is None:
            raise AgentMeshError(f"{task.capability!r} is not a workflow capability")
        data = check_workflow_data(kind, {k: v for k, v in task.payload.items() if k != "task_id"})
        if kind == "orchestrator_worker":
            return await self._orchestrate(task, data)
        if kind == "market":
            auctioneer = Auctioneer(self.mesh, bid_window=data["bid_window"], name=self.agent_id)
            won = await auctioneer.auction(
                data["capability"],
                data["payload"],
                auction_id=task.task_id,
                max_price=data.get("max_price"),
            )
            return {
                "result": won.result,
                "winner": won.winner,
                "price": won.price,
                "bids": len(won.bids),
                "auction_id": won.auction_id,
            }
        # hierarchical and swarm: one command to the root node / the coordinators
        one = {"subtasks": [{"capability": data["capability"], "payload": data["payload"]}]}
        out = await self._orchestrate(
            task, {**one, "policy": "fail_fast", "retries": 0, "deadline": data["deadline"]}
        )
        return {"result": out["value"][0], "agent_id": out["subtasks"][0]["agent_id"]}

    async def _orchestrate(self, task: TaskContext, data: dict[str, Any]) -> dict[str, Any]:
        orch = Orchestrator(
            self.mesh, policy=data["policy"], retries=data["retries"], deadline=data["deadline"]
        )
        subtasks = [Subtask(s["capability"], s["payload"]) for s in data["subtasks"]]
        try:
            out = await orch.run(subtasks, run_id=task.task_id)
        except OrchestrationFailed as exc:
            raise AgentMeshError(f"workflow {task.task_id} failed: {exc}") from None
        return out.to_dict()


def tenant_view(mesh: Mesh, tenant: str) -> Mesh:
    """A mesh of ``tenant`` on ``mesh``'s connection, registry, ledger and safety guard
    (never started or stopped itself: ``mesh`` owns the connection)."""
    from agentmesh.mesh import Mesh

    view = Mesh(mesh.transport, tenant=tenant, settings=mesh.settings)
    view.registry, view.ledger, view.safety = mesh.registry, mesh.ledger, mesh.safety
    view._started = True
    return view


class WorkflowHost:
    """Starts a tenant's :class:`WorkflowRunner` when its first workflow task is offered,
    and at start for every tenant whose store shows unfinished workflow tasks (offered or
    run while no plane was up)."""

    def __init__(self, mesh: Mesh, bus: CqrsBus | None = None) -> None:
        self.mesh = mesh
        self.bus = bus
        self.runners: dict[str, WorkflowRunner] = {}
        self._subs: list[Subscription] = []
        self._lock = asyncio.Lock()
        self._resume: asyncio.Task[list[str]] | None = None

    async def start(self) -> None:
        opts = SubscribeOptions(max_in_flight=16, dead_letter=False)
        for kind in WORKFLOW_TYPES:
            pattern = subjects.capability_offers(workflow_capability(kind))
            self._subs.append(
                await self.mesh.transport.subscribe(pattern, self._seen, options=opts)
            )
        if self.bus is not None:  # in the background: startup does not wait on the store
            self._resume = asyncio.create_task(self._resume_logged())

    async def _resume_logged(self) -> list[str]:
        try:
            return await self.resume()
        except AgentMeshError as exc:  # the next workflow offer starts the runner anyway
            logger.warning("workflow runners not resumed from the store: {}", exc)
            return []

    async def resume(self) -> list[str]:
        """Start the runners of tenants with unfinished workflow tasks in the store (the
        first 1000 tenants, 1000 tasks per status); the tenants resumed."""
        assert self.bus is not None
        resumed = []
        for tenant in await self.bus.query(ListTenants()):
            tenant_id = str(tenant["id"])
            for status in UNFINISHED:
                page = await self.bus.query(ListTasks(tenant_id, status=status, limit=1000))
                if any(workflow_of(t["required_capabilities"][0]) for t in page.items):
                    await self.ensure(tenant_id)
                    resumed.append(tenant_id)
                    break
        return resumed

    async def _seen(self, msg: Message) -> None:
        try:
            await self.ensure(msg.envelope.tenant_id)
        except AgentMeshError as exc:
            logger.warning("workflow runner for {} not started: {}", msg.envelope.tenant_id, exc)

    async def ensure(self, tenant: str) -> WorkflowRunner:
        """The tenant's runner, started on first use."""
        async with self._lock:
            runner = self.runners.get(tenant)
            if runner is None:
                runner = WorkflowRunner(tenant_view(self.mesh, tenant))
                await runner.start()
                self.runners[tenant] = runner
            return runner

    async def stop(self) -> None:
        if self._resume is not None:
            await stop_task(self._resume)
            self._resume = None
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()
        runners, self.runners = list(self.runners.values()), {}
        for runner in runners:
            try:
                await runner.stop()
            except Exception as exc:  # noqa: BLE001 - one runner must not keep the others running
                logger.warning("workflow runner {} did not stop cleanly: {}", runner, exc)
