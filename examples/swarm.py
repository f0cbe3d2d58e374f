"""A DAG build run by a swarm: a leader schedules compile -> link -> test steps on workers
as their dependencies finish; a standby coordinator takes over if the leader dies.

    python examples/swarm.py [URL] [all|workers|client] [suffix]
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from agentmesh import Mesh, TaskContext
from agentmesh.patterns.swarm import SwarmOrchestrator, SwarmWorker

BUILD = {
    "tasks": [
        {"id": "compile-core", "capability": "compile", "payload": {"unit": "core"}},
        {"id": "compile-cli", "capability": "compile", "payload": {"unit": "cli"}},
        {
            "id": "link",
            "capability": "link",
            "payload": {"step": "link"},
            "depends_on": ["compile-core", "compile-cli"],
        },
        {"id": "test", "capability": "test", "payload": {"step": "test"}, "depends_on": ["link"]},
    ]
}


async def build_step(task: TaskContext) -> dict[str, Any]:
    worker = task.agent
    assert isinstance(worker, SwarmWorker)
    if "unit" in task.payload:  # compile: share the object file with the swarm
        unit = task.payload["unit"]
        await worker.share_knowledge(f"obj-{unit}", f"{unit}.o")
        return {"artifact": f"{unit}.o", "by": worker.agent_id}
    if task.payload.get("step") == "link":
        objects = [await worker.knowledge(f"obj-{u}") for u in ("core", "cli")]
        return {"artifact": "app", "from": objects, "by": worker.agent_id}
    return {"passed": True, "by": worker.agent_id}


async def main(url: str, part: str = "all", suffix: str = "1") -> dict[str, Any] | None:
    mesh = Mesh(url, tenant=os.environ.get("AGENTMESH_TENANT", "examples"))
    if part in ("all", "workers"):
        mesh.add(SwarmOrchestrator(mesh, f"coord-{suffix}", swarm_id="build", capabilities="build"))
        for caps in ("compile", "link", "test"):
            worker = SwarmWorker(
                mesh, f"{caps}-worker-{suffix}", build_step, swarm_id="build", capabilities=caps
            )
            mesh.add(worker)
    async with mesh:
        if part == "workers":
            await asyncio.Event().wait()
        job = await mesh.submit("build", BUILD)
        out = await mesh.wait_result(job, timeout=60)
        print("built:", ", ".join(f"{k} by {v['by']}" for k, v in out["results"].items()))
        return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else None
    url = target or os.environ.get("AGENTMESH_TRANSPORT") or os.environ.get("NATS_URL")
    asyncio.run(main(url or "memory://examples", *sys.argv[2:4]))
