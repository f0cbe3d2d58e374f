"""Hot paths of the foundation next to raw baselines run in the same process.

* envelope encode+decode vs plain orjson dumps+loads of the same dict;
* memory transport publish -> handler vs an asyncio.Queue hand-off;
* NATS core publish -> handler through the Mesh transport vs raw nats-py;
* request/reply p50/p99 through ``Mesh.request`` vs raw nats-py request/respond, with the
  default safety policy checking every request and answer, and without
  (``request_reply_p50.safety_off``, what the rest of the path costs);
* JetStream durable handler (fetch + ack) vs a raw nats-py pull consumer.

Throughputs alternate ours and raw in rounds; a ratio is the median of the rounds'.
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

from agentmesh import Mesh, TaskContext, subjects
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.runtime.embedded import EmbeddedNats
from agentmesh.transports import Message, SubscribeOptions, create_transport

Result = dict[str, dict[str, Any]]
PAYLOAD = {"text": "summarize this sentence please", "n": 0, "tags": ["a", "b"], "score": 0.5}


def entry(
    value: float, unit: str, baseline: float | None, higher_is_better: bool = True
) -> dict[str, Any]:
    ratio = None
    if baseline:
        ratio = value / baseline if higher_is_better else baseline / value
    return {
        "value": round(value, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 3),
    }


def bench_envelope(n: int = 100_000) -> Result:
    env = Envelope.create("task.offered", dict(PAYLOAD), tenant_id="bench")
    raw = env.to_dict()
    start = time.perf_counter()
    for _ in range(n):
        Envelope.decode(env.encode())
    ours = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(n):
        orjson.loads(orjson.dumps(raw))
    base = n / (time.perf_counter() - start)
    return {"envelope_encode_decode": entry(ours, "ops/s", base)}


async def _pump(publish: Any, done: asyncio.Event, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await publish(i)
        if i % 500 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 60)
    return n / (time.perf_counter() - start)


async def bench_memory(n: int = 50_000) -> Result:
    t = create_transport(f"memory://{uuid.uuid4().hex}")
    await t.connect()
    done, count = asyncio.Event(), [0]

    async def handler(msg: Message) -> None:
        count[0] += 1
        if count[0] == n:
            done.set()

    await t.subscribe("am.bench.agent.x", handler)
    env = Envelope.create("bench", dict(PAYLOAD), tenant_id="bench")

    async def pub(i: int) -> None:
        env.metadata["id"] = str(i)
        await t.publish("am.bench.agent.x", env)

    ours = await _pump(pub, done, n)
    await t.close()
    q: asyncio.Queue[bytes] = asyncio.Queue()
    done2, seen = asyncio.Event(), [0]

    async def consume() -> None:
        while True:
            orjson.loads(await q.get())
            seen[0] += 1
            if seen[0] == n:
                done2.set()

    task = asyncio.create_task(consume())
    data = env.encode()

    async def put(i: int) -> None:
        q.put_nowait(data)

    base = await _pump(put, done2, n)
    task.cancel()
    return {"memory_publish_to_handler": entry(ours, "msgs/s", base)}


def _rounds(pairs: list[tuple[float, float]], unit: str) -> dict[str, Any]:
    """One figure from rounds of (ours, raw) rates measured back to back: the median rates
    and the median of the per-round ratios (the load on a shared machine drifts slower
    than a round lasts, so it hits both sides of a round alike)."""
    figure = entry(
        statistics.median(o for o, _ in pairs), unit, statistics.median(r for _, r in pairs)
    )
    figure["ratio"] = round(statistics.median(o / r for o, r in pairs), 3)
    figure["ratios"] = [round(o / r, 3) for o, r in pairs]
    return figure


async def bench_nats_core(url: str, n: int = 60_000, rounds: int = 10) -> Result:
    """Ours and raw nats-py alternate in ``rounds`` rounds of ``n / rounds`` messages."""
    t = create_transport(url)
    await t.connect()
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    done, count, target = asyncio.Event(), [0], [0]

    def one() -> None:
        count[0] += 1
        if count[0] == target[0]:
            done.set()

    async def handler(msg: Message) -> None:
        one()

    async def raw_cb(msg: Any) -> None:
        orjson.loads(msg.data)
        one()

    await t.subscribe("am.bench.agent.core", handler)
    await nc.subscribe("am.bench.agent.raw", cb=raw_cb, pending_msgs_limit=1_000_000)
    await nc.flush()
    env = Envelope.create("bench", dict(PAYLOAD), tenant_id="bench")
    body = env.to_dict()
    await asyncio.sleep(0.1)

    sent = [0]  # ids stay unique across rounds (a repeated id is a duplicate, dropped)

    async def pub(i: int) -> None:
        env.metadata["id"] = str(sent[0] + i)
        await t.publish("am.bench.agent.core", env)

    async def raw_pub(i: int) -> None:
        body["metadata"]["id"] = str(sent[0] + i)
        await nc.publish("am.bench.agent.raw", orjson.dumps(body))

    async def rate(publish: Any, k: int) -> float:
        count[0], target[0] = 0, k
        done.clear()
        figure = await _pump(publish, done, k)
        sent[0] += k
        return figure

    k = n // rounds
    await rate(pub, k // 4)  # warm-up
    await rate(raw_pub, k // 4)
    pairs = []
    for _ in range(rounds):
        pairs.append((await rate(pub, k), await rate(raw_pub, k)))
    await t.close()
    await nc.close()
    return {"nats_core_publish_to_handler": _rounds(pairs, "msgs/s")}


def _pct(samples: list[float], p: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * p))]


async def bench_request_reply(
    url: str, n: int = 2_000, rounds: int = 10, *, safety: bool = True
) -> Result:
    """Ours and raw alternate in rounds, so machine noise hits both alike."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(agentmesh_data_dir=Path(tmp), agentmesh_safety=safety)  # type: ignore[call-arg]
        mesh = Mesh(url, tenant="bench", settings=settings)

        @mesh.agent("echo-1", capabilities=["echo"])
        async def echo(task: TaskContext) -> dict[str, Any]:
            return task.payload

        await mesh.start(registry=False)
        nc = await nats.connect(url)

        async def responder(msg: Any) -> None:
            req = orjson.loads(msg.data)
            await msg.respond(
                orjson.dumps({"metadata": {"id": "r"}, "payload": {"result": req["payload"]}})
            )

        await nc.subscribe("am.bench.rpc.raw", queue="raw", cb=responder)
        body = orjson.dumps(Envelope.create("x", dict(PAYLOAD), tenant_id="bench").to_dict())
        for _ in range(200):
            await mesh.request("echo", PAYLOAD)
            await nc.request("am.bench.rpc.raw", body, timeout=5)
        ours: list[float] = []
        raw: list[float] = []
        for _ in range(rounds):
            for _ in range(n // rounds):
                s = time.perf_counter()
                await mesh.request("echo", PAYLOAD)
                ours.append(time.perf_counter() - s)
            for _ in range(n // rounds):
                s = time.perf_counter()
                orjson.loads((await nc.request("am.bench.rpc.raw", body, timeout=5)).data)
                raw.append(time.perf_counter() - s)
        await nc.close()
        await mesh.stop()
    return {
        "request_reply_p50": entry(
            statistics.median(ours) * 1e6, "us", statistics.median(raw) * 1e6, False
        ),
        "request_reply_p99": entry(_pct(ours, 0.99) * 1e6, "us", _pct(raw, 0.99) * 1e6, False),
    }


async def _prefill(js: Any, subject: str, n: int, env: Envelope) -> None:
    body = env.to_dict()
    for start in range(0, n, 200):
        batch = []
        for i in range(start, min(start + 200, n)):
            body["metadata"]["id"] = f"{subject}-{i}"
            batch.append(
                js.publish(subject, orjson.dumps(body), headers={"Nats-Msg-Id": f"{subject}-{i}"})
            )
        await asyncio.gather(*batch)


async def bench_jetstream(url: str, n: int = 10_000, rounds: int = 5) -> Result:
    """Ours and a raw pull consumer alternate in ``rounds`` rounds, each draining its own
    prefilled subject of ``n / rounds`` messages with a new durable consumer."""
    tenant = "bj" + uuid.uuid4().hex[:6]
    nc = await nats.connect(url)
    js = nc.jetstream()
    env = Envelope.create("task.offered", dict(PAYLOAD), tenant_id=tenant)
    await js.add_stream(StreamConfig(name=f"AM_{tenant}_task", subjects=[f"am.{tenant}.task.>"]))
    k = n // rounds
    for r in range(rounds):
        await _prefill(js, subjects.task(tenant, f"ours{r}"), k, env)
        await _prefill(js, subjects.task(tenant, f"raw{r}"), k, env)

    t = create_transport(url)
    await t.connect()
    done, count = asyncio.Event(), [0]

    async def handler(msg: Message) -> None:
        count[0] += 1
        if count[0] == k:
            done.set()

    async def ours(r: int) -> float:
        count[0] = 0
        done.clear()
        start = time.perf_counter()
        sub = await t.subscribe(
            subjects.task(tenant, f"ours{r}"),
            handler,
            durable=f"bench-ours{r}",
            options=SubscribeOptions(max_in_flight=256),
        )
        await asyncio.wait_for(done.wait(), 120)
        rate = k / (time.perf_counter() - start)
        await sub.unsubscribe()
        return rate

    async def raw(r: int) -> float:
        start = time.perf_counter()
        psub = await js.pull_subscribe(
            subjects.task(tenant, f"raw{r}"),
            durable=f"bench-raw{r}",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        seen = 0
        while seen < k:
            try:
                msgs = await psub.fetch(batch=256, timeout=1)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            for m in msgs:
                orjson.loads(m.data)
                await m.ack()
                seen += 1
        rate = k / (time.perf_counter() - start)
        await psub.unsubscribe()
        return rate

    pairs = [(await ours(r), await raw(r)) for r in range(rounds)]
    await t.close()
    await nc.close()
    return {"jetstream_durable_handler": _rounds(pairs, "msgs/s")}


async def run() -> Result:
    results: Result = {}
    results.update(bench_envelope())
    results.update(await bench_memory())
    with tempfile.TemporaryDirectory() as tmp, EmbeddedNats(Path(tmp), port=None) as server:
        results.update(await bench_nats_core(server.url))
        results.update(await bench_request_reply(server.url))
        off = await bench_request_reply(server.url, safety=False)
        results["request_reply_p50.safety_off"] = off["request_reply_p50"]
        results.update(await bench_jetstream(server.url))
    return results
