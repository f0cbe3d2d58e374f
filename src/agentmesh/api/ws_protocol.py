"""The wire format of WebSocket ``/ws``: message types, close codes, the server envelope
and parsing of client frames. No I/O."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

CHANNELS = ("agents", "tasks", "system", "metrics", "approvals")
CLOSE_POLICY = 1008
CLOSE_TOO_MANY = 4001
CLOSE_INVALID = 4000
CLOSE_FAILED = 1011
CLOSE_IDLE = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
MAX_FRAME_BYTES = 64 * 1024
"""A client frame larger than this closes the socket with 1009 (message too big)."""


class WsType(StrEnum):
    """Message types; accepted in any case, always emitted lowercase."""

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
    APPROVAL_UPDATE = "approval_update"  # channel ``approvals``: requested, decided ...
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


def new_message_id() -> str:
    """A random, URL-safe message id."""
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
class Close:
    """A queued instruction to close the socket with ``code`` and ``reason``."""

    code: int
    reason: str


def parse(raw: str) -> dict[str, Any] | None:
    """A client frame as a JSON object, or ``None`` when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
