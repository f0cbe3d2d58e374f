"""Event store benchmarks, each next to a raw baseline measured in the same run.

* append events/s, batches of 1 and of 100, on SQLite and PostgreSQL, against a raw
  INSERT loop of the same rows with the same transaction size (one transaction per batch);
* read-back events/s (``read_all`` pages of 1000) against a raw ``SELECT`` of the rows;
* projection lag p99 (ms from commit to read model, and in events) while a writer appends
  at a steady rate.

``ratio`` is ours / raw (higher is better). PostgreSQL is the server of
``AGENTMESH_BENCH_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``);
a scratch database is created and dropped. Run alone: ``python -m bench.store``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.store import NewEvent
from agentmesh.store.db import Database
from agentmesh.store.persistence import open_persistence
from agentmesh.store.sql import SqlEventStore

PG_ADMIN = os.environ.get(
    "AGENTMESH_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SINGLE_APPENDS = 600
BATCHES = 60
BATCH = 100
STREAMS = 50
LAG_SECONDS = 3.0

RAW_TABLE = """CREATE TABLE bench_raw (
    position BIGINT PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, stream_id VARCHAR(300) NOT NULL,
    version INTEGER NOT NULL, event_id VARCHAR(64) NOT NULL, event_type VARCHAR(100) NOT NULL,
    occurred_at VARCHAR(40) NOT NULL, data TEXT NOT NULL)"""
RAW_INSERT = "INSERT INTO bench_raw VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def entry(value: float, unit: str, baseline: float | None = None) -> dict[str, Any]:
    ratio = round(value / baseline, 3) if baseline else None
    return {
        "value": round(value, 2),
        "unit": unit,
        "baseline": baseline and round(baseline, 2),
        "ratio": ratio,
    }


def make_events(n: int, tenant: str = "bench") -> list[NewEvent]:
    return [
        NewEvent.of(
            AgentHeartbeatReceivedEvent(
                aggregate_id="agent-bench",
                tenant_id=tenant,
                received_at=utcnow(),
                metrics={"success_rate": 0.99, "cpu_usage_percent": 12.5},
            )
        )
        for _ in range(n)
    ]


async def _ours(store: SqlEventStore, batch: int, count: int, tag: str) -> float:
    events = make_events(batch * count)
    versions = dict.fromkeys(range(STREAMS), 0)
    start = time.perf_counter()
    for i in range(count):
        s = i % STREAMS
        await store.append("bench", f"{tag}-{s}", versions[s], events[i * batch : (i + 1) * batch])
        versions[s] += batch
    return batch * count / (time.perf_counter() - start)


async def _raw(db: Database, batch: int, count: int, offset: int) -> float:
    rows = [
        (
            offset + i,
            "bench",
            f"raw-{i % STREAMS}",
            i,
            e.event_id,
            e.event_type,
            e.occurred_at,
            e.data,
        )
        for i, e in enumerate(make_events(batch * count))
    ]
    start = time.perf_counter()
    for i in range(count):
        chunk = rows[i * batch : (i + 1) * batch]
        async with db.write() as c:
            if batch == 1:
                await c.execute(RAW_INSERT, *chunk[0])
            else:
                await c.executemany(RAW_INSERT, chunk)
    return batch * count / (time.perf_counter() - start)


async def _read_back(store: SqlEventStore) -> tuple[float, float]:
    start = time.perf_counter()
    n, position = 0, 1
    while page := await store.read_all(position, 1000):
        n += len(page)
        position = page[-1].position + 1
    ours = n / (time.perf_counter() - start)
    start = time.perf_counter()
    m, last = 0, 0
    while True:
        async with store.db.read() as c:
            rows = await c.fetch(
                "SELECT position, tenant_id, stream_id, version, event_id, event_type, "
                "occurred_at, data FROM events WHERE position > ? ORDER BY position LIMIT 1000",
                last,
            )
        if not rows:
            break
        m += len(rows)
        last = int(rows[-1][0])
    return ours, m / (time.perf_counter() - start)


async def bench_backend(name: str, url: str) -> dict[str, dict[str, Any]]:
    store = SqlEventStore_for(url)
    await store.connect()
    try:
        async with store.db.write() as c:
            await c.execute(RAW_TABLE)
        out: dict[str, dict[str, Any]] = {}
        for batch, count in ((1, SINGLE_APPENDS), (BATCH, BATCHES)):
            raw = await _raw(store.db, batch, count, offset=batch * 1_000_000)
            ours = await _ours(store, batch, count, f"b{batch}")
            out[f"store.{name}.append_batch{batch}"] = entry(ours, "events/s", raw)
        ours_read, raw_read = await _read_back(store)
        out[f"store.{name}.read_all"] = entry(ours_read, "events/s", raw_read)
        return out
    finally:
        await store.close()


def SqlEventStore_for(url: str) -> SqlEventStore:
    from agentmesh.store import create_event_store

    store = create_event_store(url)
    assert isinstance(store, SqlEventStore)
    return store


async def bench_projection_lag(url: str) -> dict[str, dict[str, Any]]:
    """Writer: one append of 10 events every 10 ms; projector follows with a 10 ms poll."""
    p = await open_persistence(url)
    commit_times: dict[int, float] = {}
    lags_ms: list[float] = []
    lags_events: list[int] = []
    stop = asyncio.Event()

    async def writer() -> None:
        version = 1
        while not stop.is_set():
            result = await p.store.append("bench", "agent-bench", version, make_events(10))
            version = result.version
            now = time.perf_counter()
            for pos in result.positions:
                commit_times[pos] = now
            await asyncio.sleep(0.01)

    async def follower() -> None:
        seen = 0
        while not stop.is_set() or seen < max(commit_times, default=0):
            behind = max(s.lag for s in await p.projector.status())
            lags_events.append(behind)  # events committed but not yet in the read models
            await p.projector.catch_up()
            done = min(s.checkpoint for s in await p.projector.status())
            now = time.perf_counter()
            lags_ms.extend(
                [
                    (now - commit_times[pos]) * 1000
                    for pos in range(seen + 1, done + 1)
                    if pos in commit_times
                ]
            )
            seen = done
            await asyncio.sleep(0.01)

    try:
        from agentmesh.domain import AgentAggregate, AgentCapability

        _, created = AgentAggregate.create(
            "agent-bench", "bench", "Bench", [AgentCapability("b", 1)]
        )
        await p.store.append("bench", "agent-bench", 0, [NewEvent.of(e) for e in created])
        w = asyncio.create_task(writer())
        f = asyncio.create_task(follower())
        await asyncio.sleep(LAG_SECONDS)
        stop.set()
        await w
        await asyncio.wait_for(f, 30)
    finally:
        await p.close()
    return {
        "store.sqlite.projection_lag_p99_ms": entry(_p99(lags_ms), "ms"),
        "store.sqlite.projection_lag_p99_events": entry(_p99(lags_events), "events"),
    }


def _p99(values: list[float] | list[int]) -> float:
    if len(values) < 2:
        return float(values[0]) if values else 0.0
    return float(statistics.quantiles(values, n=100)[98])


async def run() -> dict[str, dict[str, Any]]:
    """Every store benchmark; a missing PostgreSQL server raises (no silent skip)."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="agentmesh-bench-") as tmp:
        results |= await bench_backend("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}")
        results |= await bench_projection_lag(f"sqlite+aiosqlite:///{Path(tmp) / 'lag.db'}")
    name = "am_bench_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
        results |= await bench_backend("postgres", f"postgresql+asyncpg://{base}/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(run()), indent=2))
