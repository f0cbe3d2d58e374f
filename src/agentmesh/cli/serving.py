"""Shared bodies of the long-running CLI commands: run one, serve until a signal, and the
platform's own transport."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from loguru import logger

from agentmesh.cli.output import fail
from agentmesh.errors import AgentMeshError

if TYPE_CHECKING:
    from agentmesh.config import Settings
    from agentmesh.mesh import Mesh
    from agentmesh.transports import Transport

__all__ = ["platform_transport", "run_or_fail", "serve_until_signalled"]


T = TypeVar("T")


def run_or_fail(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body and return its result; an :class:`AgentMeshError`
    becomes one error line and exit status 1."""
    try:
        return asyncio.run(main)
    except AgentMeshError as exc:
        fail(exc.message)


async def serve_until_signalled(mesh: Mesh, started: str, *args: object) -> None:
    """Start ``mesh`` (without the registry), log ``started`` (a loguru format with
    ``args``), serve until SIGINT or SIGTERM, then stop the mesh."""
    from agentmesh.runtime.shutdown import stop_on_signals

    stop = stop_on_signals(asyncio.get_running_loop())
    await mesh.start(registry=False)
    logger.info(started, *args)
    try:
        await stop.wait()
    finally:
        await mesh.stop()


def platform_transport(config: Settings) -> Transport:
    """An unconnected transport to the configured broker, with the platform's own bus
    credentials."""
    from agentmesh.security.bus_credentials import platform_token
    from agentmesh.transports import create_transport

    return create_transport(
        config.effective_transport_url(),
        connect_timeout=config.agentmesh_connect_timeout,
        token=platform_token(config),
    )
