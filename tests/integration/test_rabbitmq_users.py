"""RabbitMQ users per tenant, checked with raw aio-pika and with our AMQP transport.

Uses the machine's RabbitMQ (5672, shared): a uniquely named user, deleted at the end.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
import pytest

from agentmesh.envelope import Envelope
from agentmesh.security.rabbitmq_users import EXCHANGE, delete, grant
from agentmesh.transports.base import SubscribeOptions
from agentmesh.transports.rabbitmq import RabbitMQTransport
from tests.helpers import eventually

pytestmark = pytest.mark.integration

REFUSED = aiormq.exceptions.ChannelAccessRefused


@pytest.fixture
async def tenant_a(rabbitmq_url: str) -> AsyncIterator[tuple[str, str, str]]:
    """(tenant a, tenant b, url of tenant a's user); the user is deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    a, b = f"tenant-a-{suffix}", f"tenant-b-{suffix}"
    password = "-" + secrets.token_urlsafe(16)  # a leading "-" is not an option of rabbitmqctl
    user = await grant(a, password, user=f"am-test-{suffix}")
    try:
        yield a, b, f"amqp://{user}:{password}@127.0.0.1:5672/"
    finally:
        await delete(user)


async def _exchange(url: str) -> tuple[Any, Any, Any]:
    conn = await aio_pika.connect(url, timeout=10)
    channel = await conn.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    return conn, channel, exchange


async def test_a_tenant_user_may_not_publish_or_bind_another_tenants_keys(
    tenant_a: tuple[str, str, str],
) -> None:
    a, b, url = tenant_a
    conn, channel, exchange = await _exchange(url)
    try:
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(EXCHANGE, f"am.{a}.#")
        await exchange.publish(aio_pika.Message(b"own"), f"am.{a}.task.x")
        msg = await queue.get(timeout=5)  # confirmed publish: already routed
        assert msg.body == b"own"
        with pytest.raises(REFUSED):
            await exchange.publish(aio_pika.Message(b"intrusion"), f"am.{b}.task.x")
    finally:
        await conn.close()
    conn, channel, _ = await _exchange(url)
    try:
        spy = await channel.declare_queue(exclusive=True, auto_delete=True)
        with pytest.raises(REFUSED):
            await spy.bind(EXCHANGE, f"am.{b}.#")
    finally:
        await conn.close()
    conn = await aio_pika.connect(url, timeout=10)
    try:
        channel = await conn.channel()
        with pytest.raises(REFUSED):  # another tenant's durable group queue
            await channel.declare_queue(
                f"am.d.cap-x.am.{b}.task.x", durable=True, arguments={"x-queue-type": "quorum"}
            )
    finally:
        await conn.close()


async def test_wrong_password_is_refused(tenant_a: tuple[str, str, str]) -> None:
    _, _, url = tenant_a
    user = url.removeprefix("amqp://").partition(":")[0]
    with pytest.raises((aio_pika.exceptions.ProbableAuthenticationError, ConnectionError)):
        await aio_pika.connect(f"amqp://{user}:wrong@127.0.0.1:5672/", timeout=10)


async def test_our_transport_works_with_the_tenant_user(tenant_a: tuple[str, str, str]) -> None:
    a, _, url = tenant_a
    transport = RabbitMQTransport(url + "?queue_expires=120")
    await transport.connect()
    got: list[Any] = []

    async def handler(msg: Any) -> None:
        got.append(msg.envelope.payload)

    try:
        sub = await transport.subscribe(
            f"am.{a}.task.work", handler, durable="cap-work", options=SubscribeOptions()
        )
        env = Envelope.create("test", {"n": 1}, tenant_id=a)
        await transport.publish(f"am.{a}.task.work", env, durable=True)
        await eventually(lambda: got == [{"n": 1}], 15)
        await sub.unsubscribe()
    finally:
        await transport.close()
