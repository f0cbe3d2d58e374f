"""Handlers the chaos scenarios run in real agent processes (``--handler``).

Each writes a raw line per start and per end of a run to ``$CHAOS_LOG`` (one small
``O_APPEND`` write: atomic across processes): ``<start|done> <task_id> <pid> <time>``.
Nothing is idempotent here, so the log counts every execution.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from agentmesh import TaskContext


def log(event: str, task_id: str) -> None:
    fd = os.open(os.environ["CHAOS_LOG"], os.O_APPEND | os.O_CREAT | os.O_WRONLY)
    try:
        os.write(fd, f"{event} {task_id} {os.getpid()} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)


async def counted(task: TaskContext) -> dict[str, Any]:
    """Sleep ``payload.sleep`` seconds between a raw start and a raw done line."""
    log("start", task.task_id)
    await asyncio.sleep(float(task.payload.get("sleep", 0.01)))
    log("done", task.task_id)
    return {"n": task.payload.get("n")}


def read(path: str) -> list[tuple[str, str, int, float]]:
    """The log's lines as ``(event, task_id, pid, time)``."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 4:
                out.append((parts[0], parts[1], int(parts[2]), float(parts[3])))
    return out
