"""Safety on the task path (issue 14): the checker's cost and the path with and without it.

* ``safety_check_1kib_p50``: one task's checks with the default policy (the offer before
  the handler + the result before the outcome) on a 1 KiB payload, p50 in microseconds;
  the baseline is an orjson encode+decode of the same payload (what the path pays anyway
  to read a task). Budget: <= 50 us.
* ``safety_task_path_1kib``: submit -> agent -> durable result -> ack on NATS JetStream
  with 1 KiB payloads, default policy vs the same path with ``AGENTMESH_SAFETY=false``,
  interleaved rounds, the median of the per-round ratios (>= 0.8 required).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from agentmesh import Envelope, Mesh, TaskContext
from agentmesh.config import Settings
from agentmesh.runtime.embedded import EmbeddedNats
from agentmesh.safety import DEFAULT_POLICY, SafetyChecker
from bench.core import entry

Result = dict[str, dict[str, Any]]
TEXT = "The quick brown fox jumps over the lazy dog. Agents cooperate through events. "
PAYLOAD_1K: dict[str, Any] = {
    "text": (TEXT * 12)[:900],
    "lang": "en",
    "n": 42,
    "tags": ["news", "summary", "en"],
    "options": {"max_words": 50, "style": "plain"},
}
CONTEXT = {
    "correlation_id": str(uuid.uuid4()),
    "causation_id": str(uuid.uuid4()),
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
}
RESULT = {"summary": PAYLOAD_1K["text"][:200], "words": 40}


def bench_checker(n: int = 20_000) -> Result:
    assert 900 <= len(orjson.dumps(PAYLOAD_1K)) <= 1100
    checker = SafetyChecker(DEFAULT_POLICY)
    samples = []
    for _ in range(n):
        s = time.perf_counter()
        checker.check_offer(PAYLOAD_1K, CONTEXT, capability="summarize")
        checker.check_result(RESULT)
        samples.append(time.perf_counter() - s)
    base = []
    for _ in range(n):
        s = time.perf_counter()
        orjson.loads(orjson.dumps(PAYLOAD_1K))
        base.append(time.perf_counter() - s)
    return {
        "safety_check_1kib_p50": entry(
            statistics.median(samples) * 1e6, "us", statistics.median(base) * 1e6, False
        )
    }


async def _noop(task: TaskContext) -> dict[str, Any]:
    return dict(RESULT)


async def _path(url: str, n: int, tmp: Path, safety: bool) -> float:
    tenant = "bs" + uuid.uuid4().hex[:6]
    settings = Settings(agentmesh_data_dir=tmp, agentmesh_safety=safety)  # type: ignore[call-arg]
    workers = Mesh(url, tenant=tenant, settings=settings)
    for i in range(4):
        workers.agent(f"bench-{i}", capabilities=["summarize"], max_concurrent=64)(_noop)
    client = Mesh(url, tenant=tenant, settings=settings)
    await workers.start(registry=False)
    await client.start(registry=False)
    done = asyncio.Event()
    count = [0]

    async def on_done(env: Envelope) -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    await client.on_event("task.completed", on_done)
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    for chunk in range(0, n, 250):
        await asyncio.gather(
            *(
                client.submit("summarize", dict(PAYLOAD_1K))
                for _ in range(chunk, min(chunk + 250, n))
            )
        )
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        raise RuntimeError(f"only {count[0]} of {n} tasks completed") from None
    throughput = n / (time.perf_counter() - start)
    await client.stop()
    await workers.stop()
    return throughput


async def run(n: int = 2_000, rounds: int = 5) -> Result:
    """The checker's cost, then the task path with and without the policy side by side:
    ``rounds`` rounds, each running both back to back in alternating order; the figure
    is the median of the per-round ratios (load drifting on a shared machine hits the two
    runs of one round alike), next to every round's ratio."""
    results = bench_checker()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedNats(Path(tmp) / "nats", port=None) as server,
    ):
        await _path(server.url, n // 4, Path(tmp), safety=False)  # warm up server and code
        await _path(server.url, n // 4, Path(tmp), safety=True)
        on: list[float] = []
        off: list[float] = []
        for r in range(rounds):
            for safety in (False, True) if r % 2 == 0 else (True, False):
                (on if safety else off).append(await _path(server.url, n, Path(tmp), safety=safety))
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    got = entry(statistics.median(on), "tasks/s", statistics.median(off))
    got["ratio"] = round(statistics.median(ratios), 3)
    got["ratios"] = [round(x, 3) for x in ratios]
    results["safety_task_path_1kib"] = got
    return results
