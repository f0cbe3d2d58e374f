"""The control plane application: ``agentmesh.api.fastapi_app:app``.

:func:`create_app` builds an app with injected dependencies; nothing touches the disk,
the database or the broker before the lifespan starts::

    app = create_app(settings, mesh=mesh)            # as ``agentmesh up`` does
    uvicorn.run(app, host=settings.api_host, port=settings.api_port)

The lifespan opens the store (``DATABASE_URL``), the audit store, the token service and
the WebSocket hub, and runs the background loops: projector (which also appends the
domain events' audit entries, :class:`~agentmesh.store.audit_trail.AuditTrail`), store
feed (WebSocket pushes), metrics pushes and, when a mesh is attached, the outbox relay
to its broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, WebSocket
from fastapi.openapi.utils import get_openapi
from loguru import logger
from starlette.middleware.gzip import GZipMiddleware

from agentmesh.api.anomalies import anomaly_loop
from agentmesh.api.anomalies import router as anomalies_router
from agentmesh.api.context import ApiContext
from agentmesh.api.errors import (
    DESCRIPTIONS,
    install_error_handlers,
    reject_unexpected_body,
    reject_unknown_query,
)
from agentmesh.api.feed import MetricsPusher, StoreFeed, registry_listener
from agentmesh.api.middleware import (
    BodyLimitMiddleware,
    CorsMiddleware,
    RequestContextMiddleware,
    RequestStats,
    VersionMiddleware,
)
from agentmesh.api.options import API_VERSION, DEFAULT_RATE_LIMIT, ApiOptions, SecurityLevel
from agentmesh.api.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from agentmesh.api.ratelimit_edge import RateLimitMiddleware
from agentmesh.api.routes import (
    agents,
    approvals,
    asyncapi,
    audit,
    clusters,
    federated,
    health,
    messages,
    safety,
    task_batch,
    tasks,
    tenant_access,
    tenants,
)
from agentmesh.api.ui import mount_ui
from agentmesh.api.ws import WebSocketHub
from agentmesh.application import Application
from agentmesh.config import Settings, get_settings
from agentmesh.controlplane import ControlPlane
from agentmesh.mesh import Mesh
from agentmesh.observability.tracing import TracingMiddleware, configure_tracing
from agentmesh.security.audit import AuditStore
from agentmesh.security.crypto import EncryptionService
from agentmesh.security.tokens import TokenService, token_service_from_settings
from agentmesh.store.audit_log import audit_store_for
from agentmesh.store.audit_trail import AuditTrail
from agentmesh.store.persistence import Persistence, open_persistence
from agentmesh.transports.targets import RouteTargets

TITLE = "AgentMesh EDA API"
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)
"""FastAPI's own OpenTelemetry (newer releases) is off: ``TracingMiddleware`` makes the
server spans, and its per-request provider lookups read the environment every time."""
COMMON_ERRORS = (400, 413, 429, 500)


async def _guarded(
    name: str, loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run a background loop; restart it after an error (with a pause) until ``stop``."""
    while not stop.is_set():
        try:
            await loop(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a background loop of the plane restarts after any failure
            logger.error("{} loop failed ({}: {}); restarting", name, type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def revocation_loop(
    tokens: TokenService, audit: AuditStore, interval: float
) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Reload the token deny list from the audit trail every ``interval`` seconds."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            await tokens.deny.load(audit)

    return run


def create_app(
    settings: Settings | None = None,
    mesh: Mesh | None = None,
    *,
    persistence: Persistence | None = None,
    audit_store: AuditStore | None = None,
    options: ApiOptions | None = None,
    tokens: TokenService | None = None,
    crypto: EncryptionService | None = None,
    limiter: RateLimiter | None = None,
    plane: ControlPlane | None = None,
    application: Application | None = None,
    compose: bool = False,
) -> FastAPI:
    """Build the control plane. Every dependency may be injected (tests, ``agentmesh up``).

    ``persistence`` (else opened from ``DATABASE_URL``), ``audit_store`` (else the
    plane's, else the SQL table ``api_audit_log`` in the same database, or memory for
    ``memory://``; the projector feeds it the domain events' entries),
    ``tokens``/``crypto`` (else from ``JWT_*``/``ENCRYPTION_KEY``), ``limiter`` (else
    Redis when ``options.redis_url`` or ``settings.redis_url`` is set, else in-process).

    With a started :class:`~agentmesh.controlplane.ControlPlane` (``plane=``),
    the app shares its persistence, bus and encryption and runs no outbox relay of its
    own (the plane runs it). ``application=`` (an :class:`~agentmesh.application.Application`,
    started) gives both at once; ``compose=True`` builds one from ``settings`` when the
    lifespan starts and stops it at the end (the module-level ``app``: the broker of
    ``NATS_URL``, outbox relay, task recorder and tracker included).
    """
    bus_guard = None
    if application is not None:
        mesh, plane = application.mesh, application.plane
        bus_guard = application.bus_guard
    settings = settings or get_settings()
    opts = options or ApiOptions()
    level = SecurityLevel.for_environment(settings.environment)
    origins = opts.cors_origins if opts.cors_origins is not None else level.origins
    stats = RequestStats()
    rate_on = (
        opts.rate_limit_enabled if opts.rate_limit_enabled is not None else level.rate_limit_enabled
    )
    redis_url = opts.redis_url or getattr(settings, "redis_url", None)
    if rate_on and limiter is None:
        limiter = RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_tracing("agentmesh-api")  # no-op without an OTLP endpoint, or when already on
        resolved = settings.with_secrets()
        owned: Application | None = None
        if compose and mesh is None and plane is None:
            owned = Application.from_settings(resolved)
            await owned.start()
        try:
            async with _serve(app, resolved, owned) as served:
                yield served
        finally:
            if owned is not None:
                await owned.stop()

    @contextlib.asynccontextmanager
    async def _serve(
        app: FastAPI, resolved: Settings, owned: Application | None
    ) -> AsyncIterator[None]:
        mesh_ = owned.mesh if owned is not None else mesh
        plane_ = owned.plane if owned is not None else plane
        token_svc = tokens or token_service_from_settings(resolved)
        plane_crypto = plane_.crypto if plane_ is not None else None
        crypto_svc = crypto or plane_crypto or EncryptionService(str(resolved.encryption_key))
        url = resolved.effective_database_url
        shared = persistence or (plane_.persistence if plane_ is not None else None)
        p = shared or await open_persistence(url, crypto=crypto_svc)
        plane_audit = plane_.audit if plane_ is not None else None
        audit_db = audit_store or plane_audit or audit_store_for(url, db=p.db)
        await audit_db.connect()
        trail: AuditTrail | None = None
        if not any(s.name == AuditTrail.name for s in p.projector.sinks):
            trail = AuditTrail(audit_db)  # not fed by the plane already
            p.projector.attach(trail)
        from agentmesh.commands import build_bus

        context: list[ApiContext] = []

        async def audit_ws(*args: Any, **kw: Any) -> None:
            await context[0].record(*args, **kw)

        hub = WebSocketHub(token_svc, opts.ws, origins, audit=audit_ws)
        ctx = ApiContext(
            settings=resolved,
            options=opts,
            level=level,
            tokens=token_svc,
            persistence=p,
            bus=plane_.bus if plane_ is not None else build_bus(p.store, p.read_models, crypto_svc),
            crypto=crypto_svc,
            audit=audit_db,
            hub=hub,
            stats=stats,
            mesh=mesh_,
            bus_guard=bus_guard if owned is None else owned.bus_guard,
            routes=RouteTargets.from_settings(resolved, mesh_.transport if mesh_ else None),
        )
        context.append(ctx)
        app.state.ctx = ctx
        stop = asyncio.Event()
        feed = StoreFeed(p.store, hub, opts.feed_interval)
        await feed.start_at_head()
        await token_svc.deny.load(audit_db)
        loops: list[tuple[str, Callable[[asyncio.Event], Awaitable[None]]]] = [
            ("projector", lambda s: p.projector.run(s, opts.projector_interval)),
            ("revocations", revocation_loop(token_svc, audit_db, opts.revocation_interval)),
            ("ws feed", feed.run),
            ("ws metrics", MetricsPusher(hub, _metrics_provider(ctx), opts.metrics_interval).run),
            (
                "anomalies",
                anomaly_loop(
                    feed,
                    ctx,
                    mesh_.registry if mesh_ is not None else None,
                    leading=(lambda: plane_.leader.is_leader) if plane_ is not None else None,
                ),
            ),
        ]
        relay_here = opts.run_relay and plane_ is None
        if mesh_ is not None and relay_here:
            from agentmesh.store.outbox import OutboxRelay

            loops.append(("outbox relay", OutboxRelay(p.store, mesh_.transport).run))
        if mesh_ is not None:
            mesh_.registry.on_change(registry_listener(hub))
        background = [asyncio.create_task(_guarded(n, fn, stop)) for n, fn in loops]
        try:
            yield
        finally:
            stop.set()
            await hub.close_all()
            for t in background:
                t.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if limiter is not None:
                await limiter.close()
            if ctx.routes is not None:
                await ctx.routes.close()
            if trail is not None:
                p.projector.detach(trail)
            if audit_db is not plane_audit:
                await audit_db.close()
            if shared is None:
                await p.close()
            app.state.ctx = None

    app = FastAPI(
        title=TITLE,
        version=API_VERSION,
        description="Control plane of AgentMesh: tenants, agents, tasks, messages, audit.",
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query), Depends(reject_unexpected_body)],
        **_NO_NATIVE_TELEMETRY,
    )
    app.state.ctx = None
    install_error_handlers(app)
    for module in (
        health,
        tenants,
        tenant_access,
        agents,
        task_batch,
        tasks,
        messages,
        audit,
        federated,
        clusters,
        safety,
        approvals,
    ):
        app.include_router(module.router)
    for module in (asyncapi,):
        app.include_router(module.router)
    app.include_router(anomalies_router)  # /v1/tenants/{tenant_id}/metrics/history
    _mount_a2a(app)
    mount_ui(app)

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        ctx: ApiContext | None = websocket.app.state.ctx
        if ctx is None:
            await websocket.close(1011, "Connection failed")
            return
        await ctx.hub.handle(websocket)

    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.add_middleware(BodyLimitMiddleware, limit=opts.body_limit_bytes)
    app.add_middleware(VersionMiddleware)
    app.add_middleware(CorsMiddleware, origins=origins, allow_credentials=level.allow_credentials)
    app.add_middleware(RequestContextMiddleware, level=level, stats=stats)
    app.add_middleware(TracingMiddleware)  # the whole request is one server span
    if rate_on and limiter is not None:  # outermost: a refused request costs next to nothing
        app.add_middleware(
            RateLimitMiddleware,
            limiter=limiter,
            limit=opts.rate_limit or DEFAULT_RATE_LIMIT,
            window=opts.rate_window_seconds,
            level=level,
            cors_origins=origins,
            cors_credentials=level.allow_credentials,
            stats=stats,
        )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _mount_a2a(app: FastAPI) -> None:
    """``/a2a/<tenant>/<agent>``: every live agent as an A2A agent (when ``a2a-sdk`` is
    installed, the ``interop`` extra)."""
    try:
        from agentmesh.interop.a2a import PREFIX, A2AGateway
    except ImportError:
        return
    app.mount(PREFIX, A2AGateway(lambda: app.state.ctx))


