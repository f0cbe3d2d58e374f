"""Handlers that the process-level tests load with ``agentmesh agent start --handler``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agentmesh import TaskContext


async def crunch(task: TaskContext) -> dict[str, Any]:
    """Normal work; with HANG=1 in the environment the agent takes tasks and never finishes."""
    if os.environ.get("HANG") == "1":
        await asyncio.Event().wait()
    await asyncio.sleep(float(task.payload.get("sleep", 0.05)))
    return {"n": task.payload.get("n"), "pid": os.getpid(), "attempt": task.attempt}
