"""Pure-ASGI middleware of the control plane, outermost first:

* :class:`RequestContextMiddleware`: ``X-Request-ID`` and the security headers on every
  response (CSP per level except on the docs pages, HSTS only on https), and a flat
  500 ``INTERNAL_ERROR`` for anything unhandled.
* :class:`CorsMiddleware`: allow-list CORS with preflight; other origins get no CORS
  headers (and a refused preflight).
* :class:`VersionMiddleware`: ``X-API-Version`` header or ``api_version`` query, else
  ``1.0``; unsupported -> 400 ``UNSUPPORTED_VERSION``.
* :class:`BodyLimitMiddleware`: request bodies over the limit -> 413.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from loguru import logger
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentmesh.api.options import DEFAULT_VERSION, SUPPORTED_VERSIONS, SecurityLevel

_RID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
DOCS_PATHS = frozenset({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
UNLIMITED_PREFIXES = ("/health", "/metrics", "/docs", "/openapi.json", "/redoc")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-XSS-Protection": "1; mode=block",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), camera=()",
    "Cache-Control": "no-store, no-cache, must-revalidate, private",
    "Pragma": "no-cache",
}


async def send_error(
    send: Send,
    status: int,
    message: str,
    code: str,
    *,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Send a complete flat-error response from ASGI middleware."""
    body: dict[str, Any] = {"error": message, "code": code}
    if details is not None:
        body["details"] = details
    data = orjson.dumps(body)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


RawHeaders = list[tuple[bytes, bytes]]


def raw_headers(headers: dict[str, str]) -> RawHeaders:
    """``headers`` as ASGI raw header pairs (lower-case names)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def set_headers(message: Message, pairs: RawHeaders, *, replace: bool) -> None:
    """Put ``pairs`` on a ``http.response.start`` message: replacing same-named headers,
    or (``replace=False``) only those the response does not set itself. Plain list work:
    this runs on every response, where ``MutableHeaders`` costs a scan per header."""
    current: RawHeaders = list(message.get("headers", ()))
    names = {k for k, _ in pairs}
    if replace:
        current = [h for h in current if h[0].lower() not in names]
        current.extend(pairs)
    else:
        present = {k.lower() for k, _ in current}
        current.extend(p for p in pairs if p[0] not in present)
    message["headers"] = current


def _add_vary_origin(message: Message) -> None:
    """``Vary: Origin`` added to the response's ``Vary`` (or as its only value)."""
    headers: RawHeaders = list(message.get("headers", ()))
    for i, (k, v) in enumerate(headers):
        if k.lower() == b"vary":
            headers[i] = (b"vary", v + b", Origin")
            break
    else:
        headers.append((b"vary", b"Origin"))
    message["headers"] = headers


