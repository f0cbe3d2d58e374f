"""Request/reply and task results through a tenant's own Redis and RabbitMQ user.

Our mesh, connected with tenant a's broker user, makes requests and waits for results
(replies come to ``_INBOX.<a>.<instance>``); tenant b's user, with raw redis-py and
aio-pika, can neither listen to a's reply inboxes nor send a forged reply into them.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiormq.exceptions
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from agentmesh import Mesh, TaskContext
from agentmesh.config import Settings
from agentmesh.security import rabbitmq_users, redis_acl

pytestmark = pytest.mark.integration


class Users:
    """Tenants a and b, each with its own user on one broker."""

    def __init__(self, broker: str, a: str, b: str, url_a: str, url_b: str) -> None:
        self.broker, self.a, self.b, self.url_a, self.url_b = broker, a, b, url_a, url_b


async def _redis_users(redis_url: str, a: str, b: str, suffix: str) -> AsyncIterator[Users]:
    admin = aioredis.from_url(redis_url)
    host = redis_url.removeprefix("redis://")
    urls, users = [], []
    for tenant, tag in ((a, "a"), (b, "b")):
        password = secrets.token_urlsafe(16)
        user = await redis_acl.grant(admin, tenant, password, user=f"am-test-{tag}-{suffix}")
        users.append(user)
        urls.append(f"redis://{user}:{password}@{host}")
    try:
        yield Users("redis", a, b, urls[0], urls[1])
    finally:
        for user in users:
            await redis_acl.revoke(admin, user)
        await admin.aclose()


async def _rabbitmq_users(a: str, b: str, suffix: str) -> AsyncIterator[Users]:
    urls, users = [], []
    for tenant, tag in ((a, "a"), (b, "b")):
        password = secrets.token_urlsafe(16)
        user = await rabbitmq_users.grant(tenant, password, user=f"am-test-{tag}-{suffix}")
        users.append(user)
        urls.append(f"amqp://{user}:{password}@127.0.0.1:5672/?queue_expires=120")
    try:
        yield Users("rabbitmq", a, b, urls[0], urls[1])
    finally:
        for user in users:
            await rabbitmq_users.delete(user)


@pytest.fixture(params=["redis", "rabbitmq"])
async def users(request: pytest.FixtureRequest) -> AsyncIterator[Users]:
    suffix = uuid.uuid4().hex[:8]
    a, b = f"tenant-a-{suffix}", f"tenant-b-{suffix}"
    if request.param == "redis":
        gen = _redis_users(request.getfixturevalue("redis_url"), a, b, suffix)
    else:
        request.getfixturevalue("rabbitmq_url")  # the broker is up (or a CI failure)
        gen = _rabbitmq_users(a, b, suffix)
    async for value in gen:
        yield value


async def _echo(task: TaskContext) -> dict[str, Any]:
    return {"echo": task.payload, "tenant": task.tenant_id}


async def test_requests_and_results_work_with_the_tenant_user(users: Users, tmp_path: Path) -> None:
    settings = Settings(agentmesh_data_dir=tmp_path)  # type: ignore[call-arg]
    mesh = Mesh(users.url_a, tenant=users.a, settings=settings)
    mesh.agent("echo-1", capabilities=["echo"])(_echo)
    await mesh.start(registry=False)
    try:
        reply = await mesh.request("echo", {"n": 1}, timeout=15)
        assert reply == {"echo": {"n": 1}, "tenant": users.a}
        task_id = await mesh.submit("echo", {"n": 2})
        assert (await mesh.wait_result(task_id, timeout=30))["echo"] == {"n": 2}
        replies = [await mesh.request("echo", {"n": i}, timeout=15) for i in range(3, 6)]
        assert [r["echo"]["n"] for r in replies] == [3, 4, 5]
    finally:
        await mesh.stop()


async def test_another_tenants_user_cannot_listen_to_or_forge_replies(users: Users) -> None:
    a, b = users.a, users.b
    inbox = f"_INBOX.{a}.someinstance"
    if users.broker == "redis":
        r_b, r_a = aioredis.from_url(users.url_b), aioredis.from_url(users.url_a)
        try:
            with pytest.raises(redis.exceptions.NoPermissionError):
                await r_b.publish(inbox, b"\0forged-token\0forged reply")
            for subscribe in ("subscribe", "psubscribe"):
                ps = r_b.pubsub()
                await getattr(ps, subscribe)(inbox if subscribe == "subscribe" else f"_INBOX.{a}.*")
                with pytest.raises(redis.exceptions.NoPermissionError):
                    await ps.get_message(timeout=2.0)
                await ps.aclose()
            own = r_b.pubsub()
            await own.subscribe(f"_INBOX.{b}.someinstance")
            assert (await own.get_message(timeout=2.0))["type"] == "subscribe"
            await own.aclose()
            assert await r_a.publish(inbox, b"a's own reply") == 0  # allowed, nobody listens
        finally:
            await r_b.aclose()
            await r_a.aclose()
        return
    refused = aiormq.exceptions.ChannelAccessRefused
    conn = await aio_pika.connect(users.url_b.partition("?")[0], timeout=10)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(rabbitmq_users.EXCHANGE, ensure=False)
        with pytest.raises(refused):
            await exchange.publish(aio_pika.Message(b"forged", correlation_id="t"), inbox)
        channel = await conn.channel()
        spy = await channel.declare_queue(exclusive=True, auto_delete=True)
        with pytest.raises(refused):
            await spy.bind(rabbitmq_users.EXCHANGE, f"_INBOX.{a}.#")
        channel = await conn.channel()
        with pytest.raises(refused):  # nor the default exchange: it reaches any queue by name
            await channel.default_exchange.publish(aio_pika.Message(b"x"), "amq.gen-anything")
        channel = await conn.channel()
        own = await channel.declare_queue(exclusive=True, auto_delete=True)
        await own.bind(rabbitmq_users.EXCHANGE, f"_INBOX.{b}.someinstance")
    finally:
        await conn.close()
