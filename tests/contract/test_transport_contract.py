"""The one transport contract: every implementation must pass all of it.

Runs once per entry of ``FACTORIES`` in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import NoResponders, NotSupported, PayloadTooLarge, RequestTimeout
from agentmesh.transports import Message, SubscribeOptions, Transport
from tests.contract.conftest import TransportFactory
from tests.contract.raw import publish_raw
from tests.helpers import Collector, eventually, quiet_period, unique_tenant

FAST = SubscribeOptions(ack_wait=1.0, max_deliver=3, retry_base=0.05, retry_max=0.2)


def env(tenant: str, n: int = 0, **payload: Any) -> Envelope:
    return Envelope.create("test.msg", {"n": n, **payload}, tenant_id=tenant)


READY_CYCLES = (20, 300)
"""At least, at most: core subscriptions on the fast brokers run many cycles, for the race is
a narrow one (NATS core without the readiness round trip lost about 1 publish in 40 here)."""
READY_DURABLE_CYCLES = 10  # each cycle joins a new group on the broker (Kafka: about 1 s)
READY_BUDGET = 3.0  # seconds of cycles past the minimum


@pytest.mark.parametrize("durable", [False, True])
async def test_a_publish_right_after_subscribe_returns_is_delivered(
    make_transport: TransportFactory, durable: bool
) -> None:
    """subscribe() returns only once the subscription is live on the broker, so a message
    another connection publishes the moment it returns is delivered (no head start)."""
    t = unique_tenant()
    subscriber, publisher = await make_transport(), await make_transport()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(READY_DURABLE_CYCLES if durable else READY_CYCLES[1]):
        if not durable and i >= READY_CYCLES[0] and loop.time() - started > READY_BUDGET:
            break
        subject = subjects.task(t, f"ready{i}")
        got = Collector()
        sub = await subscriber.subscribe(subject, got, durable=f"ready{i}" if durable else None)
        sent = env(t, i)
        await publisher.publish(subject, sent, durable=durable)
        [msg] = await got.wait_for(1, timeout=10)  # a lost publish fails here
        assert msg.envelope.id == sent.id
        await sub.unsubscribe()


async def test_publish_delivers_the_exact_envelope(transport: Transport) -> None:
    t = unique_tenant()
    got = Collector()
    await transport.subscribe(subjects.agent(t, "agent-1"), got)
    sent = env(t, 1, nested={"x": [1, 2]})
    await transport.publish(subjects.agent(t, "agent-1"), sent)
    [msg] = await got.wait_for(1)
    assert msg.envelope == sent
    assert sorted(msg.envelope.to_dict()) == sorted(
        ["metadata", "routing", "payload", "context", "security", "tenant_id"]
    )
    assert msg.subject == subjects.agent(t, "agent-1")


@pytest.mark.parametrize("durable", [False, True])
async def test_per_subject_ordering(transport: Transport, durable: bool) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "order")
    got = Collector()
    await transport.subscribe(
        subject, got, durable="ord" if durable else None, options=SubscribeOptions(max_in_flight=1)
    )
    for i in range(100):
        await transport.publish(subject, env(t, i), durable=durable)
    await got.wait_for(100)
    assert [m.payload["n"] for m in got.messages] == list(range(100))


async def test_wildcard_subscriptions(transport: Transport) -> None:
    t = unique_tenant()
    star, gt = Collector(), Collector()
    await transport.subscribe(f"am.{t}.evt.*", star)
    await transport.subscribe(f"am.{t}.>", gt)
    await transport.publish(subjects.event(t, "created"), env(t, 1))
    await transport.publish(subjects.event(t, "agent.created"), env(t, 2))
    await transport.publish(subjects.agent(t, "agent-x1"), env(t, 3))
    await gt.wait_for(3)
    await quiet_period(0.2)  # nothing more reaches the narrower subscription
    assert [m.payload["n"] for m in star.messages] == [1]
    assert sorted(m.payload["n"] for m in gt.messages) == [1, 2, 3]


@pytest.mark.parametrize("durable", [False, True])
async def test_group_splits_work_without_duplicates(
    make_transport: TransportFactory, durable: bool
) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "split")
    one, two = await make_transport(), await make_transport()
    a, b = Collector(), Collector()
    kw: dict[str, Any] = {"durable": "workers"} if durable else {"queue": "workers"}
    per_key = not one.capabilities.queue_groups
    if per_key and not durable:
        with pytest.raises(NotSupported, match="queue groups"):
            await one.subscribe(subject, a, **kw)
        return
    # a transport without queue groups shares durable work per key (Kafka partitions):
    # spread the messages over several subjects of one wildcard subscription
    pattern = f"am.{t}.task.*" if per_key else subject
    await one.subscribe(pattern, a, **kw)
    await two.subscribe(pattern, b, **kw)
    publisher = await make_transport()
    for i in range(60):
        target = subjects.task(t, f"split{i % 12}") if per_key else subject
        await publisher.publish(target, env(t, i), durable=durable)
    await eventually(lambda: len(a.messages) + len(b.messages) >= 60)
    await quiet_period(0.3)  # no duplicate follows
    ids_a, ids_b = set(a.ids), set(b.ids)
    assert not ids_a & ids_b
    assert len(a.messages) + len(b.messages) == 60
    assert a.messages, "both members should get a share"
    assert b.messages, "both members should get a share"


async def test_request_reply_and_timeout(transport: Transport) -> None:
    t = unique_tenant()
    subject = subjects.rpc(t, "echo")

    async def echo(msg: Message) -> None:
        await msg.respond(msg.envelope.reply("echo.result", {"echo": msg.payload["n"]}))

    await transport.subscribe(
        subject, echo, queue="echo" if transport.capabilities.queue_groups else None
    )
    request = env(t, 42)
    reply = await transport.request(subject, request, timeout=3.0)
    assert reply.payload == {"echo": 42}
    assert reply.causation_id == request.id
    assert reply.correlation_id == request.correlation_id

    async def silent(msg: Message) -> None:
        return None

    await transport.subscribe(subjects.rpc(t, "silent"), silent)
    with pytest.raises((RequestTimeout, NoResponders)) as info:
        await transport.request(subjects.rpc(t, "silent"), env(t), timeout=0.3)
    assert isinstance(info.value, RequestTimeout)
    with pytest.raises((RequestTimeout, NoResponders)):
        await transport.request(subjects.rpc(t, "nobody"), env(t), timeout=0.5)


async def test_durable_redelivery_after_nak(transport: Transport) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "nak")

    async def nak_first(msg: Message) -> None:
        if msg.attempt == 1:
            await msg.nak(delay=0.2)

    got = Collector(nak_first)
    await transport.subscribe(subject, got, durable="nakker", options=FAST)
    await transport.publish(subject, env(t, 1), durable=True)
    await got.wait_for(2)
    assert [m.attempt for m in got.messages[:2]] == [1, 2]
    assert got.messages[0].envelope.id == got.messages[1].envelope.id


async def test_durable_redelivery_after_ack_wait(transport: Transport) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "ackwait")
    release = asyncio.Event()

    async def hang_first(msg: Message) -> None:
        if msg.attempt == 1:
            await release.wait()  # never settles in time: the broker must redeliver

    got = Collector(hang_first)
    await transport.subscribe(subject, got, durable="slow", options=FAST)
    await transport.publish(subject, env(t, 1), durable=True)
    await got.wait_for(2, timeout=10)
    release.set()
    assert got.messages[1].attempt >= 2


async def test_term_is_never_redelivered(transport: Transport) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "term")

    async def term(msg: Message) -> None:
        await msg.term()

    got = Collector(term)
    await transport.subscribe(subject, got, durable="termer", options=FAST)
    await transport.publish(subject, env(t, 1), durable=True)
    await got.wait_for(1)
    await quiet_period(FAST.ack_wait * 2)  # two ack waits: a redelivery would be here
    assert len(got.messages) == 1


@pytest.mark.parametrize("durable", [False, True])
async def test_same_envelope_id_is_delivered_once(transport: Transport, durable: bool) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "dup")
    got = Collector()
    await transport.subscribe(subject, got, durable="dedupe" if durable else None)
    once = env(t, 1)
    await transport.publish(subject, once, durable=durable)
    await got.wait_for(1)
    await transport.publish(subject, once, durable=durable)
    await transport.publish(subject, env(t, 2), durable=durable)
    await got.wait_for(2)
    await quiet_period(0.3)  # the duplicate does not come after all
    assert [m.payload["n"] for m in got.messages] == [1, 2]


async def dead_letters(transport: Transport, subject: str) -> Collector:
    dlq = Collector()
    await transport.subscribe(subjects.dead_letter(subject), dlq, durable="dlq-watch")
    return dlq


@pytest.mark.parametrize("durable", [False, True])
async def test_failing_handler_dead_letters_and_keeps_consuming(
    transport: Transport, durable: bool
) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "boom")

    async def explode(msg: Message) -> None:
        if msg.payload["n"] == 1:
            raise RuntimeError("kaboom")

    got = Collector(explode)
    await transport.subscribe(subject, got, durable="boomer" if durable else None, options=FAST)
    dlq = await dead_letters(transport, subject)
    bad = env(t, 1)
    await transport.publish(subject, bad, durable=durable)
    [dead] = await dlq.wait_for(1)
    assert dead.envelope.id == bad.id
    ctx = dead.envelope.context["error_context"]
    assert "kaboom" in ctx["error"]
    assert ctx["original_target"] == subject
    assert ctx["retry_count"] == (FAST.max_deliver if durable else 1)
    await transport.publish(subject, env(t, 2), durable=durable)
    await eventually(lambda: any(m.payload["n"] == 2 for m in got.messages))


@pytest.mark.parametrize("durable", [False, True])
async def test_malformed_message_goes_to_dead_letter(transport: Transport, durable: bool) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "junk")
    got = Collector()
    await transport.subscribe(subject, got, durable="junk" if durable else None, options=FAST)
    dlq = await dead_letters(transport, subject)
    await publish_raw(transport, subject, b"\xff not json {", durable=durable)
    await publish_raw(transport, subject, orjson.dumps({"metadata": [], "x": 1}), durable=durable)
    await dlq.wait_for(2)
    errors = [m.envelope.context["error_context"]["error"] for m in dlq.messages]
    assert any("not valid UTF-8 JSON" in e for e in errors)
    assert any("unknown top-level keys" in e for e in errors)
    assert dlq.messages[0].envelope.type == "agentmesh.malformed"
    await transport.publish(subject, env(t, 7), durable=durable)
    [ok] = await got.wait_for(1)
    assert ok.payload["n"] == 7


async def test_one_mib_payload_works_and_oversized_is_refused(transport: Transport) -> None:
    t = unique_tenant()
    subject = subjects.agent(t, "big")
    got = Collector()
    await transport.subscribe(subject, got)
    # the largest payload the broker takes: 1 MiB, or what fits under a smaller limit
    # (SNS/SQS: 256 KiB) with room for the envelope around it
    size = min(1024 * 1024, transport.capabilities.max_payload - 4096)
    blob = "x" * size
    await transport.publish(subject, env(t, 1, blob=blob))
    [msg] = await got.wait_for(1, timeout=15)
    assert len(msg.payload["blob"]) == size
    too_big = "y" * (transport.capabilities.max_payload + 1)
    with pytest.raises(PayloadTooLarge, match="exceeds"):
        await transport.publish(subject, env(t, 2, blob=too_big))


async def test_unsubscribe_stops_delivery(transport: Transport) -> None:
    t = unique_tenant()
    subject = subjects.agent(t, "gone")
    got = Collector()
    sub = await transport.subscribe(subject, got)
    await transport.publish(subject, env(t, 1))
    await got.wait_for(1)
    await sub.unsubscribe()
    await transport.publish(subject, env(t, 2))
    await quiet_period(0.3)  # nothing reaches the unsubscribed handler
    assert len(got.messages) == 1


async def test_subscribers_joining_a_subject_with_traffic_get_what_follows(
    transport: Transport,
) -> None:
    """A subject published to before anyone listened, then by each new subscriber's
    arrival: every subscription live at a publish gets it (no stale routing)."""
    t = unique_tenant()
    subject = subjects.agent(t, "busy")
    await transport.publish(subject, env(t, 0))  # nobody listens yet
    exact, wild = Collector(), Collector()
    first = await transport.subscribe(subject, exact)
    await transport.publish(subject, env(t, 1))
    await exact.wait_for(1)
    second = await transport.subscribe(subject.rsplit(".", 1)[0] + ".*", wild)
    await transport.publish(subject, env(t, 2))
    await exact.wait_for(2)
    [msg] = await wild.wait_for(1)
    assert msg.envelope.payload["n"] == 2
    await first.unsubscribe()
    await transport.publish(subject, env(t, 3))
    await wild.wait_for(2)
    await quiet_period(0.2)
    assert [m.envelope.payload["n"] for m in exact.messages] == [1, 2]
    await second.unsubscribe()


async def test_close_drains_in_flight_handlers(make_transport: TransportFactory) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "drain")
    worker = await make_transport()
    started, finished = asyncio.Event(), []

    async def slow(msg: Message) -> None:
        started.set()
        await asyncio.sleep(0.4)
        finished.append(msg.envelope.id)

    await worker.subscribe(subject, slow, durable="drainer")
    publisher = await make_transport()
    sent = env(t, 1)
    await publisher.publish(subject, sent, durable=True)
    await asyncio.wait_for(started.wait(), 10)
    await worker.close()
    assert finished == [sent.id]
    # the handler finished before close returned, so its ack went out: no redelivery
    again = Collector()
    other = await make_transport()
    await other.subscribe(subject, again, durable="drainer", options=FAST)
    await quiet_period(FAST.ack_wait + 0.5)  # past an ack wait: no redelivery
    assert again.messages == []


async def test_provisioned_group_keeps_messages_published_before_it_subscribes(
    make_transport: TransportFactory,
) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "early")
    publisher = await make_transport()
    await publisher.provision(subject, "late", options=FAST)
    sent = [env(t, i) for i in range(3)]
    for e in sent:
        await publisher.publish(subject, e, durable=True)
    # the first member lives in another process: nothing on its side knows of the group
    worker = await make_transport()
    got = Collector()
    await worker.subscribe(subject, got, durable="late", options=FAST)
    await got.wait_for(3, timeout=10)
    await quiet_period(FAST.ack_wait + 0.5)  # acked: nothing may come back
    assert sorted(got.ids) == sorted(e.id for e in sent)
    assert [m.attempt for m in got.messages] == [1, 1, 1]  # provisioning delivered nothing


async def test_provision_is_idempotent_and_compatible_with_subscribe(
    make_transport: TransportFactory,
) -> None:
    t = unique_tenant()
    subject = subjects.task(t, "twice")
    first, second = await make_transport(), await make_transport()
    await first.provision(subject, "again", options=FAST)
    await first.provision(subject, "again", options=FAST)
    waiting = env(t, 1)
    await first.publish(subject, waiting, durable=True)
    # declared again on the broker while a message waits: it neither takes nor loses it
    await second.provision(subject, "again", options=FAST)
    started = asyncio.get_running_loop().time()
    for _ in range(1000):
        await first.provision(subject, "again", options=FAST)
    assert asyncio.get_running_loop().time() - started < 0.5  # remembered, not re-declared
    got = Collector()
    sub = await first.subscribe(subject, got, durable="again", options=FAST)
    later = env(t, 2)
    await second.publish(subject, later, durable=True)
    await got.wait_for(2)
    assert sorted(got.ids) == sorted([waiting.id, later.id])
    assert [m.attempt for m in got.messages] == [1, 1]
    await sub.unsubscribe()
    await first.close()
    await second.close()
