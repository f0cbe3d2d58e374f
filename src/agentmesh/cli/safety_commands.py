"""``agentmesh agent start-safety-agent`` and ``agentmesh agent release``."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer
from loguru import logger

from agentmesh.cli.agent_kinds import CapabilitiesOpt, TenantOpt, _prepare
from agentmesh.cli.output import fail
from agentmesh.cli.serving import platform_transport, run_or_fail
from agentmesh.cli.target import Target, settings, with_target


def register(agent_app: typer.Typer) -> None:
    """Add ``start-safety-agent`` and ``release`` to the ``agent`` group."""
    agent_app.command("start-safety-agent")(start_safety_agent)
    agent_app.command("release")(agent_release)


def start_safety_agent(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    capabilities: CapabilitiesOpt,
    agent_type: Annotated[
        str, typer.Option(help="Agent type (the safety policy's lists use it).")
    ] = "general",
    tenant: TenantOpt = None,
    max_concurrent: Annotated[int, typer.Option(min=1, max=1000)] = 8,
) -> None:
    """Start a SafetyAwareAgent: vets tasks submitted with require_vetting and answers
    safety_status_request / alignment_check."""
    from agentmesh.agents.safety import SafetyAgent
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.shutdown import stop_on_signals

    config, caps = _prepare(agent_id, capabilities)

    async def main() -> None:
        mesh = Mesh(settings=config, tenant=tenant)
        agent = SafetyAgent(
            mesh, agent_id, capabilities=caps, agent_type=agent_type, max_concurrent=max_concurrent
        )
        stop = stop_on_signals(asyncio.get_running_loop())
        await mesh.start(registry=False)
        try:
            await agent.start()
            logger.info(
                "safety agent {} running on {}; Ctrl-C to stop", agent_id, mesh.transport.url
            )
            await stop.wait()
        finally:
            await agent.stop()
            await mesh.stop()

    run_or_fail(main())


@with_target
def agent_release(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    target: Target,
    reason: Annotated[str, typer.Option(help="Why the quarantine is lifted (recorded).")],
) -> None:
    """Release a QUARANTINED agent (admins): recorded with who and why; the agent's
    process takes work again."""
    if not reason.strip():
        fail("--reason must not be empty")
    target.change("agent", agent_id, "release", reason)
    if target.api_url is None:  # the control plane broadcasts itself; locally we do
        asyncio.run(_tell_runtimes(target.tenant, agent_id, reason))


async def _tell_runtimes(tenant: str, agent_id: str, reason: str) -> None:
    from agentmesh.errors import AgentMeshError
    from agentmesh.safety import broadcast

    transport = platform_transport(settings())
    try:
        await transport.connect()
        await broadcast.release(transport, tenant, agent_id, f"cli:{_user()}", reason)
    except AgentMeshError as exc:
        logger.warning("released in the store; the broker was not told: {}", exc)
    finally:
        await transport.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
