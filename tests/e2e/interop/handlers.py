"""Agent handlers for the interop end-to-end tests (``--handler``)."""

from __future__ import annotations

import asyncio
from typing import Any

from agentmesh import TaskContext


async def stuck(task: TaskContext) -> dict[str, Any]:
    """Works for a minute: long enough to be cancelled."""
    await asyncio.sleep(60)
    return {"finished": task.task_id}
