"""``agentmesh status``: real health of the broker, the store and the live agents."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agentmesh import subjects
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, NoResponders, RequestTimeout
from agentmesh.runtime.embedded import read_runtime_record
from agentmesh.runtime.queues import queue_depths
from agentmesh.runtime.registry import Registry
from agentmesh.security.bus_credentials import platform_token
from agentmesh.transports import Transport, create_transport
from agentmesh.transports.base import StreamInfo

STATUS_CONNECT_WINDOW = 2.0  # seconds


async def check_store(url: str) -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from agentmesh.store.db import safe_url
    from agentmesh.store.migrate import sqlalchemy_url

    safe = safe_url(url)
    if url.startswith("memory:"):
        return {"status": "ok", "url": safe, "latency_ms": 0.0}
    try:
        engine = create_async_engine(sqlalchemy_url(url))
    except AgentMeshError as exc:
        return {"status": "down", "url": safe, "error": exc.message}
    start = time.perf_counter()
    try:
        async with engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), 5)
        return {
            "status": "ok",
            "url": safe,
            "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        }
    except Exception as exc:  # noqa: BLE001 - the status report shows any failure as "down"
        return {"status": "down", "url": safe, "error": f"{type(exc).__name__}: {exc}"[:200]}
    finally:
        await engine.dispose()


async def live_agents(
    transport: Transport, tenant: str, wait: float
) -> tuple[str, list[dict[str, Any]]]:
    """Agents from a running ``agentmesh up`` registry, else from heartbeats for ``wait`` s."""
    probe = Envelope.create("registry.snapshot.request", {}, tenant_id=subjects.SYSTEM_TENANT)
    try:
        reply = await transport.request(subjects.registry_snapshot(), probe, timeout=1.0)
        agents = reply.payload.get("agents", [])
        return "registry", [a for a in agents if isinstance(a, dict)]
    except (NoResponders, RequestTimeout):
        pass
    registry = Registry(transport, tenant=tenant)
    await registry.start()
    await asyncio.sleep(wait)
    await registry.stop()
    return "heartbeats", registry.snapshot()


async def gather_status(settings: Settings, tenant: str) -> dict[str, Any]:
    url = settings.effective_transport_url()
    record = read_runtime_record(settings.data_dir)
    report: dict[str, Any] = {
        "broker": {
            "url": url,
            "embedded": bool(record and record.nats_url == url),
            "auth": "tokens (auth callout)" if record and record.bus_auth else "unknown",
        },
        "store": await check_store(settings.effective_database_url),
        "agents": [],
    }
    # a health check reports the broker as it is now: a short window, not the agents' wait
    # for a broker that is still starting
    window = min(settings.agentmesh_connect_timeout, STATUS_CONNECT_WINDOW)
    transport = create_transport(url, connect_timeout=window, token=platform_token(settings))
    try:
        await transport.connect()
    except AgentMeshError as exc:
        report["broker"].update(status="down", error=exc.message)
        report["healthy"] = False
        return report
    try:
        rtt = await transport.ping()
        report["broker"].update(status="ok", rtt_ms=round(rtt * 1000, 2))
        if isinstance(transport, StreamInfo):
            try:
                report["broker"]["jetstream"] = await transport.jetstream_info()
            except Exception as exc:  # noqa: BLE001 - the status report shows any failure of the probe
                report["broker"]["jetstream"] = {"error": str(exc)}
        report["queues"] = [
            {"tenant_id": tenant_id, "queue": queue, "depth": depth}
            for (tenant_id, queue), depth in sorted((await queue_depths(transport)).items())
            if queue.startswith("task:")
        ]
        from agentmesh.decentralized.views import collect_groups

        (source, agents), groups = await asyncio.gather(
            live_agents(transport, tenant, settings.agentmesh_heartbeat_interval + 0.5),
            collect_groups(transport, tenant),
        )
        report["decentralized"] = groups
        report["agents_source"] = source
        report["agents"] = agents
    finally:
        await transport.close()
    if record and record.api_url:
        report["control_plane"] = {"url": record.api_url}
    report["healthy"] = report["broker"].get("status") == "ok" and report["store"]["status"] == "ok"
    return report
