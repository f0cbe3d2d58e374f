"""Group commit of SQLite appends: concurrent appends share transactions, and each one
still gets its own answer (a conflict fails only its own append), gapless positions,
and its outbox rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh.envelope import Envelope
from agentmesh.errors import ConcurrencyError
from agentmesh.store import NewEvent
from agentmesh.store.base import OutboxMessage
from agentmesh.store.sqlite import SqliteEventStore

N = 60


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    s = SqliteEventStore(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await s.connect()
    yield s
    await s.close()


def _event(n: int) -> NewEvent:
    return NewEvent(f"e-{n}", "Probe", "2026-01-01T00:00:00.000000+00:00", f'{{"n": {n}}}')


async def test_concurrent_appends_are_grouped_and_each_answered(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    real = store.db.run_in_writer  # type: ignore[attr-defined]

    async def counting(fn):  # type: ignore[no-untyped-def]
        groups.append(1)
        return await real(fn)

    monkeypatch.setattr(store.db, "run_in_writer", counting)
    store._group._run = counting  # the committer was built with the unpatched method
    await store.append("acme", "taken", 0, [_event(-1)])
    groups.clear()

    async def one(n: int) -> object:
        stream = "taken" if n % 10 == 0 else f"s-{n}"  # every 10th conflicts (version 1)
        env = Envelope.create("probe", {"n": n}, tenant_id="acme")
        try:
            return await store.append(
                "acme", stream, 0, [_event(n), _event(n + 1000)], outbox=[OutboxMessage("x", env)]
            )
        except ConcurrencyError as exc:
            return exc

    results = await asyncio.gather(*(one(n) for n in range(N)))
    conflicts = [r for r in results if isinstance(r, ConcurrencyError)]
    ok = [r for r in results if not isinstance(r, ConcurrencyError)]
    assert len(conflicts) == N // 10
    assert len(groups) < N  # appends waiting for the writer went in together
    positions = sorted(p for r in ok for p in r.positions)  # type: ignore[attr-defined]
    assert positions == list(range(2, 2 + 2 * len(ok)))  # gapless, conflicts took none
    assert all(r.version == 2 for r in ok)  # type: ignore[attr-defined]
    assert await store.head() == 1 + 2 * len(ok)
    assert await store.outbox_pending_count() == len(ok)
    for n in range(1, N):
        if n % 10:
            assert [e.event_id for e in await store.load("acme", f"s-{n}")] == [
                f"e-{n}",
                f"e-{n + 1000}",
            ]


async def test_a_failed_commit_fails_every_append_of_its_group(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(fn):  # type: ignore[no-untyped-def]
        raise OSError("disk gone")

    store._group._run = broken
    with pytest.raises(OSError, match="disk gone"):
        await store.append("acme", "s", 0, [_event(1)])
    assert await store.head() == 0
