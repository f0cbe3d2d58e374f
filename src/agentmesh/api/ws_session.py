"""One WebSocket client of ``/ws``: authentication at the handshake, then a writer, a
reader and a pinger per connection, and the handling of client messages (pong, ping,
subscribe, unsubscribe). The registry of connections is :class:`agentmesh.api.ws.WebSocketHub`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from loguru import logger

from agentmesh.api.options import WsLimits
from agentmesh.api.ws_protocol import (
    CHANNELS,
    CLOSE_FAILED,
    CLOSE_IDLE,
    CLOSE_INVALID,
    CLOSE_POLICY,
    CLOSE_TOO_BIG,
    Close,
    WsType,
    parse,
    ws_message,
)
from agentmesh.errors import Unauthorized
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.rbac import allowed
from agentmesh.security.tenancy import Principal
from agentmesh.security.tokens import Claims, TokenService

AuditHook = Callable[..., Awaitable[None]]


@dataclass(eq=False)
class Connection:
    """One authenticated client."""

    id: str
    websocket: WebSocket
    principal: Principal
    queue: asyncio.Queue[dict[str, Any] | Close]
    subscriptions: set[tuple[str, str]] = field(default_factory=set)  # (tenant, channel)
    pending_ping: str | None = None
    pong: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: int = 0
    claims: Claims | None = None
    """The token the socket authenticated with (its expiry and revocation end the session)."""

    @property
    def user_key(self) -> tuple[str, str]:
        """``(tenant_id, subject)``: the key of the per-user connection limit."""
        return (self.principal.tenant_id, self.principal.subject)


async def audit_safely(
    audit: AuditHook | None, action: AuditAction, status: AuditStatus, **kw: Any
) -> None:
    """Record an audit entry through ``audit`` (if any); a failure is logged, not raised."""
    if audit is not None:
        try:
            await audit(action, status, **kw)
        except Exception as exc:  # noqa: BLE001 - never let auditing break the socket
            logger.error("ws audit failed: {}", exc)


async def authenticate(
    websocket: WebSocket, tokens: TokenService, limits: WsLimits, audit: AuditHook | None
) -> Claims | None:
    """The claims of an accepted socket's token, from ``?token=`` or a first ``auth`` message.

    On failure the attempt is audited, the socket closed with 1008 and ``None`` returned.
    """
    token = websocket.query_params.get("token")
    try:
        if token is None:
            token = await _auth_message(websocket, limits.auth_timeout)
        claims = tokens.verify(token)
    except (Unauthorized, TimeoutError, ValueError, WebSocketDisconnect) as exc:
        reason = exc.message if isinstance(exc, Unauthorized) else "authentication required"
        await audit_safely(
            audit,
            AuditAction.AUTH_FAILURE,
            AuditStatus.FAILURE,
            tenant_id="_system",
            details={"reason": reason, "channel": "websocket"},
        )
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(CLOSE_POLICY, "Authentication failed")
        return None
    principal = Principal.from_claims(claims)
    await audit_safely(
        audit,
        AuditAction.AUTH_SUCCESS,
        AuditStatus.SUCCESS,
        tenant_id=principal.tenant_id,
        principal=principal,
        details={"channel": "websocket"},
    )
    return claims


async def _auth_message(websocket: WebSocket, timeout: float) -> str:
    raw = await asyncio.wait_for(websocket.receive_text(), timeout)
    msg = parse(raw)
    if msg is None or str(msg.get("type", "")).lower() != WsType.AUTH:
        raise ValueError("the first message must be auth")
    data = msg.get("data")
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str):
        raise ValueError("auth needs data.token")
    return token


class Session:
    """Serves one registered :class:`Connection` until it closes."""

    def __init__(
        self,
        conn: Connection,
        limits: WsLimits,
        audit: AuditHook | None,
        tokens: TokenService | None = None,
    ) -> None:
        self.conn = conn
        self.limits = limits
        self.audit = audit
        self.tokens = tokens

    async def serve(self) -> None:
        """Greet the client, then run writer, reader and pinger until one of them ends."""
        conn, p = self.conn, self.conn.principal
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
            asyncio.create_task(self._writer()),
            asyncio.create_task(self._reader()),
            asyncio.create_task(self._pinger()),
            asyncio.create_task(self._token_watch()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            # wait, not gather: a cancelled gather re-raises a child's CancelledError, which
            # hides the caller's own cancellation (anyio then fails to recognise its scope's)
            await asyncio.wait(tasks)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await conn.websocket.close(CLOSE_IDLE)

    async def _writer(self) -> None:
        conn = self.conn
        while True:
            item = await conn.queue.get()
            if isinstance(item, Close):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await conn.websocket.close(item.code, item.reason)
                return
            await conn.websocket.send_text(orjson.dumps(item).decode())

    def _close(self, code: int, reason: str) -> None:
        # a close jumps the queue: drop pending data so the close goes out now
        queue = self.conn.queue
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(Close(code, reason))

    async def _pinger(self) -> None:
        conn = self.conn
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
                self._close(CLOSE_FAILED, "Pong timeout")
                await asyncio.sleep(self.limits.pong_timeout)  # let the writer close
                return

    async def _token_watch(self) -> None:
        """Close 1008 when the token expires or is revoked (checked every few seconds)."""
        claims, tokens = self.conn.claims, self.tokens
        if claims is None or tokens is None:
            await asyncio.Event().wait()  # nothing to watch: run until the session ends
            return
        while True:
            left = claims.expires_at.timestamp() - tokens.clock()
            if left <= 0:
                reason = "Token expired"
                break
            if tokens.deny.token_revoked(claims.token_id) or tokens.deny.key_revoked(tokens.key_id):
                reason = "Token revoked"
                break
            await asyncio.sleep(min(left, self.limits.token_check_interval))
        await audit_safely(
            self.audit,
            AuditAction.AUTH_FAILURE,
            AuditStatus.FAILURE,
            tenant_id=self.conn.principal.tenant_id,
            principal=self.conn.principal,
            details={"reason": reason.lower(), "channel": "websocket"},
        )
        self._close(CLOSE_POLICY, reason)
        await asyncio.sleep(1.0)  # let the writer send the close

    async def _reader(self) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(
                    self.conn.websocket.receive_text(), self.limits.connection_timeout
                )
            except TimeoutError:
                self._close(CLOSE_IDLE, "Connection timeout")
                await asyncio.sleep(1.0)
                return
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            if len(raw.encode()) > self.limits.max_frame_bytes:
                self._close(CLOSE_TOO_BIG, "Message too big")
                await asyncio.sleep(1.0)
                return
            msg = parse(raw)
            if msg is None or not isinstance(msg.get("type"), str):
                self._close(CLOSE_INVALID, "Invalid message")
                await asyncio.sleep(1.0)
                return
            await self._on_message(msg)

    def _send(self, type: WsType, data: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.conn.queue.put_nowait(ws_message(type, data, self.conn.id))

    async def _on_message(self, msg: dict[str, Any]) -> None:
        conn = self.conn
        kind = str(msg["type"]).lower()
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        assert isinstance(data, dict)
        if kind == WsType.PONG:
            echoed = data.get("message_id", msg.get("message_id"))
            if conn.pending_ping is not None and echoed == conn.pending_ping:
                conn.pending_ping = None
                conn.pong.set()
        elif kind == WsType.PING:
            self._send(WsType.PONG, {"message_id": msg.get("message_id")})
        elif kind in (WsType.SUBSCRIBE, WsType.UNSUBSCRIBE):
            await self._subscription(kind, data)
        elif kind == WsType.AUTH:
            self._send(
                WsType.ERROR, {"error": "already authenticated", "code": "ALREADY_AUTHENTICATED"}
            )
        else:
            self._send(
                WsType.ERROR, {"error": f"unknown message type {kind!r}", "code": "UNKNOWN_TYPE"}
            )

    async def _subscription(self, kind: str, data: dict[str, Any]) -> None:
        conn, p = self.conn, self.conn.principal
        channel = data.get("channel")
        tenant = data.get("tenant_id", p.tenant_id)
        if channel not in CHANNELS or not isinstance(tenant, str):
            self._send(
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
            await audit_safely(
                self.audit,
                AuditAction.UNAUTHORIZED_ACCESS,
                AuditStatus.DENIED,
                tenant_id=tenant if reason == "cross-tenant" else p.tenant_id,
                principal=p,
                details={"operation": f"ws:{channel}", "reason": reason, "channel": "websocket"},
            )
            self._send(
                WsType.ERROR, {"error": f"not allowed to subscribe to {channel}", "code": code}
            )
            return
        conn.subscriptions.add((tenant, channel))
        self._send(
            WsType.NOTIFICATION,
            {"action": "subscribed", "channel": channel, "tenant_id": tenant},
        )
