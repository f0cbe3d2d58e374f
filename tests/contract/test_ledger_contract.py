"""The task ledger contract: every implementation, seen from two "processes".

Each kind yields two ledgers on the same backing store (two connections, as two agent
processes would have) and a ``record`` that does what the executor does with an outcome:
``record_outcome``, then the durable outcome event.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.runtime.ledger import TTL_SECONDS, TaskLedger, ledger_for
from agentmesh.runtime.ledger_redis import RedisLedger
from agentmesh.runtime.ledger_sql import SqlLedger
from agentmesh.runtime.outcomes import result_id
from agentmesh.transports.memory import MemoryTransport
from agentmesh.transports.nats import NatsTransport
from tests.contract.store_fixtures import _db_url, create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration

KINDS = ("memory", "nats", "redis", "sqlite", "postgres")


@dataclass
class Pair:
    a: TaskLedger
    b: TaskLedger
    record: Callable[[TaskLedger, str, Envelope], Awaitable[None]]


async def _record_only(ledger: TaskLedger, tenant: str, env: Envelope) -> None:
    await ledger.record_outcome(tenant, str(env.payload["task_id"]), env)


@contextlib.asynccontextmanager
async def _pair(kind: str, request: pytest.FixtureRequest, tmp: Path) -> AsyncIterator[Pair]:
    if kind == "memory":
        name = f"memory://{uuid.uuid4().hex}"
        ma, mb = MemoryTransport(name), MemoryTransport(name)  # two "processes", one broker
        yield Pair(ledger_for(ma), ledger_for(mb), _record_only)
    elif kind == "nats":
        url = request.getfixturevalue("nats_url")
        ta, tb = NatsTransport(url), NatsTransport(url)
        await ta.connect()
        await tb.connect()

        async def record(ledger: TaskLedger, tenant: str, env: Envelope) -> None:
            await _record_only(ledger, tenant, env)
            kind_ = str(env.type)
            subject = subjects.task_outcome(tenant, kind_, str(env.payload["task_id"]))
            await ta.publish(subject, env, durable=True)

        try:
            yield Pair(ledger_for(ta), ledger_for(tb), record)
        finally:
            await ta.close()
            await tb.close()
    elif kind == "redis":
        url = request.getfixturevalue("redis_url")
        a = RedisLedger(url, ttl_seconds=TTL_SECONDS)
        b = RedisLedger(url, ttl_seconds=TTL_SECONDS)
        try:
            yield Pair(a, b, _record_only)
        finally:
            await a.close()
            await b.close()
    elif kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'ledger.db'}"
        sa, sb = SqlLedger(url, ttl_seconds=TTL_SECONDS), SqlLedger(url, ttl_seconds=TTL_SECONDS)
        try:
            yield Pair(sa, sb, _record_only)
        finally:
            await sa.close()
            await sb.close()
    else:
        name = await create_pg_database()
        url = "postgresql+asyncpg://" + _db_url(name).split("://", 1)[1]
        pa, pb = SqlLedger(url, ttl_seconds=TTL_SECONDS), SqlLedger(url, ttl_seconds=TTL_SECONDS)
        try:
            yield Pair(pa, pb, _record_only)
        finally:
            await pa.close()
            await pb.close()
            await drop_pg_database(name)


@pytest.fixture(params=KINDS)
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    async with _pair(request.param, request, tmp_path) as p:
        yield p


def _tenant() -> str:
    return "t" + uuid.uuid4().hex[:10]


def _outcome(tenant: str, task_id: str, kind: str, **payload: object) -> Envelope:
    env = Envelope.create(kind, {"task_id": task_id, **payload}, tenant_id=tenant, source="test")
    env.metadata["id"] = result_id(tenant, task_id, kind)
    return env


async def test_unknown_task_has_no_facts(pair: Pair) -> None:
    tenant, task = _tenant(), str(uuid.uuid4())
    assert await pair.a.outcome(tenant, task) is None
    assert await pair.a.completed(tenant, task) is None
    assert await pair.a.failures(tenant, task) == 0
    assert not await pair.a.is_cancelled(tenant, task)


async def test_a_completion_is_seen_by_every_process(pair: Pair) -> None:
    tenant, task = _tenant(), str(uuid.uuid4())
    done = _outcome(tenant, task, "task.completed", result={"n": 1})
    await pair.record(pair.a, tenant, done)
    seen = await pair.b.completed(tenant, task)
    assert seen is not None
    assert seen.id == done.id
    assert seen.payload["result"] == {"n": 1}
    latest = await pair.b.outcome(tenant, task)
    assert latest is not None
    assert latest.id == done.id


async def test_a_failure_outcome_is_not_a_completion(pair: Pair) -> None:
    tenant, task = _tenant(), str(uuid.uuid4())
    failed = _outcome(tenant, task, "task.failed", error="boom")
    await pair.record(pair.a, tenant, failed)
    assert await pair.b.completed(tenant, task) is None
    latest = await pair.b.outcome(tenant, task)
    assert latest is not None
    assert latest.type == "task.failed"
    await asyncio.sleep(0.002)  # outcomes are ordered by their timestamps
    done = _outcome(tenant, task, "task.completed", result=2)
    await pair.record(pair.b, tenant, done)
    latest = await pair.a.outcome(tenant, task)
    assert latest is not None
    assert latest.type == "task.completed"
    assert await pair.a.completed(tenant, task) is not None


async def test_failures_are_counted_across_processes_without_loss(pair: Pair) -> None:
    tenant, offer = _tenant(), str(uuid.uuid4())
    counts = await asyncio.gather(
        *(ledger.add_failure(tenant, offer) for ledger in [pair.a, pair.b] * 10)
    )
    assert sorted(counts) == list(range(1, 21))
    assert await pair.a.failures(tenant, offer) == 20
    assert await pair.b.failures(tenant, offer) == 20


async def test_a_cancel_reaches_every_process(pair: Pair) -> None:
    tenant, task = _tenant(), str(uuid.uuid4())
    await pair.a.cancel(tenant, task)
    assert await pair.b.is_cancelled(tenant, task)
    await pair.a.cancel(tenant, task)  # idempotent
    assert await pair.b.is_cancelled(tenant, task)


async def test_tenants_are_separate(pair: Pair) -> None:
    tenant, other, task = _tenant(), _tenant(), str(uuid.uuid4())
    await pair.record(pair.a, tenant, _outcome(tenant, task, "task.completed", result=1))
    await pair.a.add_failure(tenant, task)
    await pair.a.cancel(tenant, task)
    assert await pair.b.completed(other, task) is None
    assert await pair.b.outcome(other, task) is None
    assert await pair.b.failures(other, task) == 0
    assert not await pair.b.is_cancelled(other, task)


async def test_close_then_use_connects_again(pair: Pair) -> None:
    tenant, task = _tenant(), str(uuid.uuid4())
    await pair.a.add_failure(tenant, task)
    await pair.a.close()
    assert await pair.a.failures(tenant, task) == 1
    assert await pair.a.add_failure(tenant, task) == 2
