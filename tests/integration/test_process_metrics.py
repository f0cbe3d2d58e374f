"""The seed metrics that nothing updated before, each driven through its real code path and
read back through the Prometheus text parser (the same exposition ``GET /metrics`` and an
agent process's ``PROMETHEUS_PORT`` serve)."""

from __future__ import annotations

import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agentmesh import Mesh
from agentmesh.observability import metrics
from agentmesh.patterns import names
from agentmesh.patterns.blackboard import Blackboard
from agentmesh.store.base import NewEvent
from agentmesh.store.postgres import PostgresEventStore
from agentmesh.store.sqlite import READERS, SqliteEventStore
from agentmesh.transports import Message
from tests.helpers import eventually, fast_settings

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def sample(name: str, **labels: str) -> float:
    """The value of one sample of the registry's text exposition (0 when absent)."""
    body, _ = metrics.exposition()
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def event(n: int) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "ThingHappened", "2026-12-04T00:00:00+00:00", f'{{"n":{n}}}')


async def test_store_queries_connections_and_caches_are_measured(tmp_path: Path) -> None:
    inserts = sample("agentmesh_db_query_duration_seconds_count", query_type="insert")
    selects = sample("agentmesh_db_query_duration_seconds_count", query_type="select")
    before = sample("agentmesh_db_connections_active")
    store = SqliteEventStore(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await store.connect()
    try:
        # the writer and the pool of readers
        assert sample("agentmesh_db_connections_active") == before + 1 + READERS
        for i in range(3):
            await store.append("acme", "thing-1", i, [event(i)])
        loaded = await store.load("acme", "thing-1")
        assert len(loaded) == 3
        assert sample("agentmesh_db_query_duration_seconds_count", query_type="insert") >= (
            inserts + 3
        )
        assert sample("agentmesh_db_query_duration_seconds_count", query_type="select") > selects
        assert sample("agentmesh_db_query_duration_seconds_sum", query_type="insert") > 0
        # the query-type classification cache: the same statements again are hits
        assert 0 < sample("agentmesh_cache_hit_rate", cache_type="sql_query_type") <= 1
    finally:
        await store.close()
    assert sample("agentmesh_db_connections_active") == before


async def test_postgres_pool_connections_and_placeholder_cache_hit_rate() -> None:
    store = PostgresEventStore(PG_URL)
    await store.connect()
    try:
        assert sample("agentmesh_db_connections_active") >= 1
        stream = f"thing-{uuid.uuid4().hex[:8]}"
        for i in range(4):
            await store.append("acme", stream, i, [event(i)])
        # the ?-to-$n rewrite of repeated statements is served from its cache
        rate = sample("agentmesh_cache_hit_rate", cache_type="sql_placeholders")
        assert 0.5 < rate <= 1
    finally:
        await store.close()


async def test_received_messages_and_collaboration_events_are_counted(tmp_path: Path) -> None:
    tenant = "t" + uuid.uuid4().hex[:8]
    received = sample("messages_received_total", platform="memory", topic="bb")
    posts = sample(
        "agentmesh_collaboration_events_total", tenant_id=tenant, event_type="blackboard.updated"
    )
    url = f"memory://{uuid.uuid4().hex}"
    writer = Blackboard(Mesh(url, tenant=tenant, settings=fast_settings(tmp_path)), "b", writer="w")
    reader = Mesh(url, tenant=tenant, settings=fast_settings(tmp_path))
    await writer.mesh.start(registry=False)
    await reader.start(registry=False)
    seen: list[Message] = []

    async def note(msg: Message) -> None:
        seen.append(msg)

    try:
        await reader.transport.subscribe(names.blackboard(tenant, "facts"), note)
        await writer.write("facts", "x", 1)
        await writer.write("facts", "y", 2)
        await eventually(lambda: len(seen) >= 2, 5, what="the notices delivered")
    finally:
        await writer.mesh.stop()
        await reader.stop()
    assert (
        sample(
            "agentmesh_collaboration_events_total",
            tenant_id=tenant,
            event_type="blackboard.updated",
        )
        == posts + 2
    )
    assert sample("messages_received_total", platform="memory", topic="bb") >= received + 2
