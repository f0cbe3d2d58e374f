"""The processes of test_worker_kill: a worker handler and an orchestrator entry point.

Workers run ``agentmesh agent start --handler tests.e2e.patterns.worker_kill_agents:record``;
the orchestrator runs ``python -m tests.e2e.patterns.worker_kill_agents URL TENANT N MODE OUT``
(MODE ``queue`` or ``routed``) and writes the :class:`OrchestrationResult` (with the
aggregate) to ``OUT`` as JSON, once every worker is known to its registry.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from agentmesh import Mesh, TaskContext
from agentmesh.patterns.orchestrator_worker import Orchestrator, Subtask
from tests.helpers import eventually

CAPABILITY = "crunch"
WORKERS = 3


def _log(line: str) -> None:
    path = os.path.join(os.environ["SIDE_EFFECT_DIR"], f"{os.getpid()}.log")
    fd = os.open(path, os.O_APPEND | os.O_CREAT | os.O_WRONLY)
    try:
        os.write(fd, f"{line}\n".encode())  # one small O_APPEND write: never torn
    finally:
        os.close(fd)


async def record(task: TaskContext) -> dict[str, Any]:
    """A subtask with a side effect: ``start``/``end`` lines in this process's log."""
    n = int(task.payload["n"])
    _log(f"start {n} {task.task_id}")
    await asyncio.sleep(float(task.payload.get("sleep", 0.02)))
    _log(f"end {n} {task.task_id}")
    return {"n": n, "pid": os.getpid()}


async def orchestrate(url: str, tenant: str, count: int, mode: str) -> dict[str, Any]:
    """Fan ``count`` subtasks out to the ``crunch`` workers; the aggregate lists every result."""
    async with Mesh(url, tenant=tenant) as mesh:
        # every worker known first (routed mode picks among the live ones)
        await eventually(
            lambda: len(mesh.registry.agents(tenant, capability=CAPABILITY)) >= WORKERS,
            timeout=15,
            interval=0.05,
        )
        orch = Orchestrator(mesh, policy="retry", deadline=20, routed=mode == "routed")
        result = await orch.run(
            [Subtask(CAPABILITY, {"n": n}) for n in range(count)], aggregate=list
        )
        return result.to_dict()


if __name__ == "__main__":
    url, tenant, count, mode, out = sys.argv[1:6]
    Path(out).write_text(json.dumps(asyncio.run(orchestrate(url, tenant, int(count), mode))))
