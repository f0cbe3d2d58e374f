"""How AgentMesh subjects and envelopes map onto SNS topics and SQS messages: topic and
queue names, FIFO group and dedupe ids, subscription filter policies, message bodies and
the delivery of one received SQS message (pure mapping plus the per-message handle)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import math
import re
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from loguru import logger

from agentmesh.transports.broker import (
    background,
    pattern_tenant,
)

if TYPE_CHECKING:
    from agentmesh.transports.sqs import SqsTransport

SNS_MAX_MESSAGE = 256 * 1024
MAX_PAYLOAD = SNS_MAX_MESSAGE - 2048  # room for the message attributes
LONG_POLL = 1  # seconds; short, so FIFO group locks seen by a poll are never stale for long
CORE_RETENTION = 60  # seconds a core queue keeps messages nobody reads (the SQS minimum)
BUSY_POLL = 0.02
_UNSAFE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
NETWORK_ERRORS = (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)


def digest(text: str, size: int = 8) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def safe_name(name: str, limit: int) -> str:
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if clean != name or len(clean) > limit:
        clean = f"{clean[: max(limit - 17, 1)]}-{digest(name)}"
    return clean


def topic_name(tenant: str) -> str:
    """The FIFO SNS topic of a tenant."""
    return f"am-{safe_name(tenant, 240)}.fifo"


def group_id(subject: str) -> str:
    """``MessageGroupId`` of a subject (the subject itself when it fits)."""
    return subject if len(subject) <= 128 else f"{subject[:100]}~{digest(subject)}"


def dedupe_id(subject: str, msg_id: str) -> str:
    """``MessageDeduplicationId``: the envelope id, scoped to the subject."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', msg_id)[:100]}-{digest(subject)}"


def filter_policy(pattern: str) -> dict[str, Any] | None:
    """SNS filter policy on the ``s`` attribute for a NATS-style pattern (None = everything)."""
    if "*" not in pattern and ">" not in pattern:
        return {"s": [pattern]}
    literal: list[str] = []
    for token in pattern.split("."):
        if token in ("*", ">"):
            break
        literal.append(token)
    prefix = ".".join(literal) + "."
    return {"s": [{"prefix": prefix}]} if len(literal) > 2 else None


def tenant_of_pattern(pattern: str) -> str:
    why = "topics are per tenant, so the tenant must be concrete"
    return pattern_tenant(pattern, "SNS/SQS transport", why)


def encode_body(data: bytes) -> tuple[str, bool]:
    """The SNS message text for ``data`` and whether it had to be base64-encoded."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode(), True
    if _UNSAFE.search(text) or not text:
        return base64.b64encode(data).decode(), True
    return text, False


def attribute(msg: dict[str, Any], name: str) -> str | None:
    value = (msg.get("MessageAttributes") or {}).get(name)
    return None if value is None else str(value.get("StringValue"))


def decode_body(msg: dict[str, Any]) -> bytes:
    body = str(msg.get("Body", ""))
    if attribute(msg, "enc") == "b64":
        return base64.b64decode(body)
    return body.encode("utf-8")


class QueueRaw:
    """A durable SQS delivery: hidden for ``ack_wait`` until deleted or made visible again."""

    __slots__ = (
        "_done",
        "_handle",
        "_later",
        "_q",
        "_t",
        "_wait",
        "attempt",
        "data",
        "reply",
        "subject",
    )

    def __init__(
        self, t: SqsTransport, queue_url: str, msg: dict[str, Any], ack_wait: float
    ) -> None:
        self._t = t
        self._q = queue_url
        self._handle = str(msg["ReceiptHandle"])
        self._wait = ack_wait
        self._done = False
        self._later: asyncio.TimerHandle | None = None
        self.subject = attribute(msg, "s") or ""
        self.data = decode_body(msg)
        self.reply: str | None = None
        count = (msg.get("Attributes") or {}).get("ApproximateReceiveCount", "1")
        self.attempt = max(int(count), 1)

    async def _visibility(self, seconds: int) -> None:
        with contextlib.suppress(ClientError, *NETWORK_ERRORS):
            await self._t.sqs.change_message_visibility(
                QueueUrl=self._q, ReceiptHandle=self._handle, VisibilityTimeout=seconds
            )

    async def ack(self) -> None:
        if self._done:
            return
        self._done = True
        if self._later is not None:
            self._later.cancel()
        try:
            await self._t.sqs.delete_message(QueueUrl=self._q, ReceiptHandle=self._handle)
        except (ClientError, *NETWORK_ERRORS) as exc:  # it comes back after ack_wait
            logger.warning("SQS delete on {} failed: {}", self._q, exc)

    async def term(self) -> None:
        await self.ack()

    async def nak(self, delay: float | None = None) -> None:
        if self._done:
            return
        self._done = True
        wait = max(delay or 0.0, 0.0)
        # visibility is whole seconds: hide for the rounded-up delay, then reveal on time
        await self._visibility(math.ceil(wait))
        if wait != math.ceil(wait):
            self._later = asyncio.get_running_loop().call_later(
                wait, lambda: background(self._visibility(0))
            )

    async def in_progress(self) -> None:
        if not self._done:
            await self._visibility(max(math.ceil(self._wait), 1))
