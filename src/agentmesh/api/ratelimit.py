"""Sliding-window rate limiting (spec 3.8): in-process, or Redis ZSETs when configured.

A client key may make ``limit`` requests in any ``window`` seconds. The Redis variant
keeps ``rate_limit:{key}`` sorted sets (TTL window + 60 s), updated atomically by one
Lua script, and fails open when Redis errors.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from loguru import logger

STRATEGY = "sliding_window"


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted request leaves the window
    retry_after: int  # seconds (0 when allowed)

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
            "X-RateLimit-Strategy": STRATEGY,
        }
        if not self.allowed:
            out["X-RateLimit-Retry-After"] = str(self.retry_after)
            out["Retry-After"] = str(self.retry_after)
        return out


def _decision(
    allowed: bool, count: int, limit: int, oldest: float, now: float, window: float
) -> RateDecision:
    reset = oldest + window
    retry = 0 if allowed else max(1, math.ceil(reset - now))
    return RateDecision(allowed, limit, max(limit - count, 0), reset, retry)


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: float) -> RateDecision:
        """Count one request of ``key``; say whether it is within the limit."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """Per-process sliding windows (bounded number of keys, least recent evicted)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: OrderedDict[str, deque[float]] = OrderedDict()
        self.max_keys = max_keys

    async def hit(self, key: str, limit: int, window: float) -> RateDecision:
        now = time.time()
        q = self._windows.get(key)
        if q is None:
            q = self._windows[key] = deque()
            if len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        cutoff = now - window
        while q and q[0] <= cutoff:
            q.popleft()
        allowed = len(q) < limit
        if allowed:
            q.append(now)
        return _decision(allowed, len(q), limit, q[0] if q else now, now, window)

    async def close(self) -> None:
        self._windows.clear()


_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  count = count + 1
  allowed = 1
end
redis.call('EXPIRE', key, tonumber(ARGV[5]))
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local first = ARGV[1]
if oldest[2] then first = oldest[2] end
return {allowed, count, first}
"""


class RedisRateLimiter:
    """Sliding windows in Redis, shared by every control-plane replica; fails open."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script: Any = self._redis.register_script(_LUA)

    async def hit(self, key: str, limit: int, window: float) -> RateDecision:
        now = time.time()
        try:
            allowed, count, first = await self._script(
                keys=[f"rate_limit:{key}"],
                args=[repr(now), repr(window), limit, uuid.uuid4().hex, int(window) + 60],
            )
        except Exception as exc:  # noqa: BLE001 - fail open: a Redis outage must not stop the API
            logger.warning("rate limiter: redis error ({}); allowing request", exc)
            return RateDecision(True, limit, limit, now + window, 0)
        return _decision(bool(allowed), int(count), limit, float(first), now, window)

    async def close(self) -> None:
        await self._redis.aclose()