class RequestStats:
    """Requests served since start (``/v1/metrics`` performance figures)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests_total = 0

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    @property
    def throughput(self) -> float:
        return self.requests_total / self.uptime if self.uptime > 0 else 0.0


class RequestContextMiddleware:
    """Request id, security headers and the last-resort 500 (outermost)."""

    def __init__(
        self, app: ASGIApp, level: SecurityLevel, stats: RequestStats | None = None
    ) -> None:
        self.app = app
        self.level = level
        self.stats = stats or RequestStats()
        static = {**SECURITY_HEADERS, "X-API-Security-Level": level.name}
        self._static = raw_headers(static)
        csp = {"Content-Security-Policy": level.csp} if level.csp else {}
        self._static_csp = raw_headers({**static, **csp})
        self._hsts = f"max-age={level.hsts_max_age}; includeSubDomains; preload".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.stats.requests_total += 1
        incoming = Headers(scope=scope).get("x-request-id", "")
        rid = incoming if _RID.match(incoming) else secrets.token_urlsafe(32)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope["path"]
        extra = self._static_csp if path not in DOCS_PATHS else self._static
        extra = [*extra, (b"x-request-id", rid.encode("latin-1"))]
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self._hsts))
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                set_headers(message, extra, replace=False)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:  # noqa: BLE001 - the outermost boundary: any error becomes a logged 500
            logger.opt(exception=True).error("unhandled error on {} {}", scope["method"], path)
            if not started:
                await send_error(send_wrapper, 500, "internal error", "INTERNAL_ERROR")


class CorsMiddleware:
    """CORS against an allow-list, with preflight; ``Vary: Origin`` on every answer."""

    METHODS = "GET, POST, PUT, DELETE, OPTIONS"
    HEADERS = "Content-Type, Authorization, X-API-Key, X-Request-ID, X-API-Version"
    EXPOSE = (
        "X-Request-ID, X-API-Version, X-API-Supported-Versions, X-RateLimit-Limit, "
        "X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
    )

    def __init__(self, app: ASGIApp, origins: tuple[str, ...], allow_credentials: bool) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.allow_credentials = allow_credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin in self.origins
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            method = headers["access-control-request-method"].upper()
            if not allowed or method not in self.METHODS:
                await send_error(
                    send, 403, "CORS preflight refused", "CORS_REJECTED", headers={"Vary": "Origin"}
                )
                return
            out = {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": self.METHODS,
                "Access-Control-Allow-Headers": self.HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            }
            if self.allow_credentials:
                out["Access-Control-Allow-Credentials"] = "true"
            raw = [(k.lower().encode(), v.encode()) for k, v in out.items()]
            raw.append((b"content-length", b"0"))
            await send({"type": "http.response.start", "status": 204, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_vary_origin(message)
                if allowed and origin is not None:
                    h = MutableHeaders(scope=message)
                    h["Access-Control-Allow-Origin"] = origin
                    h["Access-Control-Expose-Headers"] = self.EXPOSE
                    if self.allow_credentials:
                        h["Access-Control-Allow-Credentials"] = "true"
            await send(message)

        await self.app(scope, receive, send_wrapper)


class VersionMiddleware:
    """API versioning by header ``X-API-Version`` or query ``api_version``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.supported = ", ".join(SUPPORTED_VERSIONS)
        self._default = raw_headers(
            {"X-API-Version": DEFAULT_VERSION, "X-API-Supported-Versions": self.supported}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        requested = Headers(scope=scope).get("x-api-version")
        if requested is None and scope.get("query_string"):
            values = parse_qs(scope["query_string"].decode("latin-1")).get("api_version")
            requested = values[0] if values else None
        version = (requested or DEFAULT_VERSION).strip()
        extra = {"X-API-Version": version, "X-API-Supported-Versions": self.supported}
        if version not in SUPPORTED_VERSIONS:
            await send_error(
                send,
                400,
                f"API version {version!r} is not supported",
                "UNSUPPORTED_VERSION",
                details={
                    "requested_version": version,
                    "supported_versions": list(SUPPORTED_VERSIONS),
                    "default_version": DEFAULT_VERSION,
                },
                headers={**extra, "X-API-Version": DEFAULT_VERSION},
            )
            return
        scope.setdefault("state", {})["api_version"] = version
        pairs = self._default if version == DEFAULT_VERSION else raw_headers(extra)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_headers(message, pairs, replace=True)
            await send(message)

        await self.app(scope, receive, send_wrapper)


class _TooLarge(HTTPException):
    """Raised by the limited ``receive``; FastAPI passes HTTPExceptions through to the
    error handlers, so a streamed oversize body also ends as a flat 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 ``PAYLOAD_TOO_LARGE`` for bodies over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(send)
                return
        received = 0
        started = False

        async def limited_receive() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await send_error(
            send,
            413,
            f"request body larger than {self.limit} bytes",
            "PAYLOAD_TOO_LARGE",
            headers={"Connection": "close"},
        )


Middleware = Callable[[Scope, Receive, Send], Awaitable[None]]
