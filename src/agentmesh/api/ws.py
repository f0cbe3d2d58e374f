"""WebSocket ``/ws`` (spec 3.6): authenticated, tenant-scoped live updates.

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

Close codes: 1008 origin refused / authentication failed (before any data frame),
4001 too many connections (per user, per tenant or global), 4000 invalid message,
1011 pong timeout, 1000 idle past the connection timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from loguru import logger

from agentmesh.api.options import WsLimits
from agentmesh.errors import Unauthorized
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.rbac import allowed
from agentmesh.security.tenancy import Principal
from agentmesh.security.tokens import TokenService

CHANNELS = ("agents", "tasks", "system", "metrics")
CLOSE_POLICY = 1008
CLOSE_TOO_MANY = 4001
CLOSE_INVALID = 4000
CLOSE_FAILED = 1011
CLOSE_IDLE = 1000

AuditHook = Callable[..., Awaitable[None]]


class WsType(StrEnum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    PING = "ping"
    PONG = "pong"
    AUTH = "auth"
    AUTH_RESPONSE = "auth_response"
    ERROR = "error"
    AGENT_STATUS_UPDATE = "agent_status_update"
    TASK_UPDATE = "task_update"
    SYSTEM_EVENT = "system_event"
    METRICS_UPDATE = "metrics_update"
    NOTIFICATION = "notification"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


def new_message_id() -> str:
    return secrets.token_urlsafe(16)


def ws_message(
    type: WsType | str, data: dict[str, Any] | None = None, connection_id: str | None = None
) -> dict[str, Any]:
    """A server message envelope."""
    out: dict[str, Any] = {
        "type": str(type).lower(),
        "data": data if data is not None else {},
        "timestamp": datetime.now(UTC).isoformat(),
        "message_id": new_message_id(),
    }
    if connection_id is not None:
        out["connection_id"] = connection_id
    return out


@dataclass
class _Close:
    code: int
    reason: str


@dataclass(eq=False)
class Connection:
    """One authenticated client."""

    id: str
    websocket: WebSocket
    principal: Principal
    queue: asyncio.Queue[dict[str, Any] | _Close]
    subscriptions: set[tuple[str, str]] = field(default_factory=set)  # (tenant, channel)
    pending_ping: str | None = None
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0

    @property
    def user_key(self) -> tuple[str, str]:
        return (self.principal.tenant_id, self.principal.subject)


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
        for conn in list(self.connections.values()):
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(_Close(1001, reason))

    # -- lifecycle ---------------------------------------------------------------------
    async def _audit(self, action: AuditAction, status: AuditStatus, **kw: Any) -> None:
        if self.audit is not None:
            try:
                await self.audit(action, status, **kw)
            except Exception as exc:  # noqa: BLE001 - never let auditing break the socket
                logger.error("ws audit failed: {}", exc)

    async def handle(self, websocket: WebSocket) -> None:
        """Serve one client from handshake to close."""
        origin = websocket.headers.get("origin")
        if origin is not None and origin not in self.origins and not same_origin(websocket, origin):
            await websocket.close(CLOSE_POLICY, "Origin not allowed")
            return
        await websocket.accept()
        principal = await self._authenticate(websocket)
        if principal is None:
            return
        conn = self._register(websocket, principal)
        if conn is None:
            await self._audit(
                AuditAction.UNAUTHORIZED_ACCESS,
                AuditStatus.DENIED,
                tenant_id=principal.tenant_id,
                principal=principal,
                details={"reason": "too many websocket connections"},
            )
            await websocket.close(CLOSE_TOO_MANY, "Too many connections")
            return
        try:
            await self._serve(conn)
        finally:
            self._unregister(conn)

    async def _authenticate(self, websocket: WebSocket) -> Principal | None:
        token = websocket.query_params.get("token")
        try:
            if token is None:
                token = await self._auth_message(websocket)
            claims = self.tokens.verify(token)
        except (Unauthorized, TimeoutError, ValueError, WebSocketDisconnect) as exc:
            reason = exc.message if isinstance(exc, Unauthorized) else "authentication required"
            await self._audit(
                AuditAction.AUTH_FAILURE,
                AuditStatus.FAILURE,
                tenant_id="_system",
                details={"reason": reason, "channel": "websocket"},
            )
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close(CLOSE_POLICY, "Authentication failed")
            return None
        principal = Principal.from_claims(claims)
        await self._audit(
            AuditAction.AUTH_SUCCESS,
            AuditStatus.SUCCESS,
            tenant_id=principal.tenant_id,
            principal=principal,
            details={"channel": "websocket"},
        )
        return principal

    async def _auth_message(self, websocket: WebSocket) -> str:
        raw = await asyncio.wait_for(websocket.receive_text(), self.limits.auth_timeout)
        msg = _parse(raw)
        if msg is None or str(msg.get("type", "")).lower() != WsType.AUTH:
            raise ValueError("the first message must be auth")
        data = msg.get("data")
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str):
            raise ValueError("auth needs data.token")
        return token

    def _register(self, websocket: WebSocket, principal: Principal) -> Connection | None:
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

    async def _serve(self, conn: Connection) -> None:
        p = conn.principal
        conn.queue.put_nowait(
            ws_message(WsType.CONNECT, {"connection_id": conn.id, "status": "connected"}, conn.id)
        )
        conn.queue.put_nowait(
            ws_message(
                WsType.AUTH_RESPONSE,
                {"status": "authenticated", "user_id": p.subject, "tenant_id": p.tenant_id},
                conn.id,
            )
        )
        tasks = [
            asyncio.create_task(self._writer(conn)),
            asyncio.create_task(self._reader(conn)),
            asyncio.create_task(self._pinger(conn)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await conn.websocket.close(CLOSE_IDLE)

    async def _writer(self, conn: Connection) -> None:
        while True:
            item = await conn.queue.get()
            if isinstance(item, _Close):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await conn.websocket.close(item.code, item.reason)
                return
            await conn.websocket.send_text(orjson.dumps(item).decode())

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        # a close jumps the queue: drop pending data so the close goes out now
        while not conn.queue.empty():
            conn.queue.get_nowait()
        conn.queue.put_nowait(_Close(code, reason))

    async def _pinger(self, conn: Connection) -> None:
        while True:
            await asyncio.sleep(self.limits.ping_interval)
            ping = ws_message(WsType.PING, {}, conn.id)
            conn.pending_ping = ping["message_id"]
            conn.pong.clear()
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(ping)
            try:
                await asyncio.wait_for(conn.pong.wait(), self.limits.pong_timeout)
            except TimeoutError:
                self._close(conn, CLOSE_FAILED, "Pong timeout")
                await asyncio.sleep(self.limits.pong_timeout)  # let the writer close
                return

    async def _reader(self, conn: Connection) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(
                    conn.websocket.receive_text(), self.limits.connection_timeout
                )
            except TimeoutError:
                self._close(conn, CLOSE_IDLE, "Connection timeout")
                await asyncio.sleep(1.0)
                return
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            msg = _parse(raw)
            if msg is None or not isinstance(msg.get("type"), str):
                self._close(conn, CLOSE_INVALID, "Invalid message")
                await asyncio.sleep(1.0)
                return
            await self._on_message(conn, msg)

    def _send(self, conn: Connection, type: WsType, data: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait(ws_message(type, data, conn.id))

    async def _on_message(self, conn: Connection, msg: dict[str, Any]) -> None:
        kind = str(msg["type"]).lower()
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        assert isinstance(data, dict)
        if kind == WsType.PONG:
            echoed = data.get("message_id", msg.get("message_id"))
            if conn.pending_ping is not None and echoed == conn.pending_ping:
                conn.pending_ping = None
                conn.pong.set()
        elif kind == WsType.PING:
            self._send(conn, WsType.PONG, {"message_id": msg.get("message_id")})
        elif kind in (WsType.SUBSCRIBE, WsType.UNSUBSCRIBE):
            await self._subscription(conn, kind, data)
        elif kind == WsType.AUTH:
            self._send(
                conn,
                WsType.ERROR,
                {"error": "already authenticated", "code": "ALREADY_AUTHENTICATED"},
            )
        else:
            self._send(
                conn,
                WsType.ERROR,
                {"error": f"unknown message type {kind!r}", "code": "UNKNOWN_TYPE"},
            )

    async def _subscription(self, conn: Connection, kind: str, data: dict[str, Any]) -> None:
        p = conn.principal
        channel = data.get("channel")
        tenant = data.get("tenant_id", p.tenant_id)
        if channel not in CHANNELS or not isinstance(tenant, str):
            self._send(
                conn,
                WsType.ERROR,
                {
                    "error": f"channel must be one of {', '.join(CHANNELS)}",
                    "code": "INVALID_CHANNEL",
                },
            )
            return
        if kind == WsType.UNSUBSCRIBE:
            conn.subscriptions.discard((tenant, channel))
            self._send(
                conn,
                WsType.NOTIFICATION,
                {"action": "unsubscribed", "channel": channel, "tenant_id": tenant},
            )
            return
        reason = None
        if not allowed(p.roles, f"ws:{channel}"):
            reason, code = "role", "FORBIDDEN"
        elif not p.can_access_tenant(tenant):
            reason, code = "cross-tenant", "TENANT_FORBIDDEN"
        if reason is not None:
            await self._audit(
                AuditAction.UNAUTHORIZED_ACCESS,
                AuditStatus.DENIED,
                tenant_id=tenant if reason == "cross-tenant" else p.tenant_id,
                principal=p,
                details={"operation": f"ws:{channel}", "reason": reason, "channel": "websocket"},
            )
            self._send(
                conn,
                WsType.ERROR,
                {"error": f"not allowed to subscribe to {channel}", "code": code},
            )
            return
        conn.subscriptions.add((tenant, channel))
        self._send(
            conn,
            WsType.NOTIFICATION,
            {"action": "subscribed", "channel": channel, "tenant_id": tenant},
        )


def same_origin(websocket: WebSocket, origin: str) -> bool:
    """Whether ``origin`` is this server itself: the page it serves at ``/ui`` may open
    the socket from whatever host and port the operator reached it on."""
    host = websocket.headers.get("host")
    scheme = "https" if websocket.url.scheme == "wss" else "http"
    return host is not None and origin.lower() == f"{scheme}://{host}".lower()


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
