"""``routing.targets`` on POST /messages: the envelope reaches every target broker (NATS,
the plane's own, and Redis, configured), read back raw with each broker's own client."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import pytest
import redis.asyncio as aioredis

from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.envelope import Envelope
from agentmesh.mesh import Mesh
from tests.unit.api.catalog import envelope
from tests.unit.api.conftest import make_settings, running

pytestmark = pytest.mark.integration


async def test_targets_on_two_real_brokers(tmp_path: Path, nats_url: str, redis_url: str) -> None:
    settings = make_settings(tmp_path, agentmesh_route_targets=f"redis={redis_url}")
    tenant = f"rt{uuid.uuid4().hex[:8]}"
    mesh = Mesh(nats_url, tenant=tenant, settings=settings)
    await mesh.start()
    raw_nats = await nats.connect(nats_url)
    raw_redis = aioredis.from_url(redis_url)
    try:
        seen: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_nats(msg: nats.aio.msg.Msg) -> None:
            await seen.put(msg.data)

        await raw_nats.subscribe(f"am.{tenant}.evt.routed", cb=on_nats)
        await raw_nats.flush()
        app = create_app(settings, mesh=mesh, options=ApiOptions(rate_limit_enabled=False))
        async for api in running(app):
            h = api.auth(tenant, "admin")
            url = f"/v1/tenants/{tenant}/messages"
            env = envelope(tenant, {"text": "to both"})
            env["routing"] = {"targets": [f"nats:am.{tenant}.evt.routed", "redis:summarize"]}
            r = await api.client.post(url, json=env, headers=h)
            assert r.status_code == 202, r.text
            body = r.json()
            assert body["status"] == "delivered"
            assert body["targets"] == [
                f"nats:am.{tenant}.evt.routed",
                f"redis:am.{tenant}.task.summarize",
            ]
            from_nats = Envelope.decode(await asyncio.wait_for(seen.get(), 10))
            entries = await raw_redis.xrange(f"am:s:{tenant}.task")
            assert len(entries) == 1
            fields = entries[0][1]
            assert fields[b"s"] == f"am.{tenant}.task.summarize".encode()
            from_redis = Envelope.decode(fields[b"d"])
            for got in (from_nats, from_redis):
                assert got.id == env["metadata"]["id"]
                assert got.payload == {"text": "to both"}
                assert got.tenant_id == tenant
            # recorded like any message, and readable back
            r = await api.client.get(f"{url}/{env['metadata']['id']}", headers=h)
            assert r.status_code == 200, r.text

            # a broker that is not configured: 422 naming it, nothing sent or recorded
            bad = envelope(tenant)
            bad["routing"] = {"targets": [f"nats:am.{tenant}.evt.routed", "kafka:events"]}
            r = await api.client.post(url, json=bad, headers=h)
            assert r.status_code == 422
            assert "'kafka' is not configured" in r.text
            assert "nats, redis" in r.text
            r = await api.client.get(f"{url}/{bad['metadata']['id']}", headers=h)
            assert r.status_code == 404
            for wrong in (["no-colon"], [], [f"redis:am.other{tenant}.evt.x"]):
                bad = envelope(tenant)
                bad["routing"] = {"targets": wrong}
                r = await api.client.post(url, json=bad, headers=h)
                assert r.status_code == 422, (wrong, r.text)
            assert seen.empty()  # nothing more reached NATS
            assert len(await raw_redis.xrange(f"am:s:{tenant}.task")) == 1
    finally:
        await raw_redis.aclose()
        await raw_nats.close()
        await mesh.stop()
