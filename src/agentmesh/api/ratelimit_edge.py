"""The rate-limit edge: the outermost ASGI layer of the control plane.

:class:`RateLimitMiddleware` counts every request (bar health, metrics and docs) in a
sliding window per :func:`client_key` and answers a request over the limit with a flat
429 and ``Retry-After`` before any other layer runs, so a tenant flooding the API
spends as little of the server as possible and the other tenants keep their latency.

A refusal is also held for about :data:`REFUSAL_HOLD` seconds (jittered, so the held
connections of one flood do not wake in step) before it is written: an HTTP/1.1
connection sends its next request only after the answer to the last, so a client
hammering the API over k connections is refused at most about k / ``REFUSAL_HOLD``
times a second, however fast it could send. Without the hold, one tenant's refused flood
over two keep-alive connections (~2,500 refusals a second at ~0.25 ms of CPU each under
uvicorn's h11) keeps the single event loop busy: the other tenants' p99 rose ~1.9x; with
it, 16 connections get ~300 refusals a second. A refused client loses nothing: it is
told to wait ``Retry-After`` (>= 1 s) anyway. It does not stop a flood over thousands of
connections, which is a proxy's or firewall's job.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import secrets
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentmesh.api.middleware import (
    SECURITY_HEADERS,
    UNLIMITED_PREFIXES,
    CorsMiddleware,
    RequestStats,
    raw_headers,
    set_headers,
)
from agentmesh.api.options import DEFAULT_VERSION, SUPPORTED_VERSIONS, SecurityLevel
from agentmesh.api.ratelimit import STRATEGY, RateDecision, RateLimiter

__all__ = ["REFUSAL_HOLD", "RateLimitMiddleware", "client_key", "edge_headers"]

REFUSAL_HOLD = 0.05
"""Seconds a refusal is held before the 429 is written (backpressure on a flood)."""

_RID = re.compile(rb"^[A-Za-z0-9_-]{8,128}$")


def edge_headers(level: SecurityLevel) -> dict[str, str]:
    """What the layers inside the edge add to an error response on an API path: the
    security headers of ``level`` (CSP included), the API version and ``Vary: Origin``."""
    csp = {"Content-Security-Policy": level.csp} if level.csp else {}
    return {
        **SECURITY_HEADERS,
        "X-API-Security-Level": level.name,
        **csp,
        "X-API-Version": DEFAULT_VERSION,
        "X-API-Supported-Versions": ", ".join(SUPPORTED_VERSIONS),
        "Vary": "Origin",
    }


def client_key(scope: Scope) -> str:
    """The rate-limit key: API key (md5), client IP and the tenant of the path.

    ``X-User-ID`` is deliberately not used: a client could rotate it to escape its
    limit. Read straight from the raw ASGI headers and path (no header parsing, no
    token verification): this runs before anything else on every request.
    """
    parts: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-api-key" and value:
            parts.append(hashlib.md5(value, usedforsecurity=False).hexdigest())
            break
    client = scope.get("client")
    parts.append(str(client[0]) if client else "unknown")
    path: str = scope.get("path", "")
    tenant = "-"
    if path.startswith("/v1/tenants/"):
        tenant = path[12:].split("/", 1)[0] or "-"
    parts.append(tenant)
    return ":".join(parts)


class RateLimitMiddleware:
    """Sliding-window limit per :func:`client_key`; health, metrics and docs are exempt.

    Mounted outermost, so a refused request costs as little as possible and a noisy
    client does not slow the others down: the 429 is answered here, before tracing,
    request context, CORS, versioning, body reading, auth and routing, from
    precomputed headers (``edge_headers``: what those layers would have added) plus
    the few per-request values. ``stats`` still counts it.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        limit: int,
        window: float,
        key: Callable[[Scope], str] = client_key,
        level: SecurityLevel | None = None,
        cors_origins: tuple[str, ...] = (),
        cors_credentials: bool = False,
        stats: RequestStats | None = None,
        hold: float = REFUSAL_HOLD,
    ) -> None:
        self.app = app
        self.hold = hold
        self.limiter = limiter
        self.limit = limit
        self.window = window
        self.key = key
        self.stats = stats
        self.rejected_total = 0
        self._static = raw_headers(
            {
                "Content-Type": "application/json",
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Strategy": STRATEGY,
                **(edge_headers(level) if level is not None else {}),
            }
        )
        self._hsts = (
            f"max-age={level.hsts_max_age}; includeSubDomains; preload".encode()
            if level is not None
            else None
        )
        self._origins = frozenset(o.encode("latin-1") for o in cors_origins)
        self._cors = [(b"access-control-expose-headers", CorsMiddleware.EXPOSE.encode())]
        if cors_credentials:
            self._cors.append((b"access-control-allow-credentials", b"true"))
        self._body_head = b'{"error":"Rate limit exceeded","code":"RATE_LIMIT_EXCEEDED","details":'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(UNLIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        decision = await self.limiter.hit(self.key(scope), self.limit, self.window)
        if not decision.allowed:
            if self.hold > 0:  # backpressure: the connection's next request waits too
                await asyncio.sleep(self.hold * random.uniform(0.5, 1.5))
            await self._reject(scope, send, decision)
            return

        pairs = raw_headers(decision.headers())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_headers(message, pairs, replace=True)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _reject(self, scope: Scope, send: Send, decision: RateDecision) -> None:
        """The flat 429, written straight to the server."""
        self.rejected_total += 1
        if self.stats is not None:
            self.stats.requests_total += 1
        reset, retry = math.ceil(decision.reset_at), str(decision.retry_after).encode()
        body = (
            self._body_head
            + orjson.dumps(
                {
                    "limit": decision.limit,
                    "remaining": decision.remaining,
                    "reset_time": int(decision.reset_at),
                    "retry_after": decision.retry_after,
                    "strategy": STRATEGY,
                }
            )
            + b"}"
        )
        rid, origin = b"", b""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value
            elif name == b"origin":
                origin = value
        if not _RID.match(rid):
            rid = secrets.token_urlsafe(32).encode()
        headers = [
            *self._static,
            (b"content-length", str(len(body)).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
            (b"x-ratelimit-retry-after", retry),
            (b"retry-after", retry),
            (b"x-request-id", rid),
        ]
        if origin in self._origins:
            headers += [(b"access-control-allow-origin", origin), *self._cors]
        if self._hsts is not None and scope.get("scheme") == "https":
            headers.append((b"strict-transport-security", self._hsts))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
