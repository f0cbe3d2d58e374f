"""A plain nats-py client and a mesh agent understand each other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import orjson
import pytest

from agentmesh import Envelope, Mesh, TaskContext, subjects
from agentmesh.config import Settings
from agentmesh.envelope import KEYS

pytestmark = pytest.mark.integration


@pytest.fixture
async def mesh(nats_url: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    tenant = "t" + uuid.uuid4().hex[:8]
    m = Mesh(nats_url, tenant=tenant, settings=Settings(agentmesh_data_dir=tmp_path))  # type: ignore[call-arg]

    @m.agent("upper-1", capabilities=["upper"])
    async def upper(task: TaskContext) -> dict[str, str]:
        return {"text": str(task.payload["text"]).upper()}

    async with m:
        yield m


async def test_raw_client_receives_the_exact_six_key_json(mesh: Mesh, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on(msg: object) -> None:
        got.put_nowait(msg.data)  # type: ignore[attr-defined]

    await nc.subscribe(subjects.task(mesh.tenant, "upper"), cb=on)
    await nc.flush()
    task_id = await mesh.submit("upper", {"text": "hi"})
    raw = await asyncio.wait_for(got.get(), 5)
    body = orjson.loads(raw)
    assert list(body) == list(KEYS)
    assert body["metadata"]["id"] == task_id
    assert body["tenant_id"] == mesh.tenant
    assert body["payload"] == {"text": "hi"}
    await nc.close()


async def test_envelope_published_raw_by_nats_py_is_handled(mesh: Mesh, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    hand_made = {
        "metadata": {
            "id": str(uuid.uuid4()),
            "timestamp": "2026-11-25T00:00:00+00:00",
            "type": "task.offered",
        },
        "routing": {},
        "payload": {"text": "raw"},
        "context": {},
        "security": {},
        "tenant_id": mesh.tenant,
    }
    reply = await nc.request(subjects.rpc(mesh.tenant, "upper"), orjson.dumps(hand_made), timeout=5)
    answer = Envelope.decode(reply.data)
    assert answer.payload["result"] == {"text": "RAW"}
    assert answer.causation_id == hand_made["metadata"]["id"]

    durable = dict(hand_made, metadata=dict(hand_made["metadata"], id=str(uuid.uuid4())))
    # no head start needed: wait_result finds an outcome that came first in the ledger
    waiter = asyncio.create_task(mesh.wait_result(durable["metadata"]["id"], timeout=10))  # type: ignore[index]
    ack = await js.publish(
        subjects.task(mesh.tenant, "upper"),
        orjson.dumps(durable),
        headers={"Nats-Msg-Id": durable["metadata"]["id"]},
    )  # type: ignore[index]
    assert ack.stream == f"AM_{mesh.tenant}_task"
    assert await waiter == {"text": "RAW"}
    await nc.close()
