"""The control plane: store-submitted tasks flow through the mesh and back into the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.commands import CreateTenant, GetAgent, GetTask, RetryTask, SubmitTask
from agentmesh.config import Settings
from agentmesh.controlplane import ControlPlane
from agentmesh.errors import NotFound
from agentmesh.runtime.registry import Registry
from agentmesh.runtime.tracker import pending_reason
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "nats"])
async def plane(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ControlPlane]:
    url = (
        f"memory://{uuid.uuid4().hex}"
        if request.param == "memory"
        else request.getfixturevalue("nats_url")
    )
    settings = Settings(  # type: ignore[call-arg]
        agentmesh_data_dir=tmp_path,
        agentmesh_heartbeat_interval=0.1,
        agentmesh_health_check_timeout=1.0,
        agentmesh_ack_wait=1.0,
        agentmesh_max_deliver=2,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
    )
    mesh = Mesh(url, tenant="ops", settings=settings)
    mesh.registry = Registry(mesh.transport, tenant="*", health_check_timeout=1.0)
    await mesh.start()
    cp = ControlPlane(settings, mesh, projection_interval=0.05, sweep_interval=0.2)
    await cp.start()
    yield cp
    await cp.stop()
    await mesh.stop()


async def task_doc(cp: ControlPlane, tenant: str, task_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = await cp.bus.query(GetTask(tenant, task_id))
    return doc


async def test_store_submitted_tasks_complete_fail_retry_and_time_out(plane: ControlPlane) -> None:
    cp = plane
    created = await cp.bus.execute(CreateTenant("acme-corp"))
    tenant = created.aggregate_id
    worker = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)
    broken = {"on": True}

    @worker.agent("summarizer-1", capabilities={"summarize": 4})
    async def summarize(task: TaskContext) -> dict[str, Any]:
        if task.payload.get("poison") and broken["on"]:
            raise RuntimeError("cannot summarize poison")
        return {"summary": str(task.payload["text"])[:5]}

    async with worker:
        ok = (
            await cp.bus.execute(SubmitTask(tenant, "summarize", {"text": "hello world"}))
        ).aggregate_id
        await eventually(lambda: cp.recorder is not None and cp.recorder.applied >= 1, timeout=15)

        async def status_of(task_id: str) -> str:
            try:
                return str((await task_doc(cp, tenant, task_id))["status"])
            except Exception:  # noqa: BLE001 - not readable yet: polled again
                return "unknown"

        async def wait_status(task_id: str, wanted: str, timeout: float = 20) -> None:
            deadline = asyncio.get_running_loop().time() + timeout
            while await status_of(task_id) != wanted:
                assert asyncio.get_running_loop().time() < deadline, await status_of(task_id)
                await asyncio.sleep(0.05)

        await wait_status(ok, "completed")
        doc = await task_doc(cp, tenant, ok)
        assert doc["result"] == {"summary": "hello"}
        assert doc["agent_id"] == "summarizer-1"
        # the agent that joined through the broker is known to the store
        agent = await cp.bus.query(GetAgent(tenant, "summarizer-1"))
        assert agent["capabilities"][0]["name"] == "summarize"

        # poison: retried by the runtime, then dead-lettered; an operator retries it later
        bad = (
            await cp.bus.execute(SubmitTask(tenant, "summarize", {"text": "x", "poison": True}))
        ).aggregate_id
        await wait_status(bad, "dead_lettered")
        assert "cannot summarize poison" in str((await task_doc(cp, tenant, bad))["error"])
        broken["on"] = False
        await cp.bus.execute(RetryTask(tenant, bad))
        await wait_status(bad, "completed")

        # nobody can translate: the task waits with a reason, then times out as configured
        assert pending_reason(cp.mesh.registry, tenant, "translate") is not None
        lonely = (
            await cp.bus.execute(
                SubmitTask(tenant, "translate", {"text": "hola"}, timeout_seconds=1, max_attempts=1)
            )
        ).aggregate_id
        await wait_status(lonely, "dead_lettered", timeout=20)


async def test_agents_heard_before_the_plane_started_are_in_the_store(tmp_path: Path) -> None:
    url = f"memory://{uuid.uuid4().hex}"
    settings = Settings(  # type: ignore[call-arg]
        agentmesh_data_dir=tmp_path,
        agentmesh_heartbeat_interval=0.1,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
    )
    worker = Mesh(url, tenant="early", settings=settings)

    @worker.agent("early-1", capabilities={"summarize": 4})
    async def summarize(task: TaskContext) -> dict[str, Any]:
        return {}

    mesh = Mesh(url, tenant="ops", settings=settings)
    mesh.registry = Registry(mesh.transport, tenant="*", health_check_timeout=5.0)
    async with worker:
        await mesh.start()
        await eventually(lambda: mesh.registry.get("early", "early-1") is not None)
        cp = ControlPlane(settings, mesh, projection_interval=0.05, sweep_interval=0.2)
        await cp.start()
        try:
            # its tenant is created after the plane started: the next sweep registers it
            await cp.bus.execute(CreateTenant("Early", tenant_id="early"))

            async def registered() -> dict[str, Any]:
                doc: dict[str, Any] = await cp.bus.query(GetAgent("early", "early-1"))
                return doc

            deadline = asyncio.get_running_loop().time() + 5
            while True:
                try:
                    agent = await registered()
                    break
                except NotFound:
                    assert asyncio.get_running_loop().time() < deadline, "never registered"
                    await asyncio.sleep(0.05)
            assert agent["capabilities"][0]["name"] == "summarize"
        finally:
            await cp.stop()
            await mesh.stop()
