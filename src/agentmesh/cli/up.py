"""``agentmesh up``: the embedded mesh in one process tree.

Starts (unless ``NATS_URL`` points elsewhere) a nats-server child with JetStream under the
data directory, the registry for every tenant, the control plane on ``API_HOST:API_PORT``
and, with ``--demo``, a demo tenant with agents at work. Ctrl-C / SIGTERM stops all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentmesh.agents.demo import DEMO_TENANT, DemoWorkload
from agentmesh.application import Application
from agentmesh.commands import CreateTenant, SubmitTask
from agentmesh.config import Settings
from agentmesh.controlplane import ControlPlane
from agentmesh.domain.values import AgentStatus
from agentmesh.errors import AgentMeshError, Conflict
from agentmesh.observability import metrics
from agentmesh.runtime.embedded import (
    EmbeddedNats,
    RuntimeRecord,
    clear_runtime_record,
    write_runtime_record,
)
from agentmesh.runtime.queues import monitor_queues
from agentmesh.runtime.registry import Registry
from agentmesh.runtime.shutdown import stop_on_signals
from agentmesh.security.bus_auth import AUTH_FILE, BusAuthConfig
from agentmesh.security.nats_callout import NatsCalloutService
from agentmesh.security.tokens import token_service_from_settings
from agentmesh.transports import TOKEN_SCHEMES


def _status_view(registry: Registry, demo: DemoWorkload | None, started: float) -> Group:
    table = Table(
        title=f"AgentMesh - live agents ({time.monotonic() - started:.0f}s)", expand=False
    )
    for col in ("tenant", "agent", "status", "capabilities", "in flight", "done", "failed"):
        table.add_column(col)
    colors: dict[str, str] = {
        AgentStatus.AVAILABLE: "green",
        AgentStatus.BUSY: "yellow",
        AgentStatus.PAUSED: "blue",
        AgentStatus.UNHEALTHY: "red",
        AgentStatus.TERMINATED: "dim",
    }
    for r in registry.agents():
        caps = ", ".join(f"{k}:{v}" for k, v in r.capabilities.items())
        table.add_row(
            r.tenant_id,
            r.agent_id,
            Text(r.status, style=colors.get(r.status, "")),
            caps,
            str(r.in_flight),
            str(r.tasks_completed),
            str(r.tasks_failed),
        )
    parts: list[Any] = [table]
    if demo is not None:
        recent = Table(
            title=f"tasks submitted {demo.submitted}, completed {demo.completed}", expand=False
        )
        for col in ("agent", "capability", "result"):
            recent.add_column(col)
        for row in demo.recent:
            recent.add_row(*row)
        parts.append(recent)
    return Group(*parts)


async def _demo_submitter(
    plane: ControlPlane,
) -> Callable[[str, dict[str, Any]], Awaitable[object]]:
    """Demo tasks go through the store, so the REST API and the UI list them."""
    with contextlib.suppress(Conflict):  # created by an earlier run
        await plane.bus.execute(CreateTenant("demo", tenant_id=DEMO_TENANT))

    async def submit(capability: str, payload: dict[str, Any]) -> object:
        return await plane.bus.execute(SubmitTask(DEMO_TENANT, capability, payload, source="demo"))

    return submit


def ui_link(settings: Settings, api_url: str, tenant: str) -> str:
    """The web UI's address. In development it carries a ready admin token of ``tenant``
    in the fragment (``#token=``), which a browser never sends to the server; elsewhere
    it is the bare address (sign in with ``agentmesh token create``)."""
    url = f"{api_url}/ui/"
    if settings.environment != "development":
        return url
    try:
        token = token_service_from_settings(settings).create("ui", tenant, ["admin"])
    except AgentMeshError as exc:  # e.g. RS256 with only a public key: nothing to sign with
        logger.warning("no sign-in link for the web UI: {}", exc)
        return url
    return f"{url}#token={token}"


def _api_server(settings: Settings, application: Application, host: str, port: int) -> Any | None:
    """A uvicorn server for the control plane, or None when the API package is unavailable."""
    try:
        import uvicorn

        from agentmesh.api.fastapi_app import create_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        logger.warning("control plane unavailable ({}); running without REST/WebSocket", exc)
        return None

    class Server(uvicorn.Server):
        def capture_signals(self) -> Any:  # `up` owns SIGINT/SIGTERM and stops everything
            return contextlib.nullcontext()

    from agentmesh.api.ws_protocol import MAX_FRAME_BYTES

    app = create_app(settings=settings, application=application)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        ws_max_size=MAX_FRAME_BYTES,  # a bigger frame closes 1009 before it is buffered
    )
    return Server(config)


async def run_up(
    settings: Settings, *, demo: bool, api: bool, host: str, port: int, console: Console
) -> None:
    settings = settings.with_secrets()
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedNats | None = None
    url = settings.agentmesh_transport or settings.nats_url
    bus_auth: BusAuthConfig | None = None
    if not url:
        bus_auth = BusAuthConfig.load_or_create(data_dir / "nats" / AUTH_FILE)
        embedded = EmbeddedNats(
            data_dir / "nats",
            port=4222,
            auth=bus_auth,
            sync_interval=settings.agentmesh_nats_sync_interval,
        )
        url = embedded.start()  # main thread: the child's parent-death signal is tied to it
        logger.info(
            "embedded NATS (JetStream, auth callout) at {} (store {})", url, embedded.store_dir
        )
    elif settings.agentmesh_nats_auth_file and url.split("://", 1)[0] in TOKEN_SCHEMES:
        bus_auth = BusAuthConfig.load(settings.agentmesh_nats_auth_file)
    stop = stop_on_signals(asyncio.get_running_loop())
    callout: NatsCalloutService | None = None
    application: Application | None = None
    server = None
    server_task: asyncio.Task[None] | None = None
    workload: DemoWorkload | None = None
    try:
        if bus_auth is not None:
            callout = NatsCalloutService(
                url,
                bus_auth,
                token_service_from_settings(settings),
                revoked_file=data_dir / "nats" / "revoked-tokens",
            )
            await callout.start()
        application = Application.from_settings(
            settings, transport_url=url, tenant=DEMO_TENANT if demo else None
        )
        mesh, plane = application.mesh, application.plane
        application.bus_guard = callout
        if demo:
            workload = DemoWorkload(mesh)
        await application.start()
        if callout is not None and plane.persistence is not None:
            # tenants deactivated in an earlier run stay refused
            tenants = await plane.persistence.read_models.list_tenants(limit=100_000, offset=0)
            callout.refuse_tenants(str(t["id"]) for t in tenants if not t["is_active"])
        if workload is not None:
            workload.submit = await _demo_submitter(plane)
        api_url = None
        if api:
            server = _api_server(settings, application, host, port)
            if server is not None:
                server_task = asyncio.create_task(server.serve())
                api_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        write_runtime_record(
            data_dir,
            RuntimeRecord(
                nats_url=url,
                nats_pid=embedded.proc.pid if embedded and embedded.proc else os.getpid(),
                owner_pid=os.getpid(),
                api_url=api_url,
                started_at=time.time(),
                bus_auth=callout is not None,
            ),
        )
        metrics.set_info("0.1.0", settings.environment)
        if workload is not None:
            await workload.start()
        monitor = asyncio.create_task(monitor_queues(mesh.transport))
        logger.info(
            "mesh up: broker {}{}; Ctrl-C to stop",
            url,
            f", control plane {api_url}" if api_url else "",
        )
        if api_url is not None:
            tenant = DEMO_TENANT if demo else settings.agentmesh_tenant
            print(f"Web UI: {ui_link(settings, api_url, tenant)}", flush=True)
        started = time.monotonic()
        if sys.stdout.isatty():
            with Live(
                _status_view(mesh.registry, workload, started),
                console=console,
                refresh_per_second=4,
                transient=False,
            ) as live:
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)
                    live.update(_status_view(mesh.registry, workload, started))
        else:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
                agents = ", ".join(f"{r.agent_id}={r.status}" for r in mesh.registry.agents())
                done = f" tasks {workload.completed}/{workload.submitted} done" if workload else ""
                print(f"[agentmesh]{done} agents: {agents or '-'}", flush=True)
        monitor.cancel()
    finally:
        logger.info("stopping ...")
        if workload is not None:
            await workload.stop()
        if server is not None:
            server.should_exit = True
            if server_task is not None:
                with contextlib.suppress(
                    Exception
                ):  # stopping: the server's own error was logged by uvicorn
                    await asyncio.wait_for(server_task, 10)
        if application is not None:
            await application.stop()
        if callout is not None:
            await callout.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        clear_runtime_record(data_dir)
        logger.info("stopped")
