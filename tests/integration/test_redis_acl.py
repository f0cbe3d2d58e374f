"""Redis ACL users per tenant, checked with raw redis-py and with our Redis transport."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from agentmesh.envelope import Envelope
from agentmesh.errors import Forbidden
from agentmesh.security.redis_acl import grant, revoke
from agentmesh.transports.base import SubscribeOptions
from agentmesh.transports.redis import RedisTransport
from tests.helpers import eventually
from tests.integration.tls_brokers import own_redis

pytestmark = pytest.mark.integration


@pytest.fixture
async def tenant_a(redis_url: str) -> AsyncIterator[tuple[str, str, str]]:
    """(tenant a, tenant b, url with tenant a's user); the user is deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    a, b = f"tenant-a-{suffix}", f"tenant-b-{suffix}"
    admin = aioredis.from_url(redis_url)
    password = secrets.token_urlsafe(16)
    user = await grant(admin, a, password, user=f"am-test-{suffix}")
    host = redis_url.removeprefix("redis://")
    try:
        yield a, b, f"redis://{user}:{password}@{host}"
    finally:
        await revoke(admin, user)
        await admin.aclose()


async def test_a_tenant_user_is_refused_the_other_tenants_keys_and_channels(
    tenant_a: tuple[str, str, str],
) -> None:
    a, b, url = tenant_a
    r = aioredis.from_url(url)
    try:
        await r.xadd(f"am:s:{a}.task", {"s": f"am.{a}.task.x", "d": b"1"})
        assert await r.xlen(f"am:s:{a}.task") == 1
        await r.publish(f"am.{a}.task.x", b"ok")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await r.xadd(f"am:s:{b}.task", {"s": f"am.{b}.task.x", "d": b"x"})
        with pytest.raises(redis.exceptions.NoPermissionError):
            await r.xrange(f"am:s:{b}.task")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await r.publish(f"am.{b}.task.x", b"intrusion")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await r.keys("*")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await r.execute_command("ACL", "LIST")
        ps = r.pubsub()
        await ps.subscribe(f"am.{b}.task.x")
        with pytest.raises(redis.exceptions.NoPermissionError):  # the reply to SUBSCRIBE
            await ps.get_message(timeout=2.0)
        await ps.aclose()
        own = r.pubsub()
        await own.subscribe(f"am.{a}.task.x")
        assert (await own.get_message(timeout=2.0))["type"] == "subscribe"
        await own.aclose()
    finally:
        await r.aclose()


async def test_wrong_password_is_refused(tenant_a: tuple[str, str, str]) -> None:
    _, _, url = tenant_a
    user, _, rest = url.removeprefix("redis://").partition(":")
    r = aioredis.from_url(f"redis://{user}:wrong@{rest.partition('@')[2]}")
    with pytest.raises(redis.exceptions.AuthenticationError):
        await r.ping()
    await r.aclose()


async def test_our_transport_works_with_the_tenant_user(tenant_a: tuple[str, str, str]) -> None:
    a, b, url = tenant_a
    transport = RedisTransport(url)
    await transport.connect()
    got: list[Any] = []

    async def handler(msg: Any) -> None:
        got.append(msg.envelope.payload)

    try:
        sub = await transport.subscribe(
            f"am.{a}.task.work", handler, durable="cap-work", options=SubscribeOptions()
        )
        await transport.publish(
            f"am.{a}.task.work", Envelope.create("test", {"n": 1}, tenant_id=a), durable=True
        )
        await eventually(lambda: got == [{"n": 1}], 10)
        with pytest.raises(Forbidden, match="refused"):
            await transport.publish(
                f"am.{b}.task.work", Envelope.create("test", {"n": 2}, tenant_id=b), durable=True
            )
        await sub.unsubscribe()
    finally:
        await transport.close()


async def test_with_the_default_user_off_an_unauthenticated_client_is_refused(
    tmp_path: Path,
) -> None:
    """The deployment the README asks for (``user default off`` plus an admin user): a
    client without credentials can do nothing, a tenant's user works on its keys."""
    admin_password = secrets.token_urlsafe(16)
    users = ("--user", "default", "off", "--user", "admin", "on", f">{admin_password}")
    with own_redis(tmp_path, *users, "~*", "&*", "+@all") as port:
        admin = aioredis.from_url(f"redis://admin:{admin_password}@127.0.0.1:{port}/0")
        password = secrets.token_urlsafe(16)
        user = await grant(admin, "tenant-a", password)
        anonymous = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
        tenant = aioredis.from_url(f"redis://{user}:{password}@127.0.0.1:{port}/0")
        try:
            with pytest.raises(redis.exceptions.AuthenticationError):
                await anonymous.ping()
            assert await tenant.xadd("am:s:tenant-a.task", {"s": "am.tenant-a.task.x", "d": b"1"})
            with pytest.raises(redis.exceptions.NoPermissionError):
                await tenant.xadd("am:s:tenant-b.task", {"s": "am.tenant-b.task.x", "d": b"1"})
        finally:
            for client in (anonymous, tenant, admin):
                await client.aclose()
