"""A JetStream group member that leaves gives back at once what it fetched and will not
run, so the members that stay get it now, not after ``ack_wait`` (30 s)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports import Message, SubscribeOptions
from agentmesh.transports.nats import NatsTransport
from tests.helpers import eventually, unique_tenant

pytestmark = pytest.mark.integration

ACK_WAIT = 30.0


async def test_a_leaving_member_strands_nothing_until_ack_wait(nats_url: str) -> None:
    tenant = unique_tenant()
    subject = subjects.task(tenant, "churn")
    stayer, leaver, publisher = (
        NatsTransport(nats_url),
        NatsTransport(nats_url),
        NatsTransport(nats_url),
    )
    for t in (stayer, leaver, publisher):
        await t.connect()
    handled: set[str] = set()

    async def record(msg: Message) -> None:
        handled.add(msg.envelope.id)

    options = SubscribeOptions(ack_wait=ACK_WAIT, max_in_flight=8)
    try:
        await stayer.subscribe(subject, record, durable="churn", options=options)
        sent: list[str] = []

        async def publish(count: int) -> None:
            for i in range(count):
                env = Envelope.create("test.msg", {"n": i}, tenant_id=tenant)
                await publisher.publish(subject, env, durable=True)
                sent.append(env.id)
                await asyncio.sleep(0.001)

        producing = asyncio.create_task(publish(2000))
        cycles = 0
        while not producing.done() and cycles < 10:  # the leaver joins and leaves, again and again
            sub = await leaver.subscribe(subject, record, durable="churn", options=options)
            await asyncio.sleep(0.03 * (cycles % 4))
            leaving = asyncio.create_task(sub.unsubscribe())
            await asyncio.sleep(0)
            if cycles % 3 != 2:  # a busy machine: the loop stalls while the member leaves
                time.sleep(1.2)  # noqa: ASYNC251 - the stall is the point
            await leaving
            cycles += 1
        await producing
        assert cycles >= 5
        # well within ack_wait: whatever the leaver held came back when it left
        with contextlib.suppress(AssertionError):
            await eventually(lambda: set(sent) <= handled, timeout=ACK_WAIT / 3)
        assert set(sent) <= handled, f"{len(set(sent) - handled)} of {len(sent)} stranded"
    finally:
        for t in (stayer, leaver, publisher):
            await t.close()
