"""The control plane's side of safety: the store follows quarantines, a quarantined
agent that restarts is quarantined again, an admin's release and human feedback."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.commands import GetAgent
from agentmesh.commands.safety import ReleaseAgent
from agentmesh.config import Settings
from agentmesh.controlplane import ControlPlane
from agentmesh.errors import NotFound
from agentmesh.runtime.registry import Registry
from agentmesh.safety import broadcast
from tests.helpers import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    settings = Settings(  # type: ignore[call-arg]
        agentmesh_data_dir=tmp_path,
        agentmesh_heartbeat_interval=0.1,
        agentmesh_health_check_timeout=1.0,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
    )
    mesh = Mesh(f"memory://{uuid.uuid4().hex}", tenant="ops", settings=settings)
    mesh.registry = Registry(mesh.transport, tenant="*", health_check_timeout=1.0)
    await mesh.start()
    cp = ControlPlane(settings, mesh, projection_interval=0.05, sweep_interval=0.5)
    await cp.start()
    yield cp
    await cp.stop()
    await mesh.stop()


def worker(cp: ControlPlane, tenant: str) -> Mesh:
    mesh = Mesh(cp.mesh.transport.url, tenant=tenant, settings=cp.settings)

    @mesh.agent("rogue-1", capabilities=["job"])
    async def job(task: TaskContext) -> dict[str, Any]:
        return {"ok": True}

    return mesh


async def test_store_restart_release_and_feedback(plane: ControlPlane) -> None:
    cp = plane
    tenant = "t" + uuid.uuid4().hex[:8]
    docs: dict[str, Any] = {}

    async def refresh() -> None:
        try:
            docs["agent"] = await cp.bus.query(GetAgent(tenant, "rogue-1"))
        except NotFound:
            docs.pop("agent", None)

    async def store_status(wanted: str) -> None:
        for _ in range(200):
            await refresh()
            if docs.get("agent", {}).get("status") == wanted:
                return
            await asyncio.sleep(0.05)  # the store is polled: there is no event to wait on
        raise AssertionError(f"store status {docs.get('agent', {}).get('status')} != {wanted}")

    first = worker(cp, tenant)
    await first.start()
    await store_status("AVAILABLE")
    assert first.safety is not None
    await first.safety.quarantine(first.agents["rogue-1"], "test quarantine", rule="manual")
    await store_status("QUARANTINED")
    assert docs["agent"]["metadata"]["quarantine"]["reason"] == "test quarantine"
    await first.stop()

    # the same agent comes back in a new process: it is quarantined again
    second = worker(cp, tenant)
    await second.start()
    try:
        runtime = second.agents["rogue-1"]
        await eventually(lambda: runtime.status == "QUARANTINED", timeout=10)
        await store_status("QUARANTINED")

        # only the release lifts it, with who and why in the record
        await cp.bus.execute(ReleaseAgent(tenant, "rogue-1", "admin-7", "reviewed"))
        await broadcast.release(cp.mesh.transport, tenant, "rogue-1", "admin-7", "reviewed")
        await eventually(lambda: runtime.status in ("AVAILABLE", "BUSY"), timeout=5)
        await store_status("AVAILABLE")
        assert docs["agent"]["metadata"]["last_release"]["by"] == "admin-7"
        assert await second.run("job", {}, timeout=10) == {"ok": True}

        # human feedback moves the alignment; misaligned means quarantine
        await broadcast.feedback(cp.mesh.transport, tenant, "rogue-1", 0.0, [], "reviewer")
        await store_status("AVAILABLE")
        await broadcast.feedback(cp.mesh.transport, tenant, "rogue-1", 0.0, [], "reviewer")
        await eventually(lambda: runtime.status == "QUARANTINED", timeout=5)
        await store_status("QUARANTINED")

        async def store_alignment() -> str:
            await refresh()
            return str(docs["agent"]["metadata"].get("alignment", {}).get("status"))

        # the quarantine (heartbeat or record) may reach the store before the feedback's
        # alignment record: each is its own event, applied in arrival order
        for _ in range(200):
            if await store_alignment() == "misaligned":
                break
            await asyncio.sleep(0.05)  # the store is polled: there is no event to wait on
        alignment = docs["agent"]["metadata"]["alignment"]
        assert alignment["status"] == "misaligned"
        assert alignment["score"] < 0.49
    finally:
        await second.stop()


async def test_a_process_started_after_a_put_gets_the_tenant_policy(plane: ControlPlane) -> None:
    from agentmesh.commands.safety import SetSafetyPolicy

    cp = plane
    tenant = "t" + uuid.uuid4().hex[:8]
    policy = {"version": 4, "content_filter": {"blocked_patterns": ["zebra"]}}
    await cp.bus.execute(SetSafetyPolicy(tenant, policy, "admin-1"))
    late = worker(cp, tenant)
    await late.start()
    try:
        guard = late.safety
        assert guard is not None
        await eventually(lambda: guard.policy.version == 4, timeout=5)
        assert not guard.checker.check_offer({"animal": "zebra"}).allowed
    finally:
        await late.stop()
    other = worker(cp, "t" + uuid.uuid4().hex[:8])  # no policy put for its tenant
    await other.start()
    try:
        guard = other.safety
        assert guard is not None
        await eventually(lambda: not guard.fetching, timeout=10, what="the policy asked for")
        assert guard.policy.version == 1
    finally:
        await other.stop()
