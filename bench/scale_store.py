"""``bench scale`` curves of the event store and of the tenant count (see ``bench.scale``).

* the event store at 10k, 100k and 1M events (SQLite): appends/s (one event per
  transaction, ``APPENDS`` of them, on ``STREAMS`` streams) and reads/s (``read_all``
  pages of 1,000 over the newest ``READ_BACK`` events); the baseline is the rate at the
  smallest size, the goal a ratio of at least 0.8 at 1M;
* 1 vs 1,000 tenants: ``GET`` of an agent (read model) in-process; the baseline is the
  time with one tenant (ratio near 1: no per-request cost grows with the tenants).

The stores are filled with raw rows of real events (copies of one appended event) so the
fill is bounded; what is measured goes through the store's own code.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentmesh.commands import RegisterAgent, build_bus
from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.store import NewEvent
from agentmesh.store.persistence import open_persistence
from agentmesh.store.sqlite import SqliteEventStore

EVENT_SIZES = (10_000, 100_000, 1_000_000)
APPENDS = 400
STREAMS = 20
READ_BACK = 20_000
TENANTS = (1, 1_000)
REPEAT = 50


def _event() -> NewEvent:
    return NewEvent.of(
        AgentHeartbeatReceivedEvent(
            aggregate_id="agent-bench", tenant_id="bench", received_at=utcnow(), metrics={"n": 1}
        )
    )


async def _fill_events(store: SqliteEventStore, n: int) -> None:
    model = _event()
    chunk = 50_000
    for start in range(0, n, chunk):
        rows = [
            (i + 1, "bench", f"fill-{i % 1000}", i // 1000 + 1, uuid.uuid4().hex, model.event_type,
             model.occurred_at, model.data)
            for i in range(start, min(n, start + chunk))
        ]  # fmt: skip
        async with store.db.write() as c:
            await c.executemany(
                "INSERT INTO events (position, tenant_id, stream_id, version, event_id, "
                "event_type, occurred_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )


async def _rates(store: SqliteEventStore) -> tuple[float, float]:
    events = [_event() for _ in range(APPENDS)]
    versions = dict.fromkeys(range(STREAMS), 0)
    started = time.perf_counter()
    for i, e in enumerate(events):
        s = i % STREAMS
        await store.append("bench", f"new-{s}", versions[s], [e])
        versions[s] += 1
    appends = APPENDS / (time.perf_counter() - started)
    head = await store.head()
    position = max(1, head - READ_BACK + 1)
    started = time.perf_counter()
    n = 0
    while page := await store.read_all(position, 1000):
        n += len(page)
        position = page[-1].position + 1
    return appends, n / (time.perf_counter() - started)


async def event_store_curve() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    base: tuple[float, float] | None = None
    for n in EVENT_SIZES:
        with tempfile.TemporaryDirectory(prefix="agentmesh-bench-scale-") as tmp:
            store = SqliteEventStore(f"sqlite+aiosqlite:///{Path(tmp) / 'events.db'}")
            await store.connect()
            try:
                await _fill_events(store, n)
                appends, reads = await _rates(store)
            finally:
                await store.close()
        base = base or (appends, reads)
        label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
        for name, value, b in (("append", appends, base[0]), ("read", reads, base[1])):
            out[f"scale_events_{name}_at_{label}"] = {
                "value": round(value, 1),
                "unit": f"events/s (baseline: at {EVENT_SIZES[0]:,})",
                "baseline": round(b, 1),
                "ratio": round(value / b, 3),
            }
    return out


async def tenants_curve() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    base: float | None = None
    for count in TENANTS:
        p = await open_persistence("memory://")
        try:
            bus = build_bus(p.store, p.read_models)
            for t in range(count):
                await bus.execute(RegisterAgent(f"tenant-{t}", "agent-1", "one agent", {"w": 3}))
            await p.projector.catch_up()
            rm = p.read_models
            times = []
            for i in range(REPEAT):
                started = time.perf_counter()
                doc = await rm.get_agent(f"tenant-{i % count}", "agent-1")
                times.append((time.perf_counter() - started) * 1000)
                if doc is None:
                    raise RuntimeError("agent missing")
        finally:
            await p.close()
        ms = statistics.median(times)
        base = base or ms
        out[f"scale_get_agent_{count}_tenants_ms"] = {
            "value": round(ms, 3),
            "unit": "ms (baseline: 1 tenant)",
            "baseline": round(base, 3),
            "ratio": round(base / ms, 3),
        }
    return out
