"""Anomalies of the live streams become ``system_event`` messages on ``/ws`` (channel
``system``, ``event_type`` ``anomaly.detected``) and audit entries (``anomaly_detected``).

The control plane's store feed hands every domain event to an
:class:`~agentmesh.observability.anomaly_watch.AnomalyWatch`; :func:`anomaly_loop` returns
the background loop that samples its per-tick streams and publishes what it raised.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from agentmesh.api.context import ApiContext
from agentmesh.api.feed import StoreFeed
from agentmesh.api.ws import WsType
from agentmesh.observability.anomaly_watch import Anomaly, AnomalyWatch, registry_gaps
from agentmesh.security.audit import AuditAction, AuditStatus


def anomaly_loop(
    feed: StoreFeed, ctx: ApiContext, registry: Any | None = None, interval: float = 0.5
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Wire an :class:`AnomalyWatch` to ``feed`` and return its loop (tick + publish)."""
    watch = AnomalyWatch(
        heartbeat_gaps=(lambda: registry_gaps(registry)) if registry is not None else None
    )
    feed.observers.append(watch.on_event)

    async def publish(a: Anomaly) -> None:
        data = a.to_dict()
        ctx.hub.publish(
            a.tenant_id,
            "system",
            WsType.SYSTEM_EVENT,
            {"event_type": "anomaly.detected", "data": data, "timestamp": a.at},
        )
        await ctx.record(
            AuditAction.ANOMALY_DETECTED,
            AuditStatus.SUCCESS,
            tenant_id=a.tenant_id,
            resource_type="stream",
            resource_id=a.stream,
            details=data,
        )

    watch.on_anomaly(publish)

    async def run(stop: asyncio.Event) -> None:
        ticks_per_sample = max(1, round(1.0 / interval))  # per-tick streams: once a second
        n = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            n += 1
            if n % ticks_per_sample == 0:
                watch.tick()
            await watch.flush()

    return run
