"""The demo mesh of ``agentmesh up --demo``: a few agents doing small, visible work."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from agentmesh.envelope import Envelope
from agentmesh.mesh import Mesh
from agentmesh.runtime.context import TaskContext

DEMO_TENANT = "demo"
TEXTS = [
    "Agents cooperate through events. Each one decides which tasks to take.",
    "A durable queue keeps every task until an agent acknowledges its result.",
    "Heartbeats tell the registry who is alive and how busy they are.",
    "The envelope is the same on every broker: six keys of JSON.",
    "When an agent dies, its unacknowledged tasks go to another agent.",
]


async def summarize(task: TaskContext) -> dict[str, Any]:
    text = str(task.payload.get("text", ""))
    await asyncio.sleep(random.uniform(0.2, 0.6))
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return {"summary": first[:60], "words": len(text.split())}


async def translate(task: TaskContext) -> dict[str, Any]:
    text = str(task.payload.get("text", ""))
    await asyncio.sleep(random.uniform(0.1, 0.4))
    pig = " ".join(w[1:] + w[0] + "ay" if w[:1].isalpha() else w for w in text.split()[:6])
    return {"pig_latin": pig}


async def analyze(task: TaskContext) -> dict[str, Any]:
    text = str(task.payload.get("text", "")).lower()
    await asyncio.sleep(random.uniform(0.3, 0.9))
    letters = Counter(c for c in text if c.isalpha())
    return {"top_letters": "".join(c for c, _ in letters.most_common(3)), "chars": len(text)}


class DemoWorkload:
    """Demo agents plus a producer that keeps submitting tasks and records results."""

    def __init__(
        self,
        mesh: Mesh,
        interval: float = 0.6,
        submit: Callable[[str, dict[str, Any]], Awaitable[object]] | None = None,
    ) -> None:
        self.mesh = mesh
        self.submit = submit or mesh.submit
        self.interval = interval
        self.submitted = 0
        self.completed = 0
        self.recent: deque[tuple[str, str, str]] = deque(maxlen=6)
        self._task: asyncio.Task[None] | None = None
        mesh.agent("summarizer-1", capabilities={"summarize": 4}, max_concurrent=2)(summarize)
        mesh.agent("translator-1", capabilities={"translate": 3}, max_concurrent=2)(translate)
        mesh.agent("analyst-1", capabilities={"analyze": 4}, max_concurrent=2)(analyze)
        mesh.agent("analyst-2", capabilities={"analyze": 3}, max_concurrent=2)(analyze)

    async def start(self) -> None:
        await self.mesh.on_event("task.completed", self._on_completed)
        self._task = asyncio.create_task(self._produce())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _produce(self) -> None:
        caps = itertools.cycle(["summarize", "analyze", "translate", "analyze"])
        while True:
            await self.submit(next(caps), {"text": random.choice(TEXTS)})
            self.submitted += 1
            await asyncio.sleep(self.interval)

    async def _on_completed(self, env: Envelope) -> None:
        self.completed += 1
        p = env.payload
        result = p.get("result") or {}
        shown = ", ".join(f"{k}={v}" for k, v in result.items())[:70]
        self.recent.appendleft((str(p.get("agent_id")), str(p.get("capability")), shown))
