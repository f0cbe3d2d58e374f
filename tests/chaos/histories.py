"""Recorded event histories and their replay (row 10).

A history is a JSON file under ``tests/golden/histories/``: every event of a store in
position order (stream, version, id, type, time, body, exactly as stored) and the read
models the live projector built from them (tenants, agents, tasks). Replaying appends the
events to an empty store and runs the projector from zero; any difference from the
recorded read models is a divergence.

Record (overwrites the golden file; the demo and the patterns are recorded by
:mod:`tests.chaos.pattern_histories`)::

    .venv/bin/python -m tests.chaos.histories
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentmesh.commands import (
    AssignTask,
    CancelTask,
    CompleteTask,
    CreateTenant,
    FailTask,
    PauseAgent,
    RegisterAgent,
    ResumeAgent,
    RetryTask,
    StartTask,
    SubmitTask,
    TerminateAgent,
    TimeOutTask,
    build_bus,
)
from agentmesh.errors import AgentMeshError
from agentmesh.store import NewEvent
from agentmesh.store.persistence import Persistence, open_persistence
from agentmesh.store.queries import AgentListQuery

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "histories"


async def chaos_walk(p: Persistence, seed: int, steps: int) -> None:
    """A seeded random walk over every command; refused commands write nothing."""
    rng = random.Random(seed)
    bus = build_bus(p.store, p.read_models)
    tenants = [f"tenant-{i}" for i in range(3)]
    for t in tenants:
        await bus.execute(CreateTenant(t.title(), tenant_id=t))
    agents: dict[str, list[str]] = {t: [] for t in tenants}
    tasks: dict[str, list[str]] = {t: [] for t in tenants}
    for step in range(steps):
        t = rng.choice(tenants)
        a = rng.choice(agents[t]) if agents[t] else None
        k = rng.choice(tasks[t]) if tasks[t] else None
        choice = rng.randrange(13)
        command: Any = None
        if choice == 0 or a is None:
            agent_id = f"agent-{step}"
            agents[t].append(agent_id)
            command = RegisterAgent(t, agent_id, f"Agent {step}", {"work": rng.choice([2.0, 4.0])})
        elif choice == 1 or k is None:
            result = await bus.execute(
                SubmitTask(t, "work", {"step": step}, priority=rng.randint(1, 5), max_attempts=2)
            )
            tasks[t].append(str(result.aggregate_id))
        elif choice == 2:
            command = PauseAgent(t, a, "walk")
        elif choice == 3:
            command = ResumeAgent(t, a)
        elif choice == 4 and rng.random() < 0.2:
            command = TerminateAgent(t, a, "walk")
        elif choice == 5:
            command = AssignTask(t, k, a)
        elif choice == 6:
            command = StartTask(t, k, a)
        elif choice == 7:
            command = CompleteTask(t, k, {"step": step}, agent_id=a, execution_time_ms=step)
        elif choice == 8:
            command = FailTask(t, k, f"failure {step}", agent_id=a, retryable=rng.random() < 0.5)
        elif choice == 9:
            command = RetryTask(t, k)
        elif choice == 10:
            command = CancelTask(t, k, "walk")
        elif choice == 11:
            command = TimeOutTask(t, k)
        if command is not None:
            # an invalid transition is refused before anything is written
            with contextlib.suppress(AgentMeshError):
                await bus.execute(command)


async def snapshot(p: Persistence) -> dict[str, Any]:
    """The read models: every tenant with its agents and tasks."""
    await p.projector.catch_up()
    out: dict[str, Any] = {}
    for tenant in await p.read_models.list_tenants():
        t = tenant["id"]
        agents = await p.read_models.list_agents(t, AgentListQuery(limit=1000, sort_by="name"))
        tasks = await p.read_models.list_tasks(t, limit=1000)
        out[t] = {
            "tenant": tenant,
            "agents": sorted(agents.items, key=lambda d: d["agent_id"]),
            "tasks": sorted(tasks.items, key=lambda d: d["task_id"]),
        }
    return out


async def export(p: Persistence) -> list[dict[str, Any]]:
    """Every stored event in position order, as stored."""
    events: list[dict[str, Any]] = []
    while page := await p.store.read_all(from_position=len(events) + 1, limit=1000):
        events += [
            {
                "tenant_id": e.tenant_id,
                "stream_id": e.stream_id,
                "version": e.version,
                "event_id": e.event_id,
                "event_type": e.event_type,
                "occurred_at": e.occurred_at,
                "data": e.data,
            }
            for e in page
        ]
    return events


async def replay(events: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """Append ``events`` to the empty store at ``url``, project from zero, snapshot."""
    p = await open_persistence(url)
    try:
        for e in events:
            new = NewEvent(e["event_id"], e["event_type"], e["occurred_at"], e["data"])
            await p.store.append(e["tenant_id"], e["stream_id"], e["version"] - 1, [new])
        return await snapshot(p)
    finally:
        await p.close()


async def record(url: str, seed: int, steps: int) -> dict[str, Any]:
    """Run the walk on the store at ``url``; the history (events and read models)."""
    p = await open_persistence(url)
    try:
        await chaos_walk(p, seed, steps)
        return {
            "seed": seed,
            "steps": steps,
            "events": await export(p),
            "read_models": await snapshot(p),
        }
    finally:
        await p.close()


def diff(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Where two snapshots differ (empty when they agree)."""
    out = []
    for tenant in sorted(set(want) | set(got)):
        for part in ("tenant", "agents", "tasks"):
            w = (want.get(tenant) or {}).get(part)
            g = (got.get(tenant) or {}).get(part)
            if w != g:
                out.append(f"{tenant}/{part}")
    return out


def main() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        history = asyncio.run(record(f"sqlite+aiosqlite:///{tmp}/walk.db", seed=10, steps=250))
    path = GOLDEN / "chaos-walk.json"
    path.write_text(json.dumps(history, indent=1, sort_keys=True) + "\n")
    print(f"{path}: {len(history['events'])} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
