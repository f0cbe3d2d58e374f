"""POST /tasks reaches what the library can do: ``to_agent`` and the five strategies,
through the one application object the control plane is built from."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.application import Application
from tests.helpers import eventually, fast_settings

pytestmark = pytest.mark.integration


async def test_to_agent_and_strategy_route_rest_tasks(tmp_path: Path) -> None:
    settings = fast_settings(
        tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'plane.db'}",
        environment="testing",
    )
    url = f"memory://{uuid.uuid4().hex}"
    app_obj = Application.from_settings(settings, transport_url=url, projection_interval=0.02)
    await app_obj.start()
    api = create_app(settings, application=app_obj, options=ApiOptions(rate_limit_enabled=False))
    workers = Mesh(url, tenant="routed", settings=settings)
    for name in ("alpha-1", "beta-1"):

        @workers.agent(name, capabilities={"work": 3})
        async def work(task: TaskContext, me: str = name) -> dict[str, Any]:
            return {"by": me}

    try:
        async with api.router.lifespan_context(api), workers:
            ctx = api.state.ctx
            root = {"Authorization": f"Bearer {ctx.tokens.create('root', '_system', ['admin'])}"}
            auth = {"Authorization": f"Bearer {ctx.tokens.create('t', 'routed', ['admin'])}"}
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://plane") as client:
                made = await client.post(
                    "/v1/tenants", json={"tenant_id": "routed", "name": "Routed"}, headers=root
                )
                assert made.status_code == 201, made.text
                await eventually(lambda: len(app_obj.mesh.registry.agents("routed")) == 2)

                async def run(body: dict[str, Any]) -> dict[str, Any]:
                    r = await client.post("/v1/tenants/routed/tasks", json=body, headers=auth)
                    assert r.status_code == 201, r.text
                    task_id = r.json()["task_id"]
                    deadline = time.monotonic() + 15
                    while True:
                        doc: dict[str, Any] = (
                            await client.get(f"/v1/tenants/routed/tasks/{task_id}", headers=auth)
                        ).json()
                        if doc["status"] == "completed":
                            return doc
                        assert time.monotonic() < deadline, doc
                        await asyncio.sleep(0.05)

                for _ in range(3):
                    doc = await run({"capability": "work", "to_agent": "beta-1"})
                    assert doc["agent_id"] == "beta-1"
                    assert doc["result"] == {"by": "beta-1"}
                picked = {
                    (await run({"capability": "work", "strategy": "round_robin"}))["agent_id"]
                    for _ in range(4)
                }
                assert picked == {"alpha-1", "beta-1"}

                bad = await client.post(
                    "/v1/tenants/routed/tasks",
                    json={"capability": "work", "strategy": "fastest"},
                    headers=auth,
                )
                assert bad.status_code == 422
                assert "least_connections" in bad.json()["error"]
                both = await client.post(
                    "/v1/tenants/routed/tasks",
                    json={"capability": "work", "strategy": "round_robin", "to_agent": "beta-1"},
                    headers=auth,
                )
                assert both.status_code == 422
    finally:
        await app_obj.stop()
