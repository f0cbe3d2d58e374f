"""Wait, bounded, until agents added to a running mesh are serving and heard."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agentmesh.errors import RequestTimeout

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh


async def ready(mesh: Mesh, *agent_ids: str, timeout: float = 10.0) -> None:
    """Until every agent (default: every agent of ``mesh``) has started and the mesh's
    registry heard its heartbeat; :class:`~agentmesh.errors.RequestTimeout` after
    ``timeout`` seconds."""
    wanted = set(agent_ids or mesh.agents)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        started = {a for a in wanted if a in mesh.agents and mesh.agents[a].status != "CREATED"}
        heard = {r.agent_id for r in mesh.registry.agents(mesh.tenant)}
        if wanted <= started and wanted <= heard:
            return
        if loop.time() > deadline:
            missing = sorted(wanted - (started & heard))
            raise RequestTimeout(f"agents {missing} not ready within {timeout:g}s")
        await asyncio.sleep(0.02)
