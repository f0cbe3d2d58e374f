"""``agentmesh agent start-*``: the seed's agent kinds as processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from loguru import logger

from agentmesh.cli.output import console, fail
from agentmesh.cli.serving import run_or_fail

CapabilitiesOpt = Annotated[
    list[str],
    typer.Option(
        "--capabilities",
        "-c",
        help="Capabilities, comma- or space-separated; 'name:level' sets a level 1-5.",
    ),
]
TenantOpt = Annotated[str | None, typer.Option(help="Tenant (default AGENTMESH_TENANT).")]


def _prepare(agent_id: str, capabilities: list[str]) -> tuple[Any, dict[str, int]]:
    from agentmesh.cli.main import load_settings
    from agentmesh.errors import ValidationError
    from agentmesh.runtime.capabilities import parse_capabilities, validate_agent_id

    try:
        validate_agent_id(agent_id)
        caps = parse_capabilities(capabilities)
    except ValidationError as exc:
        fail(exc.message)
    return load_settings(), caps


def _serve(
    settings: Any,
    tenant: str | None,
    build: Callable[[Any], Any],
    what: str,
    cleanup: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run a mesh with the agent(s) ``build(mesh)`` adds until SIGINT/SIGTERM
    (then ``cleanup()``, on the same event loop)."""
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.shutdown import stop_on_signals

    async def main() -> None:
        mesh = Mesh(settings=settings, tenant=tenant)
        build(mesh)
        stop = stop_on_signals(asyncio.get_running_loop())
        await mesh.start()  # with the registry: these kinds pick agents by liveness
        logger.info("{} running on {}; Ctrl-C to stop", what, mesh.transport.url)
        try:
            await stop.wait()
        finally:
            await mesh.stop()
            if cleanup is not None:
                await cleanup()

    run_or_fail(main())


def register_agent_kinds(agent_app: typer.Typer) -> None:
    """Add ``start-task-executor``, ``start-orchestrator``, ``start-swarm-orchestrator``,
    ``start-swarm-worker`` and ``start-autonomous-agent`` to ``agentmesh agent``."""

    @agent_app.command("start-task-executor")
    def start_task_executor(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        tenant: TenantOpt = None,
        max_concurrent: Annotated[int, typer.Option(min=1, max=1000)] = 8,
    ) -> None:
        """Start a TaskExecutorAgent (operations: echo, sum, word_count, uppercase, sleep)."""
        from agentmesh.agents.kinds import task_executor

        settings, caps = _prepare(agent_id, capabilities)
        _serve(
            settings,
            tenant,
            lambda m: task_executor(m, agent_id, capabilities=caps, max_concurrent=max_concurrent),
            f"task executor {agent_id}",
        )

    @agent_app.command("start-orchestrator")
    def start_orchestrator(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        tenant_id: Annotated[str, typer.Option("--tenant-id", help="Tenant of the task.")],
        target_agent_id: Annotated[
            str, typer.Option("--target-agent-id", help="Agent that gets the task.")
        ],
        task_details: Annotated[
            str, typer.Option("--task-details", help="The task as a JSON object.")
        ],
        wait: Annotated[
            float, typer.Option(help="Seconds to wait for the result (0: send and exit).")
        ] = 0.0,
    ) -> None:
        """Send one TaskAssigned to --target-agent-id and exit (or wait for its result)."""
        from agentmesh.agents.kinds import assign_task
        from agentmesh.errors import AgentMeshError
        from agentmesh.mesh import Mesh
        from agentmesh.runtime.capabilities import validate_agent_id

        settings, _ = _prepare(agent_id, capabilities)
        try:
            details = json.loads(task_details)
        except json.JSONDecodeError:
            fail("Invalid JSON for --task-details")
        if not isinstance(details, dict):
            fail("Invalid JSON for --task-details: expected an object")
        try:
            validate_agent_id(target_agent_id)
        except AgentMeshError as exc:
            fail(exc.message)

        async def main() -> None:
            mesh = Mesh(settings=settings, tenant=tenant_id)
            await mesh.start(registry=False)
            try:
                task_id = await assign_task(mesh, agent_id, target_agent_id, details)
                console.print(f"TaskAssigned {task_id} -> {target_agent_id}")
                if wait > 0:
                    result = await mesh.wait_result(task_id, timeout=wait)
                    console.print_json(json.dumps(result, default=str))
            finally:
                await mesh.stop()

        try:
            asyncio.run(main())
        except (AgentMeshError, TimeoutError) as exc:
            fail(str(exc) or "no result in time")

    @agent_app.command("start-swarm-orchestrator")
    def start_swarm_orchestrator(
        agent_id: Annotated[str, typer.Argument(help="Agent id (also the swarm id).")],
        capabilities: CapabilitiesOpt,
        tenant: TenantOpt = None,
        swarm_id: Annotated[
            str | None, typer.Option(help="Swarm to coordinate (default: the agent id).")
        ] = None,
    ) -> None:
        """Start a SwarmOrchestrator: leads (or stands by for) a swarm; takes DAG jobs."""
        from agentmesh.patterns.swarm import SwarmOrchestrator

        settings, caps = _prepare(agent_id, capabilities)
        _serve(
            settings,
            tenant,
            lambda m: m.add(SwarmOrchestrator(m, agent_id, capabilities=caps, swarm_id=swarm_id)),
            f"swarm orchestrator {agent_id}",
        )

    @agent_app.command("start-swarm-worker")
    def start_swarm_worker(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        swarm_orchestrator_id: Annotated[
            str, typer.Option("--swarm-orchestrator-id", help="The swarm to join.")
        ] = "swarm_orchestrator",
        tenant: TenantOpt = None,
        role: Annotated[str, typer.Option(help="worker or specialist.")] = "worker",
        handler: Annotated[
            str | None, typer.Option(help="Async handler 'module:function' (default: operations).")
        ] = None,
    ) -> None:
        """Start a SwarmWorkerAgent that joins the swarm of --swarm-orchestrator-id."""
        from agentmesh.agents.kinds import execute_operation
        from agentmesh.cli.main import _load_handler
        from agentmesh.errors import AgentMeshError
        from agentmesh.patterns.swarm import SwarmWorker

        settings, caps = _prepare(agent_id, capabilities)
        fn = _load_handler(handler) if handler else execute_operation
        if not asyncio.iscoroutinefunction(fn):
            fail(f"handler {handler!r} must be an async function")
        try:
            worker = lambda m: m.add(  # noqa: E731
                SwarmWorker(
                    m, agent_id, fn, swarm_id=swarm_orchestrator_id, capabilities=caps, role=role
                )
            )
            _serve(settings, tenant, worker, f"swarm worker {agent_id} of {swarm_orchestrator_id}")
        except AgentMeshError as exc:
            fail(exc.message)

    @agent_app.command("start-autonomous-agent")
    def start_autonomous_agent(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        tenant: TenantOpt = None,
        accept_threshold: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.6,
        max_concurrent: Annotated[int, typer.Option(min=1, max=1000)] = 5,
    ) -> None:
        """Start an AutonomousAgent: takes only the tasks its autonomy score accepts."""
        from agentmesh.agents.autonomous import autonomous_agent
        from agentmesh.agents.kinds import execute_operation

        settings, caps = _prepare(agent_id, capabilities)
        _serve(
            settings,
            tenant,
            lambda m: autonomous_agent(
                m,
                agent_id,
                execute_operation,
                capabilities=caps,
                accept_threshold=accept_threshold,
                max_concurrent=max_concurrent,
            ),
            f"autonomous agent {agent_id}",
        )
