"""Concurrent catch-ups share passes, and each caller still reads its own writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh.domain import AgentAggregate, AgentCapability
from agentmesh.store import NewEvent
from agentmesh.store.persistence import Persistence, open_persistence


@pytest.fixture(params=["memory", "sqlite"])
async def persistence(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Persistence]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"
    p = await open_persistence(url)
    yield p
    await p.close()


async def test_concurrent_writers_read_their_writes_with_fewer_passes(
    persistence: Persistence, monkeypatch: pytest.MonkeyPatch
) -> None:
    projector = persistence.projector
    passes = 0
    real_pass = projector._pass

    async def counting_pass() -> int:
        nonlocal passes
        passes += 1
        return await real_pass()

    monkeypatch.setattr(projector, "_pass", counting_pass)

    async def write_then_read(n: int) -> bool:
        _, events = AgentAggregate.create(
            f"agent-{n}", "acme", f"Agent {n}", [AgentCapability("summarize", 3)]
        )
        await persistence.store.append(
            "acme", f"agent-agent-{n}", 0, [NewEvent.of(e) for e in events]
        )
        await projector.catch_up()
        return await persistence.read_models.get_agent("acme", f"agent-{n}") is not None

    callers = 40
    seen = await asyncio.gather(*(write_then_read(n) for n in range(callers)))
    assert all(seen)  # every caller found its own agent right after catch_up()
    assert passes < callers
    assert await projector.catch_up() == 0  # nothing left behind


async def test_a_call_after_a_pass_started_gets_a_pass_of_its_own(persistence: Persistence) -> None:
    projector = persistence.projector
    _, events = AgentAggregate.create("agent-1", "acme", "A", [AgentCapability("x", 1)])
    await persistence.store.append("acme", "agent-agent-1", 0, [NewEvent.of(e) for e in events])
    assert await projector.catch_up() == len(events)
    _, more = AgentAggregate.create("agent-2", "acme", "B", [AgentCapability("x", 1)])
    await persistence.store.append("acme", "agent-agent-2", 0, [NewEvent.of(e) for e in more])
    assert await projector.catch_up() == len(more)
