"""Reply inboxes and subscription patterns of the Redis transport that a tenant's ACL user
(:mod:`agentmesh.security.redis_acl`) is granted.

* A requester ``SUBSCRIBE``\\ s one channel per tenant, ``_INBOX.<tenant>.<instance>``
  (``_INBOX.<instance>`` for subjects without a tenant); a reply address is that channel
  plus ``.<token>``, and the responder publishes to the channel with the token in the
  frame's reply field (:func:`reply_target`). An ACL user of tenant ``t`` holds
  ``&_INBOX.<t>.*``: it may listen and answer there, and nowhere else.
* Redis checks a ``PSUBSCRIBE`` pattern *literally* against the user's channel patterns, so
  a wildcard subscription of a tenant user subscribes the tenant's whole ``am.<t>.*``
  (:func:`psubscribe_pattern`); the transport already applies the subject rule
  client-side.
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


async def listen(r: Any, channel: str, on_message: Callable[[bytes], None]) -> asyncio.Task[None]:
    """``SUBSCRIBE channel`` on the client ``r`` and call ``on_message`` with each message's
    data until the returned task is cancelled."""
    ps = r.pubsub(ignore_subscribe_messages=True)
    await ps.subscribe(channel)

    async def read() -> None:
        try:
            while True:
                msg = await ps.get_message(timeout=1.0)
                if msg is not None:
                    on_message(msg["data"])
        finally:
            with contextlib.suppress(Exception):  # closing the listener; the link may be gone
                await ps.aclose()

    return asyncio.create_task(read())
