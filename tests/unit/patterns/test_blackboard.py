"""Blackboard on memory:// and NATS: CAS, retries on conflict, knowledge sources, controller."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Envelope, Mesh
from agentmesh.errors import ConcurrencyError
from agentmesh.patterns import names
from agentmesh.patterns.blackboard import (
    Blackboard,
    BlackboardController,
    BoardView,
    KnowledgeSource,
    KnowledgeSourceRunner,
)
from tests.helpers import Collector
from tests.unit.patterns.conftest import fast_settings

Boards = Callable[[str], Blackboard]


@pytest.fixture(params=["memory", "nats"])
async def boards(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Boards]:
    """Boards of one name, each on its own connection (a different process in real life)."""
    url = (
        f"memory://{uuid.uuid4().hex}"
        if request.param == "memory"
        else request.getfixturevalue("nats_url")
    )
    tenant, board_name = "t" + uuid.uuid4().hex[:8], "b" + uuid.uuid4().hex[:6]
    meshes: list[Mesh] = []

    def make(writer: str) -> Blackboard:
        mesh = Mesh(url, tenant=tenant, settings=fast_settings(tmp_path))
        meshes.append(mesh)
        return Blackboard(mesh, board_name, writer=writer)

    yield make
    for m in meshes:
        await m.stop()


async def started(board: Blackboard) -> Blackboard:
    await board.mesh.start(registry=False)
    return board


async def test_cas_conflict_one_writer_wins_the_other_retries(boards: Boards) -> None:
    a, b = await started(boards("writer-a")), await started(boards("writer-b"))
    first = await a.write("facts", "count", 1)
    entry = await b.read("facts", "count")
    assert entry is not None
    assert entry.revision == first
    # both read the same revision; only one compare-and-set can succeed
    await a.write("facts", "count", 2, revision=first)
    with pytest.raises(ConcurrencyError):
        await b.write("facts", "count", 99, revision=first)
    # concurrent read-modify-write: both read before either writes, so one must retry
    both_read = asyncio.Barrier(2)
    seen: dict[str, list[Any]] = {"a": [], "b": []}

    def bump(name: str) -> Callable[[Any], Any]:
        async def change(old: Any) -> Any:
            seen[name].append(old)
            if len(seen[name]) == 1:
                await both_read.wait()
            return old + (10 if name == "a" else 100)

        return change

    ra, rb = await asyncio.gather(
        a.update("facts", "count", bump("a")), b.update("facts", "count", bump("b"))
    )
    final = await a.read("facts", "count")
    assert final is not None
    assert final.value == 112
    assert sorted([len(seen["a"]), len(seen["b"])]) == [1, 2]  # the loser ran again
    retried = seen["a"] if len(seen["a"]) == 2 else seen["b"]
    assert retried == [2, 12] or retried == [2, 102]  # retried on the winner's version
    assert a.conflicts + b.conflicts >= 2
    assert max(ra.revision, rb.revision) == final.revision


async def test_entries_view_and_change_notices(boards: Boards) -> None:
    board = await started(boards("writer"))
    notices = Collector()
    await board.mesh.transport.subscribe(names.blackboard(board.tenant, "clues"), notices)
    await board.write("clues", "1a", {"text": "feline", "len": 3})
    await board.write("clues", "2d", {"text": "canine", "len": 3})
    await board.write("other", "x", 1)
    entries = await board.entries("clues")
    assert sorted(entries) == ["1a", "2d"]
    assert entries["1a"].value["text"] == "feline"
    assert await board.view(["clues", "other"]) == {
        "clues": {"1a": {"text": "feline", "len": 3}, "2d": {"text": "canine", "len": 3}},
        "other": {"x": 1},
    }
    await notices.wait_for(2, timeout=5)
    env: Envelope = notices.envelopes[0]
    assert env.type == "blackboard.updated"
    assert env.payload["key"] == "1a"
    assert env.payload["revision"] == entries["1a"].revision
    await board.delete("clues", "1a")
    assert sorted(await board.entries("clues")) == ["2d"]


async def test_sources_fire_until_the_controller_sees_the_goal(boards: Boards) -> None:
    """Two sources in two 'processes' extend a sequence; the controller stops them at 8."""
    seed_board = await started(boards("seeder"))

    def can_extend(parity: int) -> Callable[[BoardView], bool]:
        def condition(view: BoardView) -> bool:
            seq = view["seq"]
            return bool(seq) and len(seq) % 2 == parity

        return condition

    async def extend(board: Blackboard, view: BoardView) -> None:
        n = len(view["seq"])
        # CAS on an absent key: if someone else wrote it, the watch brings the news
        with contextlib.suppress(ConcurrencyError):
            await board.write("seq", f"i{n:03d}", n * n, revision=0)

    runners = []
    for parity in (0, 1):
        board = await started(boards(f"source-{parity}"))
        src = KnowledgeSource(f"ext-{parity}", ("seq",), can_extend(parity), extend)
        runner = KnowledgeSourceRunner(board, src)
        await runner.start()
        runners.append(runner)
    controller_board = await started(boards("controller"))
    controller = BlackboardController(controller_board, ["seq"], goal=lambda v: len(v["seq"]) >= 8)
    run = asyncio.create_task(controller.run(timeout=20))
    await seed_board.write("seq", "i000", 0, revision=0)
    view = await run
    assert [view["seq"][f"i{n:03d}"] for n in range(8)] == [n * n for n in range(8)]
    for r in runners:
        await r.wait(timeout=5)  # the done mark stops every source
        assert r.fired >= 3
        await r.stop()
    assert await seed_board.is_done()
    assert not await seed_board.finish()  # only the first finish counts
