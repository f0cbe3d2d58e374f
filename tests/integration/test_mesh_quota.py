"""``Mesh.submit`` from a client with only the broker honours the tenant's
``max_messages_per_hour``: the control plane grants it over the bus."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh import Mesh
from agentmesh.commands import (
    CreateTenant,
    GetTask,
    GetTenant,
    GrantQuota,
    ListTasks,
    SubmitTask,
)
from agentmesh.config import Settings
from agentmesh.controlplane import ControlPlane
from agentmesh.errors import NotFound, QuotaExceeded, ValidationError
from agentmesh.runtime.registry import Registry
from tests.helpers import until

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
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
    )
    mesh = Mesh(url, tenant="ops", settings=settings)
    mesh.registry = Registry(mesh.transport, tenant="*", health_check_timeout=5.0)
    await mesh.start()
    cp = ControlPlane(settings, mesh, projection_interval=0.05, sweep_interval=1.0)
    await cp.start()
    yield cp
    await cp.stop()
    await mesh.stop()


async def projected(cp: ControlPlane, tenant: str) -> None:
    """Wait until the tenant read model knows ``tenant`` (the quota is read there)."""

    await until(lambda: cp.bus.query(GetTenant(tenant)), 15, not_yet=(NotFound,))


async def test_bus_submitter_gets_a_clear_quota_error(plane: ControlPlane) -> None:
    cp = plane
    tenant = f"q{uuid.uuid4().hex[:10]}"
    await cp.bus.execute(CreateTenant(tenant, tenant_id=tenant, max_messages_per_hour=5))
    await projected(cp, tenant)
    client = Mesh(cp.mesh.transport.url, tenant=tenant, settings=Settings())  # type: ignore[call-arg]
    async with client:
        ids = [await client.submit("summarize", {"n": i}) for i in range(5)]
        refused = f"refused-{uuid.uuid4().hex[:8]}"
        with pytest.raises(QuotaExceeded, match=f"tenant {tenant} used its 5 messages") as info:
            await client.submit("summarize", {"n": 5}, task_id=refused)
        assert 1 <= info.value.retry_after <= 3660  # minute buckets of the sliding hour
        assert client.quota.asked == 2  # the sixth asked again and was refused
        with pytest.raises(QuotaExceeded):  # the denial is remembered: no new request
            await client.submit("summarize", {"n": 6})
        assert client.quota.asked == 2

    async def recorded() -> bool:
        page = await cp.bus.query(ListTasks(tenant))
        return bool(page.total == 5)

    await until(recorded, 15, not_yet=(NotFound,))
    for task_id in ids:
        assert (await cp.bus.query(GetTask(tenant, task_id)))["status"] == "offered"
    with pytest.raises(NotFound):  # nothing half-written for the refused submit
        await cp.bus.query(GetTask(tenant, refused))
    # REST and the bus draw on the plane's one count
    with pytest.raises(QuotaExceeded):
        await cp.bus.execute(SubmitTask(tenant, "summarize", {}))


async def test_leases_keep_the_hot_path_local_and_unknown_tenants_unmetered(
    plane: ControlPlane,
) -> None:
    cp = plane
    tenant = f"q{uuid.uuid4().hex[:10]}"
    await cp.bus.execute(CreateTenant(tenant, tenant_id=tenant))
    await projected(cp, tenant)
    client = Mesh(cp.mesh.transport.url, tenant=tenant, settings=Settings())  # type: ignore[call-arg]
    async with client:
        for i in range(client.quota.block + 1):
            await client.submit("summarize", {"n": i})
        assert client.quota.asked == 2
    grant = await cp.bus.execute(GrantQuota("nobody-knows-me", 3))
    assert (grant.granted, grant.limit) == (3, None)
    with pytest.raises(ValidationError, match="1-1000"):
        await cp.bus.execute(GrantQuota(tenant, 0))


async def test_no_control_plane_submit_proceeds() -> None:
    client = Mesh(f"memory://{uuid.uuid4().hex}", tenant="alone", settings=Settings())  # type: ignore[call-arg]
    async with client:
        for i in range(3):
            await client.submit("summarize", {"n": i})
        assert client.quota.asked == 1  # no responder: remembered, not asked per submit
