"""Pool handlers run by the decentralized agent processes of the tests."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agentmesh.runtime.context import TaskContext


async def square(task: TaskContext) -> dict[str, Any]:
    """``{"n": int}`` -> ``{"square": n * n}`` after a few ms of 'work'."""
    await asyncio.sleep(float(task.payload.get("sleep", 0.005)))
    n = int(task.payload["n"])
    return {"square": n * n, "pid": os.getpid()}
