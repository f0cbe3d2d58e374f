"""Two control-plane replicas on one PostgreSQL store and one NATS: the relay runs on the
leader only, the recorder and tracker run on both without applying anything twice, and
the read models equal a full rebuild (``agentmesh projections rebuild``)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from agentmesh import Mesh, TaskContext
from agentmesh.application import Application
from agentmesh.commands import CreateTenant, SubmitTask
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.persistence import open_persistence
from agentmesh.store.postgres import asyncpg_dsn
from agentmesh.store.sealing import Sealer
from tests.helpers import eventually, fast_settings, unique_tenant

TASKS = int(os.environ.get("AGENTMESH_REPLICAS_TASKS", "200"))
"""CI size; the full run (5,000) is ``AGENTMESH_REPLICAS_TASKS=5000``."""
READ_MODELS = ("agents", "tasks", "tenants", "messages")


def _opened(value: Any, sealer: Sealer) -> Any:
    """A read-model value with its sealed parts opened (sealing is randomized)."""
    if isinstance(value, str) and value.startswith("{"):
        return _opened(json.loads(value), sealer)
    if isinstance(value, dict):
        if set(value) == {"$sealed"}:
            return sealer.open(value)
        return {k: _opened(v, sealer) for k, v in value.items()}
    if isinstance(value, list):
        return [_opened(v, sealer) for v in value]
    return value


async def snapshot(url: str, sealer: Sealer) -> dict[str, list[list[Any]]]:
    """Every row of every read model, sealed values opened."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return {
            t: [
                [_opened(v, sealer) for v in r]
                for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")
            ]
            for t in READ_MODELS
        }
    finally:
        await conn.close()


async def test_two_replicas_publish_each_envelope_once_and_project_like_a_rebuild(
    pg_url: str, nats_url: str, tmp_path: Path
) -> None:
    tenant = unique_tenant()
    keys = fast_settings(tmp_path / "keys").with_secrets()  # replicas share their secrets
    shared = {"jwt_secret_key": keys.jwt_secret_key, "encryption_key": keys.encryption_key}
    replicas = [
        Application.from_settings(
            fast_settings(tmp_path / f"plane-{i}", database_url=pg_url, **shared),
            transport_url=nats_url,
            sweep_interval=0.5,
        )
        for i in range(2)
    ]
    runs: collections.Counter[str] = collections.Counter()
    worker = Mesh(nats_url, tenant=tenant, settings=fast_settings(tmp_path / "agent"))

    @worker.agent("counter-1", capabilities=["count"], max_concurrent=16)
    async def count(task: TaskContext) -> dict[str, Any]:
        runs[task.task_id] += 1
        return {"n": task.payload["n"]}

    for app in replicas:
        await app.start()
    try:
        await replicas[0].bus.execute(CreateTenant("cluster", tenant_id=tenant))
        await eventually(
            lambda: sum(app.plane.leader.is_leader for app in replicas) == 1,
            10,
            what="one replica leads",
        )
        async with worker:
            ids = await asyncio.gather(
                *(
                    replicas[i % 2].bus.execute(SubmitTask(tenant, "count", {"n": i}))
                    for i in range(TASKS)
                )
            )
            task_ids = [r.aggregate_id for r in ids]

            read_models = replicas[1].plane.persistence.read_models  # type: ignore[union-attr]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(90, TASKS / 10)
            while (await read_models.list_tasks(tenant, status="completed", limit=1)).total < TASKS:
                assert loop.time() < deadline, f"{TASKS} tasks not completed in the store"
                await asyncio.sleep(0.2)
        leader = next(app for app in replicas if app.plane.leader.is_leader)
        follower = next(app for app in replicas if not app.plane.leader.is_leader)
        assert leader.plane.relay is not None
        assert follower.plane.relay is not None
        # only the leader's relay published; each outbox row once
        assert follower.plane.relay.published == 0
        assert leader.plane.relay.published >= TASKS
        js = replicas[0].mesh.transport.jetstream  # type: ignore[attr-defined]
        info = await js.stream_info(f"AM_{tenant}_task", subjects_filter=">")
        assert info.state.messages == TASKS
        assert set(runs) == set(task_ids)
        assert set(runs.values()) == {1}
        # every task completed exactly once in the event store
        conn = await asyncpg.connect(asyncpg_dsn(pg_url))
        try:
            per_task = await conn.fetch(
                "SELECT stream_id, count(*) FROM events WHERE tenant_id = $1 "
                "AND event_type = 'TaskCompleted' GROUP BY stream_id",
                tenant,
            )
        finally:
            await conn.close()
        assert len(per_task) == TASKS
        assert {n for _, n in per_task} == {1}
    finally:
        for app in replicas:
            await app.stop()
    crypto = EncryptionService(str(keys.encryption_key))
    sealer = Sealer(crypto)
    # events the replicas wrote while stopping (agents stopped) are projected as any
    # later catch-up would: what the live projector made must equal a rebuild
    p = await open_persistence(pg_url, crypto=crypto)
    try:
        await p.projector.catch_up()
    finally:
        await p.close()
    before = await snapshot(pg_url, sealer)
    assert len(before["tasks"]) == TASKS
    out = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "agentmesh"), "projections", "rebuild", "--json"],
        env={
            **os.environ,
            "DATABASE_URL": pg_url,
            "AGENTMESH_DATA_DIR": str(tmp_path / "keys"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert await snapshot(pg_url, sealer) == before
