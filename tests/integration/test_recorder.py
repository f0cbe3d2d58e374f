"""The task recorder: tasks offered on the bus by submitters without the store are recorded
with their whole lifecycle; offers it cannot record are dead-lettered."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext, subjects
from agentmesh.commands import CreateTenant, GetAgent, GetTask
from agentmesh.controlplane import ControlPlane
from agentmesh.envelope import Envelope
from agentmesh.errors import NotFound
from agentmesh.runtime.registry import Registry
from tests.helpers import Collector, eventually, fast_settings

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "nats"])
async def plane(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ControlPlane]:
    url = (
        f"memory://{uuid.uuid4().hex}"
        if request.param == "memory"
        else request.getfixturevalue("nats_url")
    )
    settings = fast_settings(
        tmp_path,
        agentmesh_max_deliver=3,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
    )
    mesh = Mesh(url, tenant="ops", settings=settings)
    mesh.registry = Registry(mesh.transport, tenant="*", health_check_timeout=5.0)
    await mesh.start()
    cp = ControlPlane(settings, mesh, projection_interval=0.02, sweep_interval=0.5)
    await cp.start()
    yield cp
    await cp.stop()
    await mesh.stop()


async def _doc(cp: ControlPlane, tenant: str, task_id: str) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = await cp.bus.query(GetTask(tenant, task_id))
    except NotFound:
        return None
    return doc


async def _first_seen(cp: ControlPlane, tenant: str, task_id: str, status: str) -> float:
    while True:
        doc = await _doc(cp, tenant, task_id)
        if doc is not None and doc["status"] == status:
            return time.monotonic()
        await asyncio.sleep(0.01)


async def test_broker_only_tasks_are_recorded_within_a_second_with_their_lifecycle(
    plane: ControlPlane,
) -> None:
    cp = plane
    tenant = f"rec-{uuid.uuid4().hex[:8]}"
    await cp.bus.execute(CreateTenant(tenant, tenant_id=tenant))
    client = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)
    failures: dict[int, int] = {}

    @client.agent("worker-1", capabilities={"work": 4}, max_concurrent=4)
    async def work(task: TaskContext) -> dict[str, Any]:
        n = int(task.payload["n"])
        if task.payload.get("flaky") and failures.get(n, 0) == 0:
            failures[n] = 1
            raise RuntimeError("first attempt fails")
        if task.payload.get("poison"):
            raise RuntimeError("never works")
        return {"n": n}

    async with client:
        await eventually(lambda: cp.mesh.registry.get(tenant, "worker-1") is not None)
        lags: list[float] = []
        for n in range(20):
            sent = time.monotonic()
            task_id = await client.submit("work", {"n": n})
            seen = await asyncio.wait_for(_first_seen(cp, tenant, task_id, "completed"), 10)
            doc = await _doc(cp, tenant, task_id)
            assert doc is not None
            lags.append(seen - sent)  # offer -> recorded, run and completed in the store
            assert doc["agent_id"] == "worker-1"
            assert doc["result"] == {"n": n}
        # generous for a shared CI box; the design target is 1 s at p99
        assert max(lags) < 2.0, lags

        flaky = await client.submit("work", {"n": 100, "flaky": True})
        await asyncio.wait_for(_first_seen(cp, tenant, flaky, "completed"), 15)
        doc = await _doc(cp, tenant, flaky)
        assert doc is not None
        steps = [(s["status"], s["attempt"]) for s in doc["timeline"]]
        assert steps == [
            ("submitted", 1),
            ("offered", 1),
            ("assigned", 1),
            ("running", 1),
            ("failed", 1),
            ("retrying", 2),
            ("offered", 2),
            ("assigned", 2),
            ("running", 2),
            ("completed", 2),
        ], steps
        assert doc["attempt"] == 2

        poison = await client.submit("work", {"n": 101, "poison": True}, max_attempts=2)
        await asyncio.wait_for(_first_seen(cp, tenant, poison, "dead_lettered"), 15)
        doc = await _doc(cp, tenant, poison)
        assert doc is not None
        assert "never works" in doc["error"]

        deadline = time.monotonic() + 10
        while True:
            agent = await cp.bus.query(GetAgent(tenant, "worker-1"))
            if agent["tasks_completed"] == 21 and agent["tasks_failed"] >= 1:
                break
            assert time.monotonic() < deadline, agent
            await asyncio.sleep(0.05)
        assert agent["status"] == "AVAILABLE"
        assert agent["active_tasks"] == []
        assert agent["last_heartbeat"] is not None


async def test_offers_it_cannot_record_are_dead_lettered_and_it_keeps_going(
    plane: ControlPlane,
) -> None:
    cp = plane
    transport = cp.mesh.transport
    good_tenant = f"ok-{uuid.uuid4().hex[:8]}"
    await cp.bus.execute(CreateTenant(good_tenant, tenant_id=good_tenant))
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    dead = Collector()
    await transport.subscribe(subjects.dead_letters(ghost), dead)
    await transport.subscribe(subjects.dead_letters(good_tenant), dead)

    stray = Envelope.create("task.offered", {"x": 1}, tenant_id=ghost)
    await transport.publish(subjects.task(ghost, "work"), stray)
    bad = Envelope.create("task.offered", {"x": 2}, tenant_id=good_tenant, priority=9)
    await transport.publish(subjects.task(good_tenant, "work"), bad)
    fine = Envelope.create("task.offered", {"x": 3}, tenant_id=good_tenant)
    await transport.publish(subjects.task(good_tenant, "work"), fine)

    await dead.wait_for(2)
    reasons = {e.id: e.context["error_context"]["error"] for e in dead.envelopes}
    assert "unknown tenant" in reasons[stray.id]
    assert "priority" in reasons[bad.id]
    await asyncio.wait_for(_first_seen(cp, good_tenant, fine.id, "offered"), 5)
    doc = await _doc(cp, good_tenant, fine.id)
    assert doc is not None
    assert doc["payload"] == {"x": 3}
    assert await _doc(cp, good_tenant, bad.id) is None
    assert cp.audit is not None
    audited = [
        e for e in await cp.audit.all_in_order() if e.details.get("operation") == "record_offer"
    ]
    assert {e.resource_id for e in audited} >= {stray.id, bad.id}
