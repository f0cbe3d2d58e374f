"""End-to-end task execution on NATS: submit -> agent -> result durable -> ack.

Ours: 4 agents of one Mesh competing on a capability queue (ledger + result event + ack).
Raw: 4 nats-py pull consumers on a JetStream work queue doing the same flow (decode,
publish the result durably, ack). Same process, same server, same run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from agentmesh import Envelope, Mesh, TaskContext, subjects
from agentmesh.config import Settings
from agentmesh.runtime.embedded import EmbeddedNats
from bench.core import _pct, entry

Result = dict[str, dict[str, Any]]


async def _noop(task: TaskContext) -> dict[str, Any]:
    return {"ok": True}


async def ours(url: str, n: int, tmp: Path) -> tuple[float, list[float]]:
    tenant = "be" + uuid.uuid4().hex[:6]
    settings = Settings(agentmesh_data_dir=tmp)  # type: ignore[call-arg]
    workers = Mesh(url, tenant=tenant, settings=settings)
    for i in range(4):
        workers.agent(f"bench-{i}", capabilities=["noop"], max_concurrent=64)(_noop)
    client = Mesh(url, tenant=tenant, settings=settings)
    await workers.start(registry=False)
    await client.start(registry=False)
    done = asyncio.Event()
    count = [0]
    waiters: dict[str, asyncio.Future[None]] = {}

    async def on_done(env: Envelope) -> None:
        count[0] += 1
        fut = waiters.pop(str(env.payload["task_id"]), None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        if count[0] == n:
            done.set()

    await client.on_event("task.completed", on_done)
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    for chunk in range(0, n, 500):
        await asyncio.gather(
            *(client.submit("noop", {"i": i}) for i in range(chunk, min(chunk + 500, n)))
        )
    try:
        await asyncio.wait_for(done.wait(), 120)
    except TimeoutError:
        raise RuntimeError(f"only {count[0]} of {n} tasks completed") from None
    throughput = n / (time.perf_counter() - start)
    latencies = []
    loop = asyncio.get_running_loop()
    for _ in range(300):
        task_id = str(uuid.uuid4())
        fut: asyncio.Future[None] = loop.create_future()
        waiters[task_id] = fut
        s = time.perf_counter()
        await client.submit("noop", {}, task_id=task_id)
        await asyncio.wait_for(fut, 10)
        latencies.append(time.perf_counter() - s)
    await client.stop()
    await workers.stop()
    return throughput, latencies


async def raw(url: str, n: int) -> tuple[float, list[float]]:
    tenant = "br" + uuid.uuid4().hex[:6]
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=f"AM_{tenant}_task", subjects=[f"am.{tenant}.task.>"]))
    await js.add_stream(StreamConfig(name=f"AM_{tenant}_evt", subjects=[f"am.{tenant}.evt.>"]))
    task_subject = subjects.task(tenant, "noop")
    result_subject = subjects.event(tenant, "task.completed")
    done = asyncio.Event()
    count = [0]
    waiters: dict[str, asyncio.Future[None]] = {}

    async def on_result(msg: Any) -> None:
        body = orjson.loads(msg.data)
        count[0] += 1
        fut = waiters.pop(body["payload"]["task_id"], None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        if count[0] == n:
            done.set()

    await nc.subscribe(result_subject, cb=on_result)
    await js.add_consumer(
        f"AM_{tenant}_task",
        ConsumerConfig(
            durable_name="raw",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=task_subject,
            max_ack_pending=4096,
        ),
    )
    stop = asyncio.Event()
    # large batches for throughput; one at a time for latency (a batch fetch that is not
    # full waits for its timeout, which would put 500 ms outliers into the raw p99)
    fetch_batch = [64]

    async def worker() -> None:
        psub = await js.pull_subscribe(task_subject, durable="raw", stream=f"AM_{tenant}_task")

        async def handle(m: Any) -> None:
            task = orjson.loads(m.data)
            result = {
                "metadata": {"id": str(uuid.uuid4())},
                "payload": {"task_id": task["metadata"]["id"], "result": {"ok": True}},
            }
            await js.publish(
                result_subject,
                orjson.dumps(result),
                headers={"Nats-Msg-Id": result["metadata"]["id"]},
            )
            await m.ack()

        while not stop.is_set():
            try:
                msgs = await psub.fetch(batch=fetch_batch[0], timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            await asyncio.gather(*(handle(m) for m in msgs))
        await psub.unsubscribe()

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    await asyncio.sleep(0.2)

    async def submit(i: int, task_id: str | None = None) -> None:
        env = Envelope.create("task.offered", {"i": i}, tenant_id=tenant)
        if task_id:
            env.metadata["id"] = task_id
        await js.publish(task_subject, orjson.dumps(env.to_dict()), headers={"Nats-Msg-Id": env.id})

    start = time.perf_counter()
    for chunk in range(0, n, 500):
        await asyncio.gather(*(submit(i) for i in range(chunk, min(chunk + 500, n))))
    await asyncio.wait_for(done.wait(), 120)
    throughput = n / (time.perf_counter() - start)
    fetch_batch[0] = 1
    await asyncio.sleep(0.6)  # let the pending batch fetches expire
    latencies = []
    loop = asyncio.get_running_loop()
    for _ in range(300):
        task_id = str(uuid.uuid4())
        fut: asyncio.Future[None] = loop.create_future()
        waiters[task_id] = fut
        s = time.perf_counter()
        await submit(0, task_id)
        await asyncio.wait_for(fut, 10)
        latencies.append(time.perf_counter() - s)
    stop.set()
    await asyncio.gather(*workers)
    await nc.close()
    return throughput, latencies


async def run(n: int = 5_000) -> Result:
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedNats(Path(tmp) / "nats", port=None) as server,
    ):
        ours_tp, ours_lat = await ours(server.url, n, Path(tmp))
        raw_tp, raw_lat = await raw(server.url, n)
    return {
        "e2e_tasks_4_agents": entry(ours_tp, "tasks/s", raw_tp),
        "e2e_noop_task_p50": entry(
            statistics.median(ours_lat) * 1e3, "ms", statistics.median(raw_lat) * 1e3, False
        ),
        "e2e_noop_task_p99": entry(
            _pct(ours_lat, 0.99) * 1e3, "ms", _pct(raw_lat, 0.99) * 1e3, False
        ),
    }
