"""Row 4: a poison message. With one handler at a time (strict order, the worst case for
head-of-line blocking), a message that always fails must not hold up the next one for
1 s or more while it is retried with backoff, and it ends in the dead-letter subject with
its error, attempts and origin, on NATS, Redis and RabbitMQ (the transport contract
checks dead-lettering on all eight brokers)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports import Message, SubscribeOptions, create_transport
from tests.chaos.conftest import Report, brokers, size
from tests.helpers import Collector, unique_tenant

pytestmark = pytest.mark.integration
ROW = "4 poison message"
STRICT = SubscribeOptions(ack_wait=5.0, max_deliver=5, max_in_flight=1, retry_base=0.2)


@pytest.mark.parametrize("broker", brokers(("nats_url",)))
async def test_poison_does_not_stall_the_queue_and_is_dead_lettered(
    broker: str, request: pytest.FixtureRequest, report: Report
) -> None:
    url = request.getfixturevalue(broker)
    kind = broker.removesuffix("_url")
    t = unique_tenant()
    subject = subjects.task(t, "poison")
    good = size(200, 20)
    handled_at: dict[int, float] = {}
    all_handled = asyncio.Event()

    async def handle(msg: Message) -> None:
        if msg.payload.get("poison"):
            raise RuntimeError("poisoned payload")
        handled_at[int(msg.payload["n"])] = time.monotonic()
        if len(handled_at) == good:
            all_handled.set()

    transport = create_transport(url)
    await transport.connect()
    try:
        dlq = Collector()
        await transport.subscribe(subjects.dead_letter(subject), dlq, durable="dlq-watch")
        await transport.subscribe(subject, handle, durable="strict", options=STRICT)
        poison = Envelope.create("test.msg", {"poison": True}, tenant_id=t)
        sent_at: dict[int, float] = {}
        await transport.publish(subject, poison, durable=True)
        for n in range(good):
            sent_at[n] = time.monotonic()
            await transport.publish(
                subject, Envelope.create("test.msg", {"n": n}, tenant_id=t), durable=True
            )
        [dead] = await dlq.wait_for(1, timeout=60)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_handled.wait(), 30)
    finally:
        await transport.close()
    # the stall: the longest pause in the flow of good messages (the first one counted
    # from its publication), which a blocked head of line would stretch
    times = [sent_at[0], *sorted(handled_at.values())]
    stall = max(b - a for a, b in itertools.pairwise(times)) if handled_at else float("inf")
    ctx = dead.envelope.context.get("error_context", {})
    content_ok = (
        dead.envelope.id == poison.id
        and "poisoned payload" in str(ctx.get("error"))
        and ctx.get("retry_count") == STRICT.max_deliver
        and ctx.get("original_target") == subject
    )
    report(
        ROW,
        f"{kind}: {good} messages behind a poison one (1 at a time): no pause >= 1 s",
        f"{len(handled_at)}/{good} handled, longest pause {stall * 1000:.0f} ms",
        len(handled_at) == good and stall < 1.0,
    )
    report(
        ROW,
        f"{kind}: poison in the DLQ with error, {STRICT.max_deliver} attempts, origin",
        f"error {ctx.get('error')!r:.40}, attempts {ctx.get('retry_count')}",
        content_ok,
    )
    assert len(handled_at) == good
    assert stall < 1.0
    assert content_ok, ctx
