"""Row 3: dedupe. 1,000 envelopes x 3 publishes -> the JetStream stream holds 1,000; a
copy re-published after the broker's dedupe window (fresh broker id, the envelope as
it was) is caught by the consumer-side task ledger: the handler's raw side-effect
counter shows each task run once, on NATS, Redis and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from agentmesh import Envelope, Mesh, TaskContext, subjects
from agentmesh.runtime.ledger import TRUST_FIRST_DELIVERY_SECONDS
from agentmesh.transports import create_transport
from agentmesh.transports.nats import stream_for
from tests.chaos.conftest import Report, brokers, size
from tests.contract.raw import publish_raw
from tests.helpers import fast_settings

pytestmark = pytest.mark.integration
ROW = "3 dedupe"


async def test_three_publishes_of_each_envelope_store_one(nats_url: str, report: Report) -> None:
    n = size(1000, 200)
    tenant = "t" + uuid.uuid4().hex[:8]
    subject = subjects.task(tenant, "dedupe")
    transport = create_transport(nats_url)
    await transport.connect()
    envelopes = [Envelope.create("task.offered", {"i": i}, tenant_id=tenant) for i in range(n)]
    try:
        for _ in range(3):  # the publisher retries every message with the same id
            for env in envelopes:
                await transport.publish(subject, env, durable=True)
    finally:
        await transport.close()
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream_for(subject)[0])
        stored = info.state.messages
    finally:
        await nc.close()
    report(ROW, f"NATS: {n} envelopes x 3 publishes -> stream holds {n}", str(stored), stored == n)
    assert stored == n


async def wait_all(mesh: Mesh, ids: list[str]) -> None:
    """Every result, 100 waiters at a time (on Redis each waiter holds a pooled connection
    while it blocks, and the pool has 512)."""
    for i in range(0, len(ids), 100):
        await asyncio.gather(*(mesh.wait_result(t, timeout=120) for t in ids[i : i + 100]))


@pytest.mark.parametrize("broker", brokers(("nats_url", "redis_url")))
async def test_a_copy_after_the_dedupe_window_is_caught_by_the_ledger(
    broker: str, request: pytest.FixtureRequest, tmp_path: Path, report: Report
) -> None:
    url = request.getfixturevalue(broker)
    n = size(1000, 50)
    tenant = "t" + uuid.uuid4().hex[:8]
    settings = fast_settings(tmp_path)
    capability = "count"
    subject = subjects.task(tenant, capability)
    side_effects: Counter[str] = Counter()  # raw: one increment per handler run
    rerun = asyncio.Event()

    def agent_process() -> Mesh:
        """A fresh agent (no memory of earlier deliveries), as after a restart."""
        mesh = Mesh(url, tenant=tenant, settings=settings)

        @mesh.agent("counter-1", capabilities={capability: 4})
        async def count(task: TaskContext) -> dict[str, int]:
            side_effects[task.task_id] += 1
            if side_effects[task.task_id] > 1:
                rerun.set()
            return {"runs": side_effects[task.task_id]}

        return mesh

    # created before the broker's dedupe window, as a publisher's late retry would be
    born = (datetime.now(UTC) - timedelta(seconds=10 * TRUST_FIRST_DELIVERY_SECONDS)).isoformat()
    offers = []
    for i in range(n):
        env = Envelope.create(
            "task.offered",
            {"i": i},
            tenant_id=tenant,
            source="chaos",
            routing={"required_capabilities": [capability]},
        )
        env.metadata["timestamp"] = born
        offers.append(env)
    kind = broker.removesuffix("_url")
    try:
        async with agent_process() as mesh:
            await mesh.provision(subject, subjects.capability_group(capability))
            for env in offers:
                await mesh.publish_durably(subject, env)
            await wait_all(mesh, [env.id for env in offers])
        first = sum(side_effects.values())
        async with agent_process() as mesh:
            for env in offers:  # past the window: the broker sees new ids
                await publish_raw(mesh.transport, subject, env.encode(), durable=True)
            sentinels = [await mesh.submit(capability, {"sentinel": k}) for k in range(5)]
            await wait_all(mesh, sentinels)
            # the copies went before the sentinels; a straggler gets two more ack waits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rerun.wait(), 2 * settings.agentmesh_ack_wait)
    except Exception as exc:  # a broker error is a row of the table too
        report(ROW, f"{kind}: {n} tasks + {n} copies after the window", repr(exc)[:80], False)
        raise
    reruns = sum(c - 1 for c in side_effects.values())
    report(
        ROW,
        f"{kind}: {n} tasks + {n} copies after the dedupe window -> {n} runs (raw counter)",
        f"{first} runs, then {reruns} re-runs of copies",
        first == n and reruns == 0,
    )
    assert first == n
    assert reruns == 0


async def test_ledger_retention_is_checked_at_start(tmp_path: Path, report: Report) -> None:
    from agentmesh.errors import ConfigError
    from agentmesh.runtime.ledger import TTL_SECONDS

    settings = fast_settings(
        tmp_path,
        agentmesh_ack_wait=TTL_SECONDS,
        agentmesh_max_deliver=2,
        agentmesh_transport=f"memory://{uuid.uuid4().hex}",
    )
    try:
        Mesh(settings=settings)
        refused = False
    except ConfigError:
        refused = True
    report(
        ROW,
        "start refused when ack wait x max deliveries > ledger retention (7 d)",
        f"refused {refused}",
        refused,
    )
    assert refused
