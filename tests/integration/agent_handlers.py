"""Handlers that the process-level tests load with ``agentmesh agent start --handler``."""

from __future__ import annotations

import asyncio
import os
import time
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


async def safety_work(task: TaskContext) -> dict[str, Any]:
    """Work for the safety acceptance test. Each call is logged (``<time> <agent> <task>``)
    to ``$SAFETY_LOG``; while the file ``$LEAK_FLAG`` exists the result leaks an e-mail
    address (PII) on even calls and forbidden content on odd ones."""
    agent = task.agent.agent_id
    fd = os.open(os.environ["SAFETY_LOG"], os.O_APPEND | os.O_CREAT | os.O_WRONLY)
    os.write(fd, f"{time.time():.6f} {agent} {task.task_id}\n".encode())
    os.close(fd)
    await asyncio.sleep(0.005)
    flag = os.environ.get("LEAK_FLAG")
    if flag and os.path.exists(flag):  # noqa: ASYNC240 (a stat, on a local file)
        _calls.append(1)
        if len(_calls) % 2:
            return {"by": agent, "text": f"reach me at jane.{len(_calls)}@example.com"}
        return {"by": agent, "text": "FORBIDDEN-CONTENT inside"}
    return {"by": agent, "n": task.payload.get("n")}


_calls: list[int] = []
