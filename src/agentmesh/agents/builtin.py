"""Handlers that ``agentmesh agent start`` runs when no ``--handler`` is given."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from agentmesh.runtime.context import TaskContext


async def echo(task: TaskContext) -> dict[str, Any]:
    """The SimpleAgent: returns its input; ``{"sleep": s}`` (<= 300 s) simulates long work."""
    delay = task.payload.get("sleep")
    if isinstance(delay, int | float) and 0 < delay <= 300:
        remaining = float(delay)
        while remaining > 0:  # keep the broker informed so a long task is not redelivered
            step = min(remaining, 5.0)
            await asyncio.sleep(step)
            remaining -= step
            if remaining > 0:
                await task.progress()
    return {
        "echo": task.payload,
        "agent_id": task.agent.agent_id,
        "pid": os.getpid(),
        "attempt": task.attempt,
        "handled_at": datetime.now(UTC).isoformat(),
    }
