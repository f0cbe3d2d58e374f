"""Tunables of the control plane and the per-``ENVIRONMENT`` security levels
(development, testing, staging, production)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["development", "testing", "staging", "production"]

DEV_ORIGINS = ("http://localhost:3000", "http://localhost:8000")
CSP_BY_LEVEL: dict[str, str | None] = {
    "development": None,
    "testing": "default-src 'self'",
    "staging": "default-src 'self'; script-src 'self'",
    "production": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:"
    ),
}


@dataclass(frozen=True)
class SecurityLevel:
    """CORS origins, credentials, rate limiting, CSP and HSTS max-age of one level."""

    name: Level
    origins: tuple[str, ...]
    allow_credentials: bool
    rate_limit_enabled: bool
    csp: str | None
    hsts_max_age: int

    @classmethod
    def for_environment(cls, name: str) -> SecurityLevel:
        level: Level = name if name in CSP_BY_LEVEL else "production"  # type: ignore[assignment]
        origins = {
            "development": DEV_ORIGINS,
            "testing": DEV_ORIGINS,
            "staging": ("https://staging.agentmesh.ai",),
            "production": ("https://api.agentmesh.ai",),
        }[level]
        return cls(
            name=level,
            origins=origins,
            allow_credentials=level != "production",
            rate_limit_enabled=level != "development",
            csp=CSP_BY_LEVEL[level],
            hsts_max_age=31536000 if level == "production" else 86400,
        )


@dataclass(frozen=True)
class WsLimits:
    """WebSocket limits and timers: 5 connections per user, 1000 in all, ping every 30 s,
    close after 10 s without a pong or 300 s without a message, at the token's expiry or
    within ``token_check_interval`` of its revocation; frames over 64 KiB close with 1009."""

    per_user: int = 5
    per_tenant: int = 100
    global_max: int = 1000
    ping_interval: float = 30.0
    pong_timeout: float = 10.0
    connection_timeout: float = 300.0
    auth_timeout: float = 10.0
    send_queue: int = 1000
    max_frame_bytes: int = 64 * 1024
    token_check_interval: float = 5.0
    """How often an open socket re-checks its token's revocation (it closes at expiry)."""


@dataclass(frozen=True)
class ApiOptions:
    """Everything the app factory can tune; ``None`` means "from the security level"."""

    body_limit_bytes: int = 1024 * 1024
    rate_limit: int | None = None
    rate_window_seconds: float = 60.0
    rate_limit_enabled: bool | None = None
    redis_url: str | None = None
    cors_origins: tuple[str, ...] | None = None
    ws: WsLimits = field(default_factory=WsLimits)
    metrics_interval: float = 10.0
    feed_interval: float = 0.1
    projector_interval: float = 0.1
    run_relay: bool = True
    revocation_interval: float = 5.0
    """How often the token deny list is reloaded from the audit trail."""


DEFAULT_RATE_LIMIT = 1000
"""Requests per window per client key (the ``aggressive`` preset: 1000 per 60 s)."""

API_VERSION = "1.0.0"
SUPPORTED_VERSIONS = ("1.0", "1.1")
DEFAULT_VERSION = "1.0"
