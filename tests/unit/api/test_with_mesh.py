"""The control plane with a mesh attached (memory transport): relay, readiness, live view."""

from __future__ import annotations

from pathlib import Path

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.mesh import Mesh
from tests.helpers import Collector, quiet_period
from tests.unit.api.catalog import envelope
from tests.unit.api.conftest import make_settings, running


async def test_outbox_reaches_the_broker_and_ready_reports_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    mesh = Mesh("memory://", tenant="acme", settings=settings)
    await mesh.start()
    try:
        got = Collector()
        await mesh.transport.subscribe("am.acme.evt.note.added", got)
        offers = Collector()
        await mesh.transport.subscribe("am.acme.task.summarize", offers)
        app = create_app(settings, mesh=mesh, options=ApiOptions(rate_limit_enabled=False))
        async for api in running(app):
            r = await api.client.get("/health/ready")
            assert r.json()["components"]["broker"]["status"] == "ok"
            env = envelope("acme", {"text": "hi"})
            r = await api.client.post("/v1/tenants/acme/messages", json=env, headers=api.root)
            assert r.status_code == 202
            r = await api.client.post(
                "/v1/tenants/acme/tasks", json={"capability": "summarize"}, headers=api.root
            )
            assert r.status_code == 201
            received = await got.wait_for(1, timeout=5)
            assert received[0].envelope.id == env["metadata"]["id"]
            offer = (await offers.wait_for(1, timeout=5))[0].envelope
            assert offer.payload["task_id"] == r.json()["task_id"]
            live = await api.client.get("/v1/tenants/acme/agents/live", headers=api.root)
            assert live.status_code == 200
            assert live.json()["agents"] == []
            metrics = await api.client.get("/v1/metrics")
            assert metrics.json()["agent_count"] == 0
    finally:
        await mesh.stop()


async def test_shares_a_started_control_plane(tmp_path: Path) -> None:

    from agentmesh.controlplane import ControlPlane

    settings = make_settings(tmp_path)
    mesh = Mesh("memory://", tenant="acme", settings=settings)
    await mesh.start()
    plane = ControlPlane(settings, mesh, projection_interval=0.05)
    await plane.start()
    try:
        offers = Collector()
        await mesh.transport.subscribe("am.acme.task.summarize", offers)
        app = create_app(
            settings, mesh=mesh, plane=plane, options=ApiOptions(rate_limit_enabled=False)
        )
        async for api in running(app):
            assert api.ctx.persistence is plane.persistence
            assert api.ctx.bus is plane.bus
            r = await api.client.post(
                "/v1/tenants/acme/tasks", json={"capability": "summarize"}, headers=api.root
            )
            assert r.status_code == 201
            await offers.wait_for(1, timeout=5)
            await quiet_period(0.3)  # no second relay offers it again
            assert len(offers.messages) == 1  # one relay (the plane's), one offer
        assert plane.persistence is not None  # the app did not close what it shares
        assert await plane.persistence.store.head() > 0
    finally:
        await plane.stop()
        await mesh.stop()
