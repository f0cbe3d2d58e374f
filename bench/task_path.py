"""The task path the benchmarks share: submit -> four no-op agents -> ``task.completed``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentmesh import Envelope, Mesh, TaskContext
from agentmesh.config import Settings

AGENTS = 4
MAX_CONCURRENT = 64
DEADLINE = 120.0


async def _noop(task: TaskContext) -> dict[str, Any]:
    return {"ok": True}


async def noop_task_rate(
    url: str,
    tenant: str,
    n: int,
    data_dir: Path,
    *,
    clock: Callable[[], float],
    batch: int | None = None,
    bus_token: str | None = None,
    after_stop: Callable[[], object] | None = None,
) -> float:
    """Tasks per ``clock`` second: ``n`` tasks submitted (``batch`` at a time, else all at
    once) to four no-op agents on ``url``, timed until the last ``task.completed`` arrives.

    The clock stops at the last completion; with ``after_stop`` it runs on through the
    mesh's stop and ``after_stop`` (work the tasks caused that lands there, such as a
    trace flush). Bounded: RuntimeError if not every task completes within 120 s.
    """
    settings = Settings(agentmesh_data_dir=data_dir)  # type: ignore[call-arg]
    mesh = Mesh(url, tenant=tenant, settings=settings, bus_token=bus_token)
    for i in range(AGENTS):
        mesh.agent(f"bench-{i}", capabilities=["noop"], max_concurrent=MAX_CONCURRENT)(_noop)
    await mesh.start(registry=False)
    done = asyncio.Event()
    count = [0]

    async def on_done(env: Envelope) -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    await mesh.on_event("task.completed", on_done)
    start = clock()
    step = batch or n
    for first in range(0, n, step):
        await asyncio.gather(
            *(mesh.submit("noop", {"i": i}) for i in range(first, min(first + step, n)))
        )
    try:
        await asyncio.wait_for(done.wait(), DEADLINE)
    except TimeoutError:
        raise RuntimeError(f"only {count[0]} of {n} tasks completed") from None
    if after_stop is None:
        elapsed = clock() - start
        await mesh.stop()
        return n / elapsed
    await mesh.stop()
    after_stop()
    return n / (clock() - start)
