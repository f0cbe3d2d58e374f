"""Bad input at the edge: body limit (413) and sliding-window rate limiting (429)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from agentmesh.api.ratelimit_edge import REFUSAL_HOLD, RateLimitMiddleware
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


async def test_a_refusal_is_held_without_blocking_the_loop() -> None:
    """Backpressure on a flood: each 429 is written only after about ``hold`` seconds
    (0.5x to 1.5x, jittered), while held refusals wait side by side, not in turn."""
    served: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        served.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    assert REFUSAL_HOLD > 0  # on by default
    hold = 0.2
    edge = RateLimitMiddleware(inner, MemoryRateLimiter(), limit=1, window=30, hold=hold)
    transport = httpx.ASGITransport(app=edge)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        assert (await client.get("/v1/tenants/a/agents")).status_code == 200
        started = asyncio.get_running_loop().time()
        refused = await client.get("/v1/tenants/a/agents")
        one = asyncio.get_running_loop().time() - started
        started = asyncio.get_running_loop().time()
        many = await asyncio.gather(*(client.get("/v1/tenants/a/agents") for _ in range(20)))
        twenty = asyncio.get_running_loop().time() - started
    assert refused.status_code == 429
    assert one >= hold * 0.5
    assert {r.status_code for r in many} == {429}
    assert twenty < 20 * hold * 0.5  # in turn they would take at least this long
    assert served == ["/v1/tenants/a/agents"]  # refusals never reach the inner app
