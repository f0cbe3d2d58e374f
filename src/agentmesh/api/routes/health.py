"""``/health``, ``/health/ready``, ``/metrics`` (Prometheus text) and ``/v1/metrics``."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.schemas import (
    ComponentStatus,
    HealthResponse,
    MetricsResponse,
    PerformanceMetrics,
    ReadyResponse,
)
from agentmesh.observability.metrics import exposition

router = APIRouter(tags=["health"])
_STARTED = time.monotonic()


@router.get("/health", response_model=HealthResponse, operation_id="health")
async def health() -> HealthResponse:
    """Liveness: the process answers."""
    return HealthResponse(uptime=time.monotonic() - _STARTED)


async def _store_status(ctx: ApiContext) -> ComponentStatus:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(ctx.persistence.store.head(), 5)
    except Exception as exc:  # noqa: BLE001 - a health probe reports any failure as "down"
        return ComponentStatus(status="down", detail=f"{type(exc).__name__}: {exc}"[:200])
    return ComponentStatus(status="ok", latency_ms=round((time.perf_counter() - start) * 1000, 2))


async def _broker_status(ctx: ApiContext) -> ComponentStatus:
    if ctx.mesh is None:
        return ComponentStatus(status="absent", detail="no broker attached to this control plane")
    try:
        rtt = await asyncio.wait_for(ctx.mesh.transport.ping(), 5)
    except Exception as exc:  # noqa: BLE001 - a health probe reports any failure as "down"
        return ComponentStatus(status="down", detail=f"{type(exc).__name__}: {exc}"[:200])
    return ComponentStatus(status="ok", latency_ms=round(float(rtt) * 1000, 2))


@router.get(
    "/health/ready",
    response_model=ReadyResponse,
    operation_id="health_ready",
    responses={503: {"model": ReadyResponse, "description": "The store is down"}},
)
async def ready(ctx: ApiContext = Depends(get_context)) -> JSONResponse:
    """Readiness per component: ``store`` (required) and ``broker`` (when attached)."""
    store, broker = await asyncio.gather(_store_status(ctx), _broker_status(ctx))
    components = {"store": store, "broker": broker}
    if store.status != "ok":
        status = "unhealthy"
    elif broker.status == "down":
        status = "degraded"
    else:
        status = "healthy"
    body = ReadyResponse(status=status, components=components)
    return JSONResponse(
        body.model_dump(mode="json"), status_code=503 if status == "unhealthy" else 200
    )


@router.get(
    "/metrics",
    operation_id="prometheus_metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
async def prometheus(request: Request) -> Response:
    """Every ``agentmesh_*`` metric in the Prometheus text format (OpenMetrics, with
    exemplars, when the ``Accept`` header asks for it)."""
    body, content_type = exposition(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)


@router.get(
    "/v1/metrics",
    response_model=MetricsResponse,
    operation_id="get_metrics",
    responses=responses(500),
)
async def v1_metrics(ctx: ApiContext = Depends(get_context)) -> MetricsResponse:
    """Mesh-wide totals (no per-tenant data): live agents, recorded messages, requests."""
    if ctx.mesh is not None and getattr(ctx.mesh, "registry", None) is not None:
        agents = len(ctx.mesh.registry.snapshot())
    else:
        agents = await ctx.persistence.read_models.count_all_agents()
    messages = await ctx.persistence.read_models.count_messages()
    return MetricsResponse(
        agent_count=agents,
        messages_processed=messages,
        uptime=time.time() - ctx.started_at,
        performance_metrics=PerformanceMetrics(
            requests_total=ctx.stats.requests_total, throughput=round(ctx.stats.throughput, 3)
        ),
    )
