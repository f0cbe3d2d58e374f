"""A handler for agent processes of the real-run tests (``--handler``): the payload says
what to do."""

from __future__ import annotations

import asyncio
from typing import Any

from agentmesh import TaskContext


async def work(task: TaskContext) -> dict[str, Any]:
    """``mode``: ``fail`` always raises, ``flaky`` fails its first attempt, ``slow``
    sleeps ``seconds``; anything else succeeds."""
    mode = task.payload.get("mode")
    if mode == "fail":
        raise RuntimeError("asked to fail")
    if mode == "flaky" and task.attempt == 1:
        raise RuntimeError("first attempt fails")
    if mode == "slow":
        await asyncio.sleep(float(task.payload.get("seconds", 30)))
    return {"ok": True, "attempt": task.attempt}
