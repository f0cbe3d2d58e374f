"""A deliberately slow agent handler for the anomaly test (``--handler``)."""

from __future__ import annotations

import asyncio
from typing import Any

from agentmesh import TaskContext

DELAY = 3.0


async def handle(task: TaskContext) -> dict[str, Any]:
    """Answer like the echo agent, ``DELAY`` seconds late."""
    await asyncio.sleep(DELAY)
    return {"echo": task.payload, "slow": True}


async def doomed(task: TaskContext) -> dict[str, Any]:
    """Fail for good (ValueError is not retried)."""
    raise ValueError(f"cannot handle {task.task_id}")
