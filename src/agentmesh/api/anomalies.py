"""Anomalies of the live streams become ``system_event`` messages on ``/ws`` (channel
``system``, ``event_type`` ``anomaly.detected``) and audit entries (``anomaly_detected``);
``GET /v1/tenants/{tenant_id}/metrics/history`` serves the tenant's figures of the last
15 minutes (one point a second) that the UI charts draw.

The control plane's store feed hands every domain event to an
:class:`~agentmesh.observability.anomaly_watch.AnomalyWatch`; :func:`anomaly_loop` returns
the background loop that samples its per-tick streams and publishes what it raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from agentmesh import ids
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.feed import StoreFeed
from agentmesh.api.ws import WsType
from agentmesh.observability.anomaly_watch import Anomaly, AnomalyWatch, registry_gaps
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

_watches: weakref.WeakValueDictionary[int, AnomalyWatch] = weakref.WeakValueDictionary()
router = APIRouter(tags=["metrics"])


class HistoryPoint(BaseModel):
    """One second of a tenant's figures."""

    t: float
    completed: int
    failed: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    queue_depth: int
    anomalies: list[str]


class HistoryResponse(BaseModel):
    """The tenant's points of the last 15 minutes, oldest first."""

    tenant_id: str
    points: list[HistoryPoint]


@router.get(
    "/v1/tenants/{tenant_id}/metrics/history",
    response_model=HistoryResponse,
    operation_id="get_metrics_history",
    responses=responses(401, 403, 422),
)
async def metrics_history(
    tenant_id: Annotated[str, Path(pattern=ids.TENANT_ID.pattern)],
    principal: Principal = Depends(require("get_metrics_history")),
    ctx: ApiContext = Depends(get_context),
) -> HistoryResponse:
    """Throughput, latency p50/p99, queue depth, failures and anomalies, per second."""
    watch = _watches.get(id(ctx))
    points = watch.history(tenant_id) if watch is not None else []
    return HistoryResponse(tenant_id=tenant_id, points=[HistoryPoint(**p) for p in points])


def anomaly_loop(
    feed: StoreFeed,
    ctx: ApiContext,
    registry: Any | None = None,
    interval: float = 0.5,
    leading: Callable[[], bool] | None = None,
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Wire an :class:`AnomalyWatch` to ``feed`` and return its loop (tick + publish).

    Every replica pushes its anomalies to its own ``/ws`` clients; only the one for which
    ``leading`` returns True (the plane's leader) audits them, once."""
    watch = AnomalyWatch(
        heartbeat_gaps=(lambda: registry_gaps(registry)) if registry is not None else None
    )
    feed.observers.append(watch.on_event)
    _watches[id(ctx)] = watch

    async def publish(a: Anomaly) -> None:
        data = a.to_dict()
        # audited before it is announced: a client that reads the audit log on the WS
        # message finds the entry
        if leading is None or leading():
            await ctx.record(
                AuditAction.ANOMALY_DETECTED,
                AuditStatus.SUCCESS,
                tenant_id=a.tenant_id,
                resource_type="stream",
                resource_id=a.stream,
                details=data,
            )
        ctx.hub.publish(
            a.tenant_id,
            "system",
            WsType.SYSTEM_EVENT,
            {"event_type": "anomaly.detected", "data": data, "timestamp": a.at},
        )

    watch.on_anomaly(publish)

    async def run(stop: asyncio.Event) -> None:
        ticks_per_sample = max(1, round(1.0 / interval))  # per-tick streams: once a second
        _watches[id(ctx)] = watch  # held while the loop runs
        n = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            n += 1
            if n % ticks_per_sample == 0:
                watch.tick()
            await watch.flush()

    return run
