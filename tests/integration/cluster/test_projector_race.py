"""Projectors of several processes on one PostgreSQL store (control-plane replicas, CLI
commands) serialize their passes: the read models equal a rebuild, never an event twice."""

from __future__ import annotations

import asyncio

from agentmesh.commands import CreateTenant, SubmitTask, build_bus
from agentmesh.store.persistence import Persistence, open_persistence
from tests.helpers import unique_tenant

WRITES = 120


async def _rows(p: Persistence) -> dict[str, list[tuple[object, ...]]]:
    async with p.db.read() as c:
        return {
            t: await c.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")
            for t in ("agents", "tasks", "tenants", "messages")
        }


async def test_concurrent_projectors_fold_each_event_once(pg_url: str) -> None:
    tenant = unique_tenant()
    ps = [await open_persistence(pg_url) for _ in range(4)]
    try:
        bus = build_bus(ps[0].store, ps[0].read_models, None)
        await bus.execute(CreateTenant("race", tenant_id=tenant))
        done = asyncio.Event()

        async def write() -> None:
            for i in range(WRITES):
                await bus.execute(SubmitTask(tenant, "count", {"n": i}))
            done.set()

        async def follow(p: Persistence) -> None:
            while not done.is_set():
                await p.projector.catch_up()
            await p.projector.catch_up()

        await asyncio.gather(write(), *(follow(p) for p in ps))
        live = await _rows(ps[0])
        tasks = live["tasks"]
        assert len(tasks) == WRITES
        await ps[1].projector.rebuild()
        assert await _rows(ps[0]) == live
    finally:
        for p in ps:
            await p.close()
