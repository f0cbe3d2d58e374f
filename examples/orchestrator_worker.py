"""Map-reduce word count: an orchestrator fans chunks out to workers and merges the counts.

python examples/orchestrator_worker.py [URL] [all|workers|client] [suffix]
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from typing import Any

from agentmesh import Mesh, TaskContext
from agentmesh.patterns.orchestrator_worker import Orchestrator

TEXT = [
    "the quick brown fox jumps over the lazy dog the dog sleeps",
    "agents cooperate through events and the broker keeps every task",
    "a worker that dies loses nothing because the task comes back",
]


async def count_words(task: TaskContext) -> dict[str, Any]:
    """Map: count the words of one chunk."""
    return dict(Counter(task.payload["text"].split()))


def merge(counts: list[dict[str, int]]) -> dict[str, int]:
    """Reduce: add the chunk counts up."""
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total.most_common(5))


async def main(url: str, part: str = "all", suffix: str = "1") -> dict[str, int] | None:
    mesh = Mesh(url, tenant=os.environ.get("AGENTMESH_TENANT", "examples"))
    if part in ("all", "workers"):
        for i in range(3):
            mesh.agent(f"counter-{suffix}-{i}", capabilities=["count"])(count_words)
    async with mesh:
        if part == "workers":
            await asyncio.Event().wait()  # serve until stopped
        orch = Orchestrator(mesh, policy="retry", deadline=30)
        out = await orch.fan_out("count", [{"text": line} for line in TEXT], aggregate=merge)
        print(f"{len(out.results)} chunks, complete={out.complete}: top words {out.value}")
        return dict(out.value)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else None
    url = target or os.environ.get("AGENTMESH_TRANSPORT") or os.environ.get("NATS_URL")
    asyncio.run(main(url or "memory://examples", *sys.argv[2:4]))
