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


async def side_effect(task: TaskContext) -> dict[str, Any]:
    """Work with an external side effect: one file per task id (idempotent) plus a raw log."""
    await asyncio.sleep(float(task.payload.get("sleep", 0.01)))
    out = os.environ["SIDE_EFFECT_DIR"]
    fd = os.open(os.path.join(out, "executions.log"), os.O_APPEND | os.O_CREAT | os.O_WRONLY)
    os.write(fd, f"{task.task_id} {os.getpid()}\n".encode())  # one small append: atomic
    os.close(fd)
    try:
        fd = os.open(os.path.join(out, "done", task.task_id), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
    except FileExistsError:
        pass
    return {"n": task.payload.get("n")}


_leaked: list[Any] = []


async def leak_connection(task: TaskContext) -> dict[str, Any]:
    """Opens an aiosqlite connection and never closes it (its worker thread is not a
    daemon): the process must still exit promptly on SIGTERM."""
    import aiosqlite

    _leaked.append(await aiosqlite.connect(os.path.join(os.environ["LEAK_DIR"], "leak.db")))
    return {"leaked": len(_leaked)}
