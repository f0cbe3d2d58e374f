"""Keyset pages of ``GET /tasks``: every task reachable past any offset limit, in order,
each page an index seek; filters and bad cursors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest

from agentmesh.commands import ListTasks, SubmitTask, build_bus
from agentmesh.errors import ValidationError
from agentmesh.store.persistence import Persistence, open_persistence
from agentmesh.store.queries import MAX_OFFSET, ReadModels

ROWS = MAX_OFFSET + 50


@pytest.fixture
async def p() -> AsyncIterator[Persistence]:
    persistence = await open_persistence("memory://")
    yield persistence
    await persistence.close()


async def _clone_tasks(p: Persistence, n: int) -> list[str]:
    """``n`` task rows copied from one real task: groups of 7 share a ``submitted_at``
    (ties are broken by task id), every tenth is completed by ``agent-x``."""
    bus = build_bus(p.store, p.read_models)
    await bus.execute(SubmitTask("acme", "work", task_id="model"))
    await p.projector.catch_up()
    rows = await p.db.query("SELECT * FROM tasks WHERE task_id = 'model'")
    columns = [c[1] for c in await p.db.query("PRAGMA table_info(tasks)")]
    model = dict(zip(columns, rows[0], strict=True))
    doc = orjson.loads(model["doc"])
    out = []
    values = []
    for i in range(n):
        task_id = f"t-{i:06d}"
        at = f"2026-01-01T00:{(i // 7) // 60 % 60:02d}:{(i // 7) % 60:02d}.{i // 7:06d}+00:00"
        done = i % 10 == 0
        row = {
            **model,
            "task_id": task_id,
            "submitted_at": at,
            "status": "completed" if done else model["status"],
            "agent_id": "agent-x" if done else None,
            "doc": orjson.dumps({**doc, "task_id": task_id, "submitted_at": at}).decode(),
        }
        values.append(tuple(row[c] for c in columns))
        out.append(task_id)
    marks = ", ".join("?" for _ in columns)
    async with p.db.write() as c:
        await c.execute("DELETE FROM tasks WHERE task_id = 'model'")
        await c.executemany(f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({marks})", values)
    return out


async def _walk(rm: ReadModels, limit: int, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(ROWS):  # bounded: at most one page per row
        page = await rm.list_tasks("acme", limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        seen += [d["task_id"] for d in page.items]
        assert page.has_more == (page.next_cursor is not None)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the pages never ended")


async def test_every_task_is_reachable_past_the_offset_limit_newest_first(p: Persistence) -> None:
    made = await _clone_tasks(p, ROWS)
    rm = p.read_models
    seen = await _walk(rm, 1000)
    assert seen == sorted(made, key=lambda t: (int(t[2:]) // 7, t), reverse=True)
    first = await rm.list_tasks("acme", limit=50)
    assert first.total == ROWS
    assert [d["task_id"] for d in first.items] == seen[:50]
    started = time.perf_counter()
    last = await rm.list_tasks("acme", limit=50, cursor=_cursor_before(seen, 50))
    assert [d["task_id"] for d in last.items] == seen[-50:]
    assert last.next_cursor is None
    assert time.perf_counter() - started < 1.0  # a seek, not a scan past 10,000 rows
    done = await _walk(rm, 333, status="completed", agent_id="agent-x")
    assert done == [t for t in seen if int(t[2:]) % 10 == 0]


def _cursor_before(seen: list[str], last_n: int) -> str:
    """The cursor a client holds before the page of the last ``last_n`` tasks."""
    from agentmesh.store.queries import encode_cursor

    i = int(seen[-last_n - 1][2:])
    at = f"2026-01-01T00:{(i // 7) // 60 % 60:02d}:{(i // 7) % 60:02d}.{i // 7:06d}+00:00"
    return encode_cursor(at, seen[-last_n - 1])


async def test_bad_cursors_and_cursor_with_offset_are_refused(p: Persistence) -> None:
    bus = build_bus(p.store, p.read_models)
    for _ in range(3):
        await bus.execute(SubmitTask("acme", "work"))
    await p.projector.catch_up()
    page = await bus.query(ListTasks("acme", limit=2))
    assert page.next_cursor is not None
    rest = await bus.query(ListTasks("acme", limit=2, cursor=page.next_cursor))
    assert len(rest.items) == 1
    assert rest.next_cursor is None
    for bad in ("not-a-cursor", "W10", "WzEsMl0"):  # garbage, [], [1,2]
        with pytest.raises(ValidationError) as exc:
            await bus.query(ListTasks("acme", cursor=bad))
        assert exc.value.code == "INVALID_CURSOR"
    with pytest.raises(ValidationError):
        await bus.query(ListTasks("acme", cursor=page.next_cursor, offset=5))