def _metrics_provider(ctx: ApiContext) -> Callable[[str], Awaitable[dict[str, Any]]]:
    async def provide(tenant_id: str) -> dict[str, Any]:
        rm = ctx.persistence.read_models
        tasks_page = await rm.list_tasks(tenant_id, limit=1)
        live = 0
        registry = getattr(ctx.mesh, "registry", None) if ctx.mesh is not None else None
        if registry is not None:
            live = len(registry.snapshot(tenant_id))
        return {
            "tenant_id": tenant_id,
            "agent_count": await rm.count_agents(tenant_id),
            "live_agents": live,
            "tasks_total": tasks_page.total,
            "requests_total": ctx.stats.requests_total,
        }

    return provide


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with ``x-api-version``, ``x-contact`` and ``x-license`` (MIT) and
    every error status documented."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema["x-api-version"] = API_VERSION
    schema["x-contact"] = {"name": "AgentMesh", "url": "https://github.com/agentmesh"}
    schema["x-license"] = "MIT"
    schema["info"]["license"] = {"name": "MIT"}
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            resp = op["responses"]
            for status in COMMON_ERRORS:
                resp.setdefault(
                    str(status),
                    {
                        "description": DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
            if "422" in resp:
                resp["422"] = {
                    "description": DESCRIPTIONS[422],
                    "content": {"application/json": {"schema": error_ref}},
                }
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    comps.pop("HTTPValidationError", None)
    comps.pop("ValidationError", None)
    if "ErrorBody" not in comps:
        from agentmesh.api.errors import ErrorBody

        comps["ErrorBody"] = ErrorBody.model_json_schema()
    app.openapi_schema = schema
    return schema


app = create_app(compose=True)
"""The ASGI application of ``agentmesh.api.fastapi_app:app``: settings from the
environment, and the whole control plane (broker, relay, recorder) composed at start."""
