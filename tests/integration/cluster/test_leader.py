"""Leader election between control-plane replicas: a PostgreSQL session advisory lock."""

from __future__ import annotations

import uuid

import asyncpg

from agentmesh.runtime.leader import AdvisoryLeader, SoleLeader, leader_for, lock_key
from agentmesh.store.postgres import asyncpg_dsn
from tests.helpers import eventually

RUN = uuid.uuid4().hex[:8]  # this run's lock names: suites on one server never share one


async def test_one_of_two_replicas_leads_and_the_other_takes_over_when_it_stops(
    pg_url: str,
) -> None:
    a = AdvisoryLeader(pg_url, f"relay-test-{RUN}", interval=0.1)
    b = AdvisoryLeader(pg_url, f"relay-test-{RUN}", interval=0.1)
    await a.start()
    assert await a.wait_leader(10)
    await b.start()
    try:
        for _ in range(10):  # b keeps trying and keeps failing while a holds the lock
            assert not await b.wait_leader(0.1)
        assert a.is_leader
        await a.stop()
        assert not a.is_leader
        assert await b.wait_leader(10)
    finally:
        await a.stop()
        await b.stop()


async def test_a_leader_whose_session_dies_steps_down_and_another_leads(pg_url: str) -> None:
    a = AdvisoryLeader(pg_url, f"sweep-test-{RUN}", interval=0.1)
    b = AdvisoryLeader(pg_url, f"sweep-test-{RUN}", interval=0.1)
    await a.start()
    assert await a.wait_leader(10)
    await b.start()
    admin = await asyncpg.connect(asyncpg_dsn(pg_url))
    try:
        # the server ends a's session, as when its process is SIGKILLed or its link breaks
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
            lock_key(f"sweep-test-{RUN}") & 0xFFFFFFFFFFFFFFFF,
        )
        assert killed == 1
        assert await b.wait_leader(10)
        await eventually(lambda: not a.is_leader, 5, what="the old leader stepped down")
        assert a.changes >= 2  # gained, lost (and it keeps competing)
        assert b.is_leader
        assert not a.is_leader
    finally:
        await admin.close()
        await a.stop()
        await b.stop()


async def test_leaders_of_different_names_do_not_exclude_each_other(pg_url: str) -> None:
    a = AdvisoryLeader(pg_url, f"one-{RUN}", interval=0.1)
    b = AdvisoryLeader(pg_url, f"two-{RUN}", interval=0.1)
    await a.start()
    await b.start()
    try:
        assert await a.wait_leader(10)
        assert await b.wait_leader(10)
    finally:
        await a.stop()
        await b.stop()


def test_stores_of_one_process_have_a_sole_leader() -> None:
    assert isinstance(leader_for("sqlite+aiosqlite:///x.db"), SoleLeader)
    assert leader_for("memory://").is_leader
    assert isinstance(leader_for("postgresql+asyncpg://u@h/db"), AdvisoryLeader)
