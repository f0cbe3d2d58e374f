"""Reply inboxes, wire frames and subscription patterns of the Redis transport that a
tenant's ACL user (:mod:`agentmesh.security.redis_acl`) is granted.

* A requester ``SUBSCRIBE``\\ s one channel per tenant, ``_INBOX.<tenant>.<instance>``
  (``_INBOX.<instance>`` for subjects without a tenant); a reply address is that channel
  plus ``.<token>``, and the responder publishes to the channel with the token in the
  frame's reply field (:func:`reply_target`). An ACL user of tenant ``t`` holds
  ``&_INBOX.<t>.*``: it may listen and answer there, and nowhere else.
* Redis checks a ``PSUBSCRIBE`` pattern *literally* against the user's channel patterns, so
  a wildcard subscription of a tenant user subscribes the tenant's whole ``am.<t>.*``
  (:func:`psubscribe_pattern`); the transport already applies the subject rule
  client-side.
* A subscription is live once Redis confirmed its ``(P)SUBSCRIBE`` (:func:`confirmed`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from agentmesh import subjects


def inbox_channel(tenant: str | None, instance: str) -> str:
    """The reply channel of a transport ``instance`` for the requests of ``tenant``."""
    return f"_INBOX.{tenant}.{instance}" if tenant else f"_INBOX.{instance}"


def reply_target(reply: str) -> tuple[str, str]:
    """``(channel, token)`` of a reply address ``<channel>.<token>``."""
    channel, _, token = reply.rpartition(".")
    return channel, token


def frame(data: bytes, reply: str | None) -> bytes:
    """Core wire frame: the bytes themselves, or ``\\0<reply>\\0<bytes>`` with a reply."""
    if reply is None and not data.startswith(b"\0"):
        return data
    return b"\0" + (reply or "").encode() + b"\0" + data


def unframe(raw: bytes) -> tuple[bytes, str | None]:
    if not raw.startswith(b"\0"):
        return raw, None
    end = raw.index(b"\0", 1)
    reply = raw[1:end].decode()
    return raw[end + 1 :], reply or None


def is_acl_user(url: str) -> bool:
    """True when ``url`` names a Redis user other than ``default`` (a tenant's ACL user)."""
    user = urlsplit(url).username
    return bool(user) and user != "default"


def psubscribe_pattern(pattern: str, *, acl_user: bool) -> str:
    """The glob pattern to ``PSUBSCRIBE`` for the subject pattern ``pattern``."""
    tenant = subjects.tenant_of(pattern)
    if acl_user and tenant is not None:
        return f"{subjects.PREFIX}.{tenant}.*"
    return ".".join("*" if t in ("*", ">") else t for t in pattern.split("."))


DATA_TYPES = ("message", "pmessage")
"""Pub/sub frames that carry a published message (the rest confirm (un)subscribes)."""


async def confirmed(ps: Any, count: int, timeout: float) -> list[dict[str, Any]]:
    """Wait until the server has confirmed ``count`` ``(P)SUBSCRIBE`` commands sent on ``ps`` (a
    ``PubSub`` that keeps subscribe frames); return the messages that came meanwhile.

    ``subscribe()`` only sends the command: until its confirmation arrives the server may
    not yet route a publish to this connection. Raises ``TimeoutError`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    early: list[dict[str, Any]] = []
    while count > 0:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"no subscribe confirmation within {timeout:g}s")
        msg = await ps.get_message(timeout=left)
        if msg is None:
            continue
        if msg["type"] in DATA_TYPES:
            early.append(msg)
        elif msg["type"] in ("subscribe", "psubscribe"):
            count -= 1
    return early


async def listen(
    r: Any, channel: str, on_message: Callable[[bytes], None], timeout: float
) -> asyncio.Task[None]:
    """``SUBSCRIBE channel`` on the client ``r`` and, once the server confirmed it (within
    ``timeout``), call ``on_message`` with each message's data until the returned task is
    cancelled."""
    ps = r.pubsub()
    await ps.subscribe(channel)
    try:
        early = await confirmed(ps, 1, timeout)
    except BaseException:
        with contextlib.suppress(Exception):  # giving up on the listener; the link may be gone
            await ps.aclose()
        raise

    async def read() -> None:
        try:
            for msg in early:
                on_message(msg["data"])
            while True:
                msg = await ps.get_message(timeout=1.0)
                if msg is not None and msg["type"] in DATA_TYPES:
                    on_message(msg["data"])
        finally:
            with contextlib.suppress(Exception):  # closing the listener; the link may be gone
                await ps.aclose()

    return asyncio.create_task(read())
