"""The optional per-tenant approval webhook: the control plane POSTs every approval event
(requested, decided, escalated, reminded) of a tenant whose policy names a webhook.

The body is the event's JSON (without the conversation). Headers::

    X-AgentMesh-Event: task.approval_decided
    X-AgentMesh-Timestamp: 1767052800
    X-AgentMesh-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

The HMAC key is the tenant's own, derived from the control plane's secret
(:func:`webhook_key`; ``agentmesh approval webhook-key`` prints it for the receiver).
Before each POST the URL passes :func:`agentmesh.security.ssrf.check_public_url`, so a
private, loopback, link-local or cloud-metadata address is refused unless the policy
says ``allow_private: true``. Delivery is best effort (a few tries with backoff); the
audit trail, not the webhook, is the record.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from loguru import logger

from agentmesh import subjects
from agentmesh.errors import AgentMeshError, UnsafeUrl
from agentmesh.safety.approval_rules import ApprovalPolicy
from agentmesh.security.ssrf import check_public_url
from agentmesh.transports import Message, SubscribeOptions, Subscription, Transport

TOPICS = (
    "task.approval_requested",
    "task.approval_decided",
    "task.approval_escalated",
    "task.approval_reminded",
)
WEBHOOK_GROUP = "controlplane-approval-webhook"
TRIES = 3

PolicyOf = Callable[[str], Awaitable[ApprovalPolicy]]


def webhook_key(secret: str, tenant: str) -> bytes:
    """The tenant's HMAC key: HMAC-SHA256(``secret``, ``approval-webhook:<tenant>``)."""
    return hmac.new(secret.encode(), f"approval-webhook:{tenant}".encode(), hashlib.sha256).digest()


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``<timestamp>.<body>`` (what a receiver recomputes)."""
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


class ApprovalWebhook:
    """Posts the approval events of tenants with a webhook (see the module doc)."""

    def __init__(self, transport: Transport, policy_of: PolicyOf, secret: str) -> None:
        self.transport = transport
        self.policy_of = policy_of
        self.secret = secret
        self._subs: list[Subscription] = []
        self.sent = 0
        self.refused = 0
        self.failed = 0

    async def start(self) -> None:
        opts = SubscribeOptions(max_in_flight=16, dead_letter=False)
        for topic in TOPICS:
            self._subs.append(
                await self.transport.subscribe(
                    subjects.events_of(topic), self._on_event, queue=WEBHOOK_GROUP, options=opts
                )
            )

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs.clear()

    async def _on_event(self, msg: Message) -> None:
        env = msg.envelope
        tenant = env.tenant_id
        try:
            hook = (await self.policy_of(tenant)).webhook
        except AgentMeshError as exc:
            logger.warning("approval webhook of {}: no policy: {}", tenant, exc)
            return
        if hook is None:
            return
        event = {k: v for k, v in env.payload.items() if k != "conversation"}
        await self.deliver(tenant, hook.url, hook.allow_private, str(env.type), event)

    async def deliver(
        self, tenant: str, url: str, allow_private: bool, topic: str, event: dict[str, Any]
    ) -> bool:
        """POST one event; False when refused (unsafe URL) or every try failed."""
        import httpx

        try:
            await asyncio.to_thread(check_public_url, url, allow_private=allow_private)
        except UnsafeUrl as exc:
            self.refused += 1
            logger.warning("approval webhook of {} refused: {}", tenant, exc)
            return False
        body = orjson.dumps({"tenant_id": tenant, "event": topic, "data": event})
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-AgentMesh-Event": topic,
            "X-AgentMesh-Timestamp": timestamp,
            "X-AgentMesh-Signature": sign(webhook_key(self.secret, tenant), timestamp, body),
        }
        async with httpx.AsyncClient(timeout=5, follow_redirects=False) as client:
            for attempt in range(TRIES):
                try:
                    r = await client.post(url, content=body, headers=headers)
                    if r.status_code < 300:
                        self.sent += 1
                        return True
                    logger.warning("approval webhook of {}: HTTP {}", tenant, r.status_code)
                except httpx.HTTPError as exc:
                    logger.warning("approval webhook of {}: {}", tenant, exc)
                await asyncio.sleep(0.2 * 2**attempt)
        self.failed += 1
        return False


__all__ = ["ApprovalWebhook", "sign", "webhook_key"]
