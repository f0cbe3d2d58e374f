"""Safety on the task path (issue 14): the checker's cost and the path with and without it.

* ``safety_check_1kib_p50``: one task's checks with the default policy (the offer before
  the handler + the result before the outcome) on a 1 KiB payload, p50 in microseconds;
  the baseline is an orjson encode+decode of the same payload (what the path pays anyway
  to read a task). Budget: <= 50 us.
* ``safety_task_path_1kib``: submit -> agent -> durable result -> ack on NATS JetStream
  with 1 KiB payloads, default policy vs the same path with ``AGENTMESH_SAFETY=false``,
  interleaved rounds, the median of the per-round ratios (>= 0.8 required), per
  CPU-second and (``.wall``) per second; ``.memory``: the same on ``memory://``.
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


async def _path(url: str, n: int, tmp: Path, safety: bool) -> tuple[float, float]:
    """(tasks per second, tasks per CPU-second of this process) through submit -> agent ->
    durable result, workers and submitter in this process (so every check is counted)."""
    if url == "memory://":
        url = f"memory://bench-safety-{uuid.uuid4().hex[:6]}"
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
    start, cpu = time.perf_counter(), time.process_time()
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
    throughput = n / (time.perf_counter() - start), n / (time.process_time() - cpu)
    await client.stop()
    await workers.stop()
    return throughput


async def _compare(url: str, n: int, tmp: Path, rounds: int) -> Result:
    await _path(url, n // 4, tmp, safety=False)  # warm up server and code
    await _path(url, n // 4, tmp, safety=True)
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for r in range(rounds):
        for safety in (False, True) if r % 2 == 0 else (True, False):
            runs[safety].append(await _path(url, n, tmp, safety=safety))
    out: Result = {}
    for i, (name, unit) in enumerate((("wall", "tasks/s"), ("cpu", "tasks/cpu-s"))):
        on = [x[i] for x in runs[True]]
        off = [x[i] for x in runs[False]]
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        got = entry(statistics.median(on), unit, statistics.median(off))
        got["ratio"] = round(statistics.median(ratios), 3)
        got["ratios"] = [round(x, 3) for x in ratios]
        out[name] = got
    return out


async def run(n: int = 2_000, rounds: int = 5) -> Result:
    """The checker's cost, then the task path with and without the policy side by side
    on NATS JetStream and on ``memory://`` (where the framework's own cost, so the share
    of the checks, is largest): ``rounds`` rounds, each running both back to back in
    alternating order; each figure is the median of the per-round ratios (load drifting
    on a shared machine hits the two runs of one round alike), with every round's ratio.
    ``cpu`` counts tasks per CPU-second of the process (robust on a loaded machine),
    ``wall`` tasks per second."""
    results = bench_checker()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedNats(Path(tmp) / "nats", port=None) as server,
    ):
        for broker, url in (("nats", server.url), ("memory", "memory://")):
            got = await _compare(url, n, Path(tmp), rounds)
            suffix = "" if broker == "nats" else ".memory"
            results[f"safety_task_path_1kib{suffix}"] = got["cpu"]
            results[f"safety_task_path_1kib{suffix}.wall"] = got["wall"]
    return results
