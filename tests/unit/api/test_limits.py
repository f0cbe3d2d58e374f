"""Bad input at the edge: body limit (413) and sliding-window rate limiting (429)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from tests.unit.api.conftest import Api, agent_body, make_settings, running


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Api]:
    app = create_app(
        make_settings(tmp_path),
        options=ApiOptions(rate_limit=5, rate_window_seconds=30, body_limit_bytes=4096),
    )
    async for a in running(app):
        yield a


async def test_oversize_body_is_413(limited: Api) -> None:
    h = limited.auth("acme", "admin")
    big = agent_body(
        "worker-1", description="x" * 900, metadata={f"k{i}": "v" * 500 for i in range(10)}
    )
    r = await limited.client.post("/v1/tenants/acme/agents", json=big, headers=h)
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert "X-Request-ID" in r.headers

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    r = await limited.client.post(
        "/v1/tenants/acme/agents",
        content=chunks(),
        headers={**h, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"
    r = await limited.client.get("/v1/tenants/acme/agents/worker-1", headers=h)
    assert r.status_code == 404


async def test_burst_is_429_while_another_tenant_is_served(limited: Api) -> None:
    a = limited.auth("tenant-a", "admin")
    b = limited.auth("tenant-b", "admin")
    codes = [
        (await limited.client.get("/v1/tenants/tenant-a/agents", headers=a)).status_code
        for _ in range(8)
    ]
    assert codes == [200] * 5 + [429] * 3
    r = await limited.client.get("/v1/tenants/tenant-a/agents", headers=a)
    assert r.status_code == 429
    body = r.json()
    assert body["code"] == "RATE_LIMIT_EXCEEDED"
    assert body["error"] == "Rate limit exceeded"
    assert set(body["details"]) == {"limit", "remaining", "reset_time", "retry_after", "strategy"}
    assert 1 <= int(r.headers["Retry-After"]) <= 30
    assert r.headers["X-RateLimit-Remaining"] == "0"
    ok = await limited.client.get("/v1/tenants/tenant-b/agents", headers=b)
    assert ok.status_code == 200
    assert ok.headers["X-RateLimit-Limit"] == "5"
    assert ok.headers["X-RateLimit-Remaining"] == "4"
    assert (await limited.client.get("/health")).status_code == 200  # exempt


async def test_development_has_no_rate_limit(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path, environment="development"), options=ApiOptions(rate_limit=2)
    )
    async for api in running(app):
        h = api.auth("acme", "admin")
        for _ in range(5):
            r = await api.client.get("/v1/tenants/acme/agents", headers=h)
            assert r.status_code == 200
            assert "X-RateLimit-Limit" not in r.headers
            assert "Content-Security-Policy" not in r.headers


async def test_memory_limiter_window_slides() -> None:
    lim = MemoryRateLimiter()
    for _ in range(3):
        assert (await lim.hit("k", 3, 0.3)).allowed
    d = await lim.hit("k", 3, 0.3)
    assert not d.allowed
    assert d.retry_after >= 1
    await asyncio.sleep(0.35)
    assert (await lim.hit("k", 3, 0.3)).allowed


async def test_redis_limiter_is_shared_and_fails_open() -> None:
    key = "test-" + uuid.uuid4().hex
    one, two = (
        RedisRateLimiter("redis://127.0.0.1:6379/0"),
        RedisRateLimiter("redis://127.0.0.1:6379/0"),
    )
    try:
        results = [await one.hit(key, 4, 30) for _ in range(2)] + [
            await two.hit(key, 4, 30) for _ in range(3)
        ]
        assert [r.allowed for r in results] == [True, True, True, True, False]
        assert results[-1].retry_after >= 1
        import redis.asyncio as aioredis

        r = aioredis.from_url("redis://127.0.0.1:6379/0")
        ttl = await r.ttl(f"rate_limit:{key}")
        assert 60 < ttl <= 90
        await r.delete(f"rate_limit:{key}")
        await r.aclose()
    finally:
        await one.close()
        await two.close()
    dead = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        assert (await dead.hit(key, 1, 30)).allowed
        assert (await dead.hit(key, 1, 30)).allowed
    finally:
        await dead.close()


async def test_app_with_redis_limiter(tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    app = create_app(
        make_settings(tmp_path),
        options=ApiOptions(rate_limit=3, redis_url="redis://127.0.0.1:6379/0"),
    )
    async for api in running(app):
        h = api.auth(tenant, "admin")
        codes = [
            (await api.client.get(f"/v1/tenants/{tenant}/agents", headers=h)).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as other_ip:
            r = await other_ip.get(f"/v1/tenants/{tenant}/agents", headers=h)
            assert r.status_code == 200


async def test_refused_request_is_answered_at_the_edge_with_every_header(limited: Api) -> None:
    """The 429 is written by the outermost layer, yet carries what the inner layers add
    to any response: security headers, request id, API version, CORS for an allowed
    origin, the rate-limit headers and the flat error body."""
    h = limited.auth("edge", "admin")
    for _ in range(5):
        assert (await limited.client.get("/v1/tenants/edge/agents", headers=h)).status_code == 200
    origin = "http://localhost:3000"
    rid = "edge-request-0001"
    r = await limited.client.get(
        "/v1/tenants/edge/agents", headers={**h, "X-Request-ID": rid, "Origin": origin}
    )
    assert r.status_code == 429
    assert r.headers["X-Request-ID"] == rid
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-API-Version"] == "1.0"
    assert "Content-Security-Policy" in r.headers
    assert r.headers["Vary"] == "Origin"
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Retry-After" in r.headers["Access-Control-Expose-Headers"]
    assert r.headers["X-RateLimit-Limit"] == "5"
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert r.headers["Retry-After"] == r.headers["X-RateLimit-Retry-After"]
    assert int(r.headers["X-RateLimit-Reset"]) >= int(r.json()["details"]["reset_time"])
    assert r.headers["content-type"] == "application/json"
    assert r.json()["details"]["strategy"] == "sliding_window"
    bad_rid = await limited.client.get(
        "/v1/tenants/edge/agents",
        headers={**h, "X-Request-ID": "no spaces allowed", "Origin": "http://evil.example"},
    )
    assert bad_rid.status_code == 429
    assert bad_rid.headers["X-Request-ID"] != "no spaces allowed"
    assert len(bad_rid.headers["X-Request-ID"]) >= 32
    assert "Access-Control-Allow-Origin" not in bad_rid.headers
