"""``bench scale``: costs as the work grows, printed as a curve over sizes.

* ``GET /tasks`` pages in-process (SQLite read models, keyset pages): the first page, the
  last page (reached with the cursor of the page before it), a page filtered by status
  and one filtered by agent, at 1k, 10k and 100k tasks of one tenant. The goal is any
  page under 20 ms at 100k; the baseline column is that goal, the ratio goal/ours.
  ``..._growth`` is the 100k time over the 1k time (1.0: flat; linear would be 100).

Task rows are copies of one real task (written through the command bus and projected),
so the documents are what the API serves. The event store at 10k/100k/1M events and
1 vs 1,000 tenants are in :mod:`bench.scale_store`. Bounded: about two minutes.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from agentmesh.commands import SubmitTask, build_bus
from agentmesh.store.persistence import Persistence, open_persistence
from agentmesh.store.queries import ReadModels, encode_cursor

SIZES = (1_000, 10_000, 100_000)
GOAL_MS = 20.0
PAGE = 50
REPEAT = 7


def _at(i: int) -> str:
    s = i // 3  # three tasks share a timestamp: ties are broken by task id
    return (
        f"2026-01-{1 + s // 86400:02d}T{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00:00"
    )


async def _fill(p: Persistence, n: int) -> None:
    bus = build_bus(p.store, p.read_models)
    await bus.execute(SubmitTask("bench", "work", task_id="model"))
    await p.projector.catch_up()
    columns = [str(c[1]) for c in await p.db.query("PRAGMA table_info(tasks)")]
    model = dict(zip(columns, (await p.db.query("SELECT * FROM tasks"))[0], strict=True))
    doc = orjson.loads(str(model["doc"]))
    marks = ", ".join("?" for _ in columns)
    rows = []
    for i in range(n):
        task_id = f"t-{i:07d}"
        row = {
            **model,
            "task_id": task_id,
            "submitted_at": _at(i),
            "status": "completed" if i % 10 == 0 else model["status"],
            "agent_id": f"agent-{i % 100}" if i % 10 == 0 else None,
            "doc": orjson.dumps({**doc, "task_id": task_id, "submitted_at": _at(i)}).decode(),
        }
        rows.append(tuple(row[c] for c in columns))
    async with p.db.write() as c:
        await c.execute("DELETE FROM tasks")
        await c.executemany(f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({marks})", rows)
    async with p.db.write() as c:
        await c.execute("ANALYZE")


async def _ms(call: Any) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _pages(rm: ReadModels) -> dict[str, float]:
    cursor = _cursor(PAGE)  # the last page: the PAGE oldest tasks
    return {
        "first": await _ms(lambda: rm.list_tasks("bench", limit=PAGE)),
        "last": await _ms(lambda: rm.list_tasks("bench", limit=PAGE, cursor=cursor)),
        "status": await _ms(lambda: rm.list_tasks("bench", limit=PAGE, status="completed")),
        "agent": await _ms(lambda: rm.list_tasks("bench", limit=PAGE, agent_id="agent-30")),
    }


async def run() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[int, float]] = {}
    for n in SIZES:
        with tempfile.TemporaryDirectory(prefix="agentmesh-bench-scale-") as tmp:
            p = await open_persistence(f"sqlite+aiosqlite:///{Path(tmp) / 'scale.db'}")
            try:
                await _fill(p, n)
                page = await p.read_models.list_tasks("bench", limit=PAGE, cursor=_cursor(PAGE))
                if len(page.items) != PAGE or page.next_cursor is not None:
                    raise RuntimeError(f"the last page at {n} tasks is wrong")
                for kind, ms in (await _pages(p.read_models)).items():
                    curves.setdefault(kind, {})[n] = ms
                    out[f"scale_tasks_page_{kind}_{n // 1000}k_ms"] = {
                        "value": round(ms, 3),
                        "unit": "ms",
                        "baseline": GOAL_MS,
                        "ratio": round(GOAL_MS / ms, 2) if ms else None,
                    }
            finally:
                await p.close()
    from bench.scale_store import event_store_curve, tenants_curve

    out.update(await event_store_curve())
    out.update(await tenants_curve())
    for kind, curve in curves.items():
        growth = curve[SIZES[-1]] / curve[SIZES[0]]
        out[f"scale_tasks_page_{kind}_growth"] = {
            "value": round(growth, 2),
            "unit": f"x ({SIZES[0]:,} -> {SIZES[-1]:,} tasks)",
            "baseline": None,
            "ratio": None,
        }
    return out


def _cursor(i: int) -> str:
    """The cursor after the task at index ``i`` (newest first, the oldest is index 0)."""
    return encode_cursor(_at(i), f"t-{i:07d}")


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(run()), indent=2))
