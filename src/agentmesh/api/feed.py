"""What drives the WebSocket pushes: the durable domain events, live heartbeats, metrics.

:class:`StoreFeed` tails the event store (global positions, from the head at start) and
turns agent, task and tenant events into ``agent_status_update``, ``task_update`` and
``system_event`` messages for the event's tenant. :func:`registry_listener` forwards the
live registry's status changes, and :class:`MetricsPusher` sends ``metrics_update`` to
tenants with ``metrics`` subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from agentmesh.api.ws import WebSocketHub, WsType
from agentmesh.domain.agent_events import (
    AgentCreatedEvent,
    AgentStatusChangedEvent,
)
from agentmesh.domain.approval_events import TaskApprovalEvent
from agentmesh.domain.events import DomainEvent, iso
from agentmesh.domain.task_events import TaskEvent
from agentmesh.domain.tenant_events import MessageRecordedEvent
from agentmesh.domain.values import AgentStatus
from agentmesh.errors import CorruptEventError
from agentmesh.store.base import EventReader
from agentmesh.store.sealing import SealedStore
from agentmesh.subjects import SYSTEM_TENANT

TASK_STATUS_BY_TOPIC = {
    "task.submitted": "submitted",
    "task.offered": "offered",
    "task.assigned": "assigned",
    "task.started": "running",
    "task.completed": "completed",
    "task.failed": "failed",
    "task.timed_out": "timed_out",
    "task.retrying": "retrying",
    "task.dead_lettered": "dead_lettered",
    "task.cancelled": "cancelled",
}


def event_to_ws(event: DomainEvent) -> tuple[str, WsType, dict[str, Any]] | None:
    """``(channel, type, data)`` for a domain event, or None when it is not pushed."""
    when = iso(event.occurred_at)
    if isinstance(event, AgentCreatedEvent):
        status: str = AgentStatus.AVAILABLE
    elif isinstance(event, AgentStatusChangedEvent):
        status = event.to_status
    else:
        status = ""
    if status:
        return (
            "agents",
            WsType.AGENT_STATUS_UPDATE,
            {
                "agent_id": event.aggregate_id,
                "status": status,
                "metadata": {"event_type": event.event_type},
                "timestamp": when,
            },
        )
    if isinstance(event, TaskEvent):
        body = event.to_dict()
        meta: dict[str, Any] = {"event_type": event.event_type}
        for key in ("error", "error_code", "attempt", "reason"):
            if key in body and body[key] not in (None, ""):
                meta[key] = body[key]
        return (
            "tasks",
            WsType.TASK_UPDATE,
            {
                "task_id": event.aggregate_id,
                "status": TASK_STATUS_BY_TOPIC.get(event.topic, event.topic),
                "agent_id": body.get("agent_id"),
                "metadata": meta,
                "timestamp": when,
            },
        )
    if isinstance(event, MessageRecordedEvent) or event.topic.startswith("agent."):
        return None
    return (
        "system",
        WsType.SYSTEM_EVENT,
        {"event_type": event.event_type, "data": event.to_dict(), "timestamp": when},
    )


def approval_ws(event: TaskApprovalEvent) -> dict[str, Any]:
    """The ``approval_update`` data of an approval event (``action``: requested,
    decided, escalated, reminded)."""
    body = {k: v for k, v in event.to_dict().items() if k != "conversation"}
    return {
        "action": event.topic.removeprefix("task.approval_"),
        "approval_id": body.get("approval_id"),
        "task_id": event.aggregate_id,
        "data": body,
        "timestamp": iso(event.occurred_at),
    }


class StoreFeed:
    """Tails an event store and publishes each new event to its tenant's subscribers."""

    def __init__(self, events: EventReader, hub: WebSocketHub, interval: float = 0.1) -> None:
        # nothing it pushes or observes carries a task's payload or result: it reads the
        # events as stored (still sealed), which saves a decryption per task event
        self.events: EventReader = events.inner if isinstance(events, SealedStore) else events
        self.hub = hub
        self.interval = interval
        self.position = 0
        self.observers: list[Callable[[str, DomainEvent], None]] = []  # see api/anomalies.py

    async def start_at_head(self) -> None:
        self.position = await self.events.head()

    async def poll(self) -> int:
        """Publish every event after the current position; returns how many were read."""
        page = await self.events.read_all(self.position + 1, 500)
        for stored in page:
            self.position = stored.position
            if stored.tenant_id == SYSTEM_TENANT:
                continue
            try:
                event = stored.decode()
            except CorruptEventError as exc:
                logger.warning("ws feed skips {}", exc)
                continue
            for observe in self.observers:
                observe(stored.tenant_id, event)
            if not self.hub.connections:
                continue  # nobody to push to (the common case under load)
            mapped = event_to_ws(event)
            if mapped is not None:
                channel, type, data = mapped
                self.hub.publish(stored.tenant_id, channel, type, data)
            if isinstance(event, TaskApprovalEvent):
                self.hub.publish(
                    stored.tenant_id, "approvals", WsType.APPROVAL_UPDATE, approval_ws(event)
                )
        return len(page)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                n = await self.poll()
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not end the feed
                logger.warning("ws feed: {}", exc)
                n = 0
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)


def registry_listener(hub: WebSocketHub) -> Callable[[Any, str | None, str], None]:
    """A :meth:`Registry.on_change` listener pushing live status changes."""

    def on_change(record: Any, old: str | None, new: str) -> None:
        hub.publish(
            record.tenant_id,
            "agents",
            WsType.AGENT_STATUS_UPDATE,
            {
                "agent_id": record.agent_id,
                "status": new,
                "metadata": {"source": "heartbeat", "from_status": old, "load": record.load},
            },
        )

    return on_change


class MetricsPusher:
    """Every ``interval`` seconds, a ``metrics_update`` to each tenant with subscribers."""

    def __init__(
        self,
        hub: WebSocketHub,
        provider: Callable[[str], Awaitable[dict[str, Any]]],
        interval: float = 10.0,
    ) -> None:
        self.hub = hub
        self.provider = provider
        self.interval = interval

    async def push_once(self) -> int:
        sent = 0
        for tenant in self.hub.subscribed_tenants("metrics"):
            try:
                data = await self.provider(tenant)
            except Exception as exc:  # noqa: BLE001 - one tenant's metrics failure must not stop the others' push
                logger.warning("metrics push for {}: {}", tenant, exc)
                continue
            sent += self.hub.publish(tenant, "metrics", WsType.METRICS_UPDATE, data)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if not stop.is_set():
                await self.push_once()
