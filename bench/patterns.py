"""Orchestrator-worker fan-out vs the plain task path, same NATS server, same run.

Ours: one Orchestrator fans 1,000 subtasks out over 8 workers and aggregates them
(assignment tracking, outcome matching, policy). Baseline: the same 1,000 tasks through
``mesh.submit`` + counting ``task.completed`` events. Overhead per subtask = the
difference in wall time divided by the subtask count.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentmesh import Envelope, Mesh, TaskContext
from agentmesh.config import Settings
from agentmesh.patterns.orchestrator_worker import Orchestrator
from agentmesh.runtime.embedded import EmbeddedNats
from bench.core import entry

N = 1_000
WORKERS = 8


async def _work(task: TaskContext) -> dict[str, Any]:
    return {"n": task.payload["n"]}


async def _meshes(url: str, tmp: Path) -> tuple[Mesh, Mesh]:
    tenant = "bp" + uuid.uuid4().hex[:6]
    settings = Settings(agentmesh_data_dir=tmp)  # type: ignore[call-arg]
    workers = Mesh(url, tenant=tenant, settings=settings)
    for i in range(WORKERS):
        workers.agent(f"w-{i}", capabilities=["work"], max_concurrent=32)(_work)
    client = Mesh(url, tenant=tenant, settings=settings)
    await workers.start(registry=False)
    await client.start()
    await asyncio.sleep(0.3)
    return workers, client


async def plain(url: str, tmp: Path) -> float:
    workers, client = await _meshes(url, tmp)
    done, count, ids = asyncio.Event(), [0], set()

    async def on_done(env: Envelope) -> None:
        if env.payload.get("task_id") in ids:
            count[0] += 1
            if count[0] == N:
                done.set()

    await client.on_event("task.completed", on_done)
    start = time.perf_counter()
    for chunk in range(0, N, 250):
        batch = [str(uuid.uuid4()) for _ in range(chunk, min(chunk + 250, N))]
        ids.update(batch)
        await asyncio.gather(
            *(client.submit("work", {"n": i}, task_id=t) for i, t in enumerate(batch))
        )
    await asyncio.wait_for(done.wait(), 50)
    elapsed = time.perf_counter() - start
    await client.stop()
    await workers.stop()
    return elapsed


async def fan_out(url: str, tmp: Path) -> float:
    workers, client = await _meshes(url, tmp)
    orch = Orchestrator(client, deadline=50)
    start = time.perf_counter()
    out = await orch.fan_out("work", [{"n": i} for i in range(N)], aggregate=len)
    elapsed = time.perf_counter() - start
    if not out.complete or out.value != N:
        raise RuntimeError(f"fan-out incomplete: {out.value} of {N}")
    await client.stop()
    await workers.stop()
    return elapsed


async def run() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as d:
        server = EmbeddedNats(Path(d) / "nats", port=None)
        url = server.start()
        try:
            base = await plain(url, Path(d))
            ours = await fan_out(url, Path(d))
        finally:
            server.stop()
    return {
        "patterns_fanout_1000x8_subtasks_per_s": entry(N / ours, "subtasks/s", N / base),
        "patterns_fanout_overhead_per_subtask": entry(
            max(ours - base, 0.0) / N * 1e6, "us/subtask", None
        ),
    }


if __name__ == "__main__":
    print(asyncio.run(run()))
