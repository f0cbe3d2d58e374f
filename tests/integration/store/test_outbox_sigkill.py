"""Outbox relay killed with SIGKILL at random points, many times: every committed event
is published at least once and applied once; nothing uncommitted is ever published."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

from agentmesh import subjects
from agentmesh.commands.handlers import event_envelope
from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.errors import ConcurrencyError
from agentmesh.store import NewEvent
from agentmesh.store.outbox import IdempotentHandler, OutboxRelay
from agentmesh.transports import Message, SubscribeOptions, create_transport
from tests.contract.store_fixtures import open_store
from tests.helpers import Collector, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
KILLS = 8


async def start_relay(db_url: str, nats_url: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.store.relay_proc",
        db_url,
        nats_url,
        cwd=ROOT,
        env=dict(os.environ, LOG_LEVEL="WARNING"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.strip() == b"ready", line
    return proc


async def test_relay_killed_many_times_loses_and_invents_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    rng = random.Random(4)
    committed: list[str] = []
    rejected: list[str] = []
    async with open_store(db_url) as store:
        consumer_transport = create_transport(nats_url)
        await consumer_transport.connect()
        applied: list[str] = []

        async def effect(msg: Message) -> None:
            applied.append(msg.envelope.id)

        consumer = IdempotentHandler(store, "sigkill-consumer", effect)
        received = Collector(consumer)
        await consumer_transport.subscribe(
            subjects.event(tenant, "agent.heartbeat_received"),
            received,
            durable="sigkill-consumer",
            options=SubscribeOptions(ack_wait=5.0),
        )
        stop_writing = asyncio.Event()

        async def writer() -> None:
            versions: dict[str, int] = {}
            deadline = time.monotonic() + 60
            while not stop_writing.is_set() and time.monotonic() < deadline:
                stream = f"agent-{rng.randrange(5)}"
                event = AgentHeartbeatReceivedEvent(
                    aggregate_id=stream, tenant_id=tenant, received_at=utcnow()
                )
                out = event_envelope(event)
                stale = rng.random() < 0.2  # a losing writer: its envelope must never appear
                expected = versions.get(stream, 0) + (1 if stale else 0)
                try:
                    await store.append(tenant, stream, expected, [NewEvent.of(event)], outbox=[out])
                except ConcurrencyError:
                    rejected.append(out.envelope.id)
                else:
                    versions[stream] = expected + 1
                    committed.append(out.envelope.id)
                await asyncio.sleep(0.002)

        writing = asyncio.create_task(writer())
        kills_mid_flight = 0
        try:
            for _ in range(KILLS):
                proc = await start_relay(db_url, nats_url)
                await asyncio.sleep(rng.uniform(0.02, 0.3))
                if await store.outbox_pending_count() > 0:
                    kills_mid_flight += 1
                os.kill(proc.pid, signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), 10)
                assert proc.stdout is not None
                await proc.stdout.read()  # drain to EOF so the pipe closes
        finally:
            stop_writing.set()
            await writing
        left_by_killed_relays = await store.outbox_pending_count()
        relay_transport = create_transport(nats_url)
        await relay_transport.connect()
        try:
            await OutboxRelay(store, relay_transport).drain()
            assert await store.outbox_pending_count() == 0
            await eventually(lambda: set(applied) >= set(committed), timeout=30)
        finally:
            await relay_transport.close()
            await consumer_transport.close()
    assert len(committed) > 100
    assert rejected
    assert kills_mid_flight >= KILLS // 2
    assert left_by_killed_relays < len(committed)  # the killed relays published some
    assert sorted(applied) == sorted(committed)  # each committed event applied exactly once
    received_ids = set(received.ids)
    assert received_ids == set(committed)  # published at least once ...
    assert received_ids.isdisjoint(rejected)  # ... and nothing that was not committed
