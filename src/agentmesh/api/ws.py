"""WebSocket ``/ws``: authenticated, tenant-scoped live updates.

Protocol (message types are accepted in any case and always emitted lowercase)::

    client connects to /ws?token=<jwt>      or sends first {"type": "auth", "data": {"token": ...}}
    server -> {"type": "connect", "data": {"connection_id", "status": "connected"}, ...}
    server -> {"type": "auth_response", "data": {"status": "authenticated", "user_id", "tenant_id"}}
    client -> {"type": "subscribe", "data": {"channel": "agents" | "tasks" | "system" | "metrics"}}
    server -> {"type": "notification", "data": {"action": "subscribed", "channel", "tenant_id"}}
    server -> agent_status_update | task_update | system_event | metrics_update
    server -> {"type": "ping", "message_id": X}   client -> {"type": "pong", "data": {"message_id": X}}

Every server message is ``{type, data, timestamp, message_id, connection_id}``.

An ``Origin`` header must be on the CORS allow-list or name this server itself (the page
served at ``/ui``).

Close codes: 1008 origin refused / authentication failed (before any data frame) / the
token expired or was revoked (an open socket re-checks it), 1009 a frame over 64 KiB,
4001 too many connections (per user, per tenant or global), 4000 invalid message,
1011 pong timeout, 1000 idle past the connection timeout.

This module is the hub (the registry of connections, its limits and fan-out); one
client is served by :class:`agentmesh.api.ws_session.Session`, and the wire format is
in :mod:`agentmesh.api.ws_protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from typing import Any

from fastapi import WebSocket

from agentmesh.api.options import WsLimits
from agentmesh.api.ws_protocol import (
    CHANNELS,
    CLOSE_FAILED,
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_INVALID,
    CLOSE_POLICY,
    CLOSE_TOO_MANY,
    Close,
    WsType,
    new_message_id,
    ws_message,
)
from agentmesh.api.ws_session import AuditHook, Connection, Session, audit_safely, authenticate
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal
from agentmesh.security.tokens import Claims, TokenService

__all__ = [
    "CHANNELS",
    "CLOSE_FAILED",
    "CLOSE_IDLE",
    "CLOSE_INVALID",
    "CLOSE_POLICY",
    "CLOSE_TOO_MANY",
    "AuditHook",
    "Connection",
    "WebSocketHub",
    "WsType",
    "new_message_id",
    "same_origin",
    "ws_message",
]


class WebSocketHub:
    """Connections, their subscriptions and fan-out of tenant-scoped events."""

    def __init__(
        self,
        tokens: TokenService,
        limits: WsLimits,
        origins: tuple[str, ...] = (),
        audit: AuditHook | None = None,
    ) -> None:
        self.tokens = tokens
        self.limits = limits
        self.origins = frozenset(origins)
        self.audit = audit
        self.connections: dict[str, Connection] = {}
        self._per_user: Counter[tuple[str, str]] = Counter()
        self._per_tenant: Counter[str] = Counter()
        self.published = 0

    # -- fan-out -----------------------------------------------------------------------
    def subscribed_tenants(self, channel: str) -> set[str]:
        """Tenants with at least one connection subscribed to ``channel``."""
        return {
            t for c in self.connections.values() for (t, ch) in c.subscriptions if ch == channel
        }

    def publish(self, tenant_id: str, channel: str, type: WsType, data: dict[str, Any]) -> int:
        """Queue a message for every connection subscribed to ``(tenant_id, channel)``."""
        sent = 0
        for conn in list(self.connections.values()):
            if (tenant_id, channel) not in conn.subscriptions:
                continue
            msg = ws_message(type, data, conn.id)
            try:
                conn.queue.put_nowait(msg)
                sent += 1
            except asyncio.QueueFull:
                conn.dropped += 1
        self.published += sent
        return sent

    async def close_all(self, reason: str = "server shutting down") -> None:
        """Ask every connection to close with 1001 (going away)."""
        for conn in list(self.connections.values()):
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(Close(CLOSE_GOING_AWAY, reason))

    # -- lifecycle ---------------------------------------------------------------------
    async def handle(self, websocket: WebSocket) -> None:
        """Serve one client from handshake to close."""
        origin = websocket.headers.get("origin")
        if origin is not None and origin not in self.origins and not same_origin(websocket, origin):
            await websocket.close(CLOSE_POLICY, "Origin not allowed")
            return
        await websocket.accept()
        claims = await authenticate(websocket, self.tokens, self.limits, self.audit)
        if claims is None:
            return
        principal = Principal.from_claims(claims)
        conn = self._register(websocket, principal, claims)
        if conn is None:
            await audit_safely(
                self.audit,
                AuditAction.UNAUTHORIZED_ACCESS,
                AuditStatus.DENIED,
                tenant_id=principal.tenant_id,
                principal=principal,
                details={"reason": "too many websocket connections"},
            )
            await websocket.close(CLOSE_TOO_MANY, "Too many connections")
            return
        try:
            await Session(conn, self.limits, self.audit, self.tokens).serve()
        finally:
            self._unregister(conn)

    def _register(
        self, websocket: WebSocket, principal: Principal, claims: Claims | None = None
    ) -> Connection | None:
        user = (principal.tenant_id, principal.subject)
        if (
            len(self.connections) >= self.limits.global_max
            or self._per_tenant[principal.tenant_id] >= self.limits.per_tenant
            or self._per_user[user] >= self.limits.per_user
        ):
            return None
        conn = Connection(
            id=secrets.token_urlsafe(12),
            websocket=websocket,
            principal=principal,
            queue=asyncio.Queue(self.limits.send_queue),
            claims=claims,
        )
        self.connections[conn.id] = conn
        self._per_user[user] += 1
        self._per_tenant[principal.tenant_id] += 1
        return conn

    def _unregister(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is None:
            return
        self._per_user[conn.user_key] -= 1
        if self._per_user[conn.user_key] <= 0:
            del self._per_user[conn.user_key]
        self._per_tenant[conn.principal.tenant_id] -= 1
        if self._per_tenant[conn.principal.tenant_id] <= 0:
            del self._per_tenant[conn.principal.tenant_id]


def same_origin(websocket: WebSocket, origin: str) -> bool:
    """Whether ``origin`` is this server itself: the page it serves at ``/ui`` may open
    the socket from whatever host and port the operator reached it on."""
    host = websocket.headers.get("host")
    scheme = "https" if websocket.url.scheme == "wss" else "http"
    return host is not None and origin.lower() == f"{scheme}://{host}".lower()
