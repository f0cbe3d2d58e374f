"""An append on PostgreSQL never waits for another process's event loop.

Every append takes the row lock of the ``event_position`` counter (gapless positions in
commit order). When that lock was held across client round trips (UPDATE, INSERTs,
COMMIT, each awaited), a replica whose event loop was busy elsewhere (CPU-heavy work,
a starved process on a loaded machine) kept it for as long as its loop was blocked, and
every append of every replica - all the POSTs of the REST API - waited with it (3-13 s
stalls with 1,500 tasks through REST; GETs, which append nothing, were unaffected).

Here a second store (its own thread and event loop, like a second replica) appends
without pause while its loop is blocked for ``BLOCK`` seconds, again and again; the
appends of this loop must not wait for those blocks.
"""

from __future__ import annotations

import asyncio
import threading
import time

from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.store.base import NewEvent
from agentmesh.store.postgres import PostgresEventStore
from tests.helpers import unique_tenant

BLOCK = 1.0
"""How long the other store's event loop is blocked each time (seconds)."""
BLOCKS = 4
BOUND = BLOCK / 2
"""The longest an append of this loop may take. An append is one statement of a few
milliseconds; half the block leaves ample room for a loaded machine, while an append
that waits for the blocked loop takes about the whole block."""


def events(tenant: str, stream: str) -> list[NewEvent]:
    beat = AgentHeartbeatReceivedEvent(aggregate_id=stream, tenant_id=tenant, received_at=utcnow())
    return [NewEvent.of(beat)]


def _other_replica(url: str, tenant: str, started: threading.Event, done: threading.Event) -> None:
    async def main() -> None:
        store = PostgresEventStore(url)
        await store.connect()
        try:

            async def append_forever(w: int) -> None:
                version = 0
                while not done.is_set():
                    await store.append(tenant, f"other-{w}", version, events(tenant, "x"))
                    version += 1

            async def block_the_loop() -> None:
                started.set()
                for _ in range(BLOCKS):
                    await asyncio.sleep(0.3)  # the appenders run, then the loop stops
                    time.sleep(BLOCK)  # noqa: ASYNC251 - the point: a blocked event loop
                await asyncio.sleep(0.3)
                done.set()

            await asyncio.gather(block_the_loop(), *(append_forever(w) for w in range(4)))
        finally:
            await store.close()

    asyncio.run(main())


async def test_an_append_does_not_wait_for_a_blocked_process_holding_positions(
    pg_url: str,
) -> None:
    tenant = unique_tenant()
    store = PostgresEventStore(pg_url)
    await store.connect()
    started, done = threading.Event(), threading.Event()
    other = threading.Thread(target=_other_replica, args=(pg_url, tenant, started, done))
    other.start()
    latencies: list[float] = []
    try:
        assert await asyncio.to_thread(started.wait, 30)
        version = 0
        while not done.is_set():
            batch: list[NewEvent] = events(tenant, "mine")
            t0 = time.perf_counter()
            await store.append(tenant, "mine", version, batch)
            latencies.append(time.perf_counter() - t0)
            version += 1
    finally:
        done.set()
        await asyncio.to_thread(other.join, 60)
        await store.close()
    assert not other.is_alive()
    assert len(latencies) > 20, latencies
    slow = [round(s, 2) for s in latencies if s >= BOUND]
    assert not slow, f"appends waited for the other process's blocked loop: {slow}"
    check = PostgresEventStore(pg_url)
    await check.connect()
    try:
        stored = await check.read_all(1, 1_000_000)
        assert [s.position for s in stored] == list(range(1, len(stored) + 1))  # gapless
        assert len(await check.load(tenant, "mine")) == version
    finally:
        await check.close()
