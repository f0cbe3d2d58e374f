"""More concurrent Redis calls than the transport's connection pool holds wait for a free
connection instead of failing (the full-size dedupe row publishes 1,000 envelopes 3 times
at once: the default pool raised ``MaxConnectionsError`` past its 512 connections)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports.redis import RedisTransport, stream_key
from tests.helpers import unique_tenant

pytestmark = pytest.mark.integration


async def test_more_concurrent_publishes_than_pooled_connections_all_land(redis_url: str) -> None:
    tenant = unique_tenant()
    subject = subjects.task(tenant, "pool")
    transport = RedisTransport(redis_url)
    await transport.connect()
    try:
        pool = transport.r.connection_pool
        assert pool.max_connections < 1_500
        sent = [Envelope.create("test", {"n": i}, tenant_id=tenant) for i in range(1_500)]
        await asyncio.gather(*(transport.publish(subject, e, durable=True) for e in sent))
        raw = aioredis.from_url(redis_url)
        try:
            entries = await raw.xlen(stream_key(subject))
        finally:
            await raw.aclose()
        assert entries == 1_500
    finally:
        await transport.close()
