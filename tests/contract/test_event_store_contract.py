"""The EventStore contract: every implementation (memory, SQLite, PostgreSQL) passes it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agentmesh.domain import AgentHeartbeatReceivedEvent
from agentmesh.domain.values import utcnow
from agentmesh.envelope import Envelope
from agentmesh.errors import ConcurrencyError, CorruptEventError, ValidationError
from agentmesh.store import FullEventStore, NewEvent, OutboxMessage, StreamAppend
from tests.contract import store_fixtures
from tests.contract.store_fixtures import open_store

# fixtures of the shared store module, registered for this module
pg_template = store_fixtures.pg_template
store_url = store_fixtures.store_url
store = store_fixtures.store


def events(tenant: str, stream: str, n: int = 1) -> list[NewEvent]:
    return [
        NewEvent.of(
            AgentHeartbeatReceivedEvent(aggregate_id=stream, tenant_id=tenant, received_at=utcnow())
        )
        for _ in range(n)
    ]


async def test_append_then_load_returns_events_in_version_order(store: FullEventStore) -> None:
    batch = events("acme", "agent-a", 3)
    result = await store.append("acme", "agent-a", 0, batch)
    assert result.version == 3
    assert result.positions == (1, 2, 3)
    loaded = await store.load("acme", "agent-a")
    assert [e.version for e in loaded] == [1, 2, 3]
    assert [e.event_id for e in loaded] == [e.event_id for e in batch]
    assert [e.data for e in loaded] == [e.data for e in batch]
    assert loaded[0].decode().event_type == "AgentHeartbeatReceived"
    assert [e.version for e in await store.load("acme", "agent-a", from_version=2)] == [2, 3]
    assert await store.stream_version("acme", "agent-a") == 3


async def test_missing_stream_is_empty_at_version_zero(store: FullEventStore) -> None:
    assert await store.load("acme", "nothing-here") == []
    assert await store.stream_version("acme", "nothing-here") == 0
    assert await store.head() == 0
    assert await store.read_all() == []


async def test_stale_expected_version_raises_and_writes_nothing(store: FullEventStore) -> None:
    await store.append("acme", "s1", 0, events("acme", "s1", 2))
    env = Envelope.create("x", tenant_id="acme")
    with pytest.raises(ConcurrencyError, match="version 2, expected 1"):
        await store.append(
            "acme", "s1", 1, events("acme", "s1", 3), outbox=[OutboxMessage("am.acme.evt.x", env)]
        )
    with pytest.raises(ConcurrencyError):
        await store.append("acme", "s1", 0, events("acme", "s1"))
    assert await store.stream_version("acme", "s1") == 2
    assert await store.head() == 2
    assert await store.outbox_pending_count() == 0


async def test_duplicate_event_id_is_refused(store: FullEventStore) -> None:
    batch = events("acme", "s1")
    await store.append("acme", "s1", 0, batch)
    with pytest.raises(ConcurrencyError):
        await store.append("acme", "s2", 0, batch)
    assert await store.head() == 1


async def test_bad_arguments_are_validation_errors(store: FullEventStore) -> None:
    with pytest.raises(ValidationError):
        await store.append("acme", "s1", 0, [])
    with pytest.raises(ValidationError):
        await store.append("acme", "s1", -1, events("acme", "s1"))
    with pytest.raises(ValidationError):
        await store.append("", "s1", 0, events("acme", "s1"))


async def test_streams_are_isolated_per_tenant(store: FullEventStore) -> None:
    await store.append("acme", "agent-a", 0, events("acme", "agent-a", 2))
    await store.append("globex", "agent-a", 0, events("globex", "agent-a", 1))
    assert len(await store.load("acme", "agent-a")) == 2
    assert len(await store.load("globex", "agent-a")) == 1
    assert {e.tenant_id for e in await store.load("globex", "agent-a")} == {"globex"}


async def test_read_all_is_gapless_and_pages(store: FullEventStore) -> None:
    for i in range(5):
        await store.append("acme", f"s{i}", 0, events("acme", f"s{i}", 3))
    everything = await store.read_all()
    assert [e.position for e in everything] == list(range(1, 16))
    page = await store.read_all(from_position=4, limit=5)
    assert [e.position for e in page] == [4, 5, 6, 7, 8]
    assert await store.read_all(from_position=16) == []
    assert await store.head() == 15


async def test_outbox_rows_commit_with_events_in_order(store: FullEventStore) -> None:
    envs = [Envelope.create("t", {"i": i}, tenant_id="acme") for i in range(3)]
    await store.append(
        "acme",
        "s1",
        0,
        events("acme", "s1"),
        outbox=[OutboxMessage("am.acme.evt.t", e) for e in envs],
    )
    pending = await store.outbox_pending()
    assert [Envelope.decode(p.envelope).id for p in pending] == [e.id for e in envs]
    assert pending[0].subject == "am.acme.evt.t"
    assert pending[0].tenant_id == "acme"
    assert await store.outbox_pending_count() == 3
    await store.outbox_mark_sent([pending[0].id, pending[1].id])
    assert [p.id for p in await store.outbox_pending()] == [pending[2].id]
    assert await store.outbox_pending_count() == 1


async def test_processed_messages_are_recorded_once(store: FullEventStore) -> None:
    assert await store.record_processed("projector", "m1") is True
    assert await store.record_processed("projector", "m1") is False
    assert await store.record_processed("other", "m1") is True


async def test_corrupted_event_names_its_position(store: FullEventStore) -> None:
    await store.append("acme", "s1", 0, events("acme", "s1"))
    await store.append("acme", "s2", 0, [NewEvent("e-bad-json", "AgentResumed", "t", "{oops")])
    await store.append("acme", "s3", 0, [NewEvent("e-bad-type", "NoSuchEvent", "t", "{}")])
    first, bad_json, bad_type = await store.read_all()
    assert first.decode().tenant_id == "acme"
    with pytest.raises(CorruptEventError, match="position 2") as exc:
        bad_json.decode()
    assert exc.value.position == 2
    with pytest.raises(CorruptEventError, match=r"position 3.*NoSuchEvent"):
        bad_type.decode()


async def test_fifty_concurrent_appends_at_one_version_exactly_one_wins(
    store: FullEventStore,
) -> None:
    await store.append("acme", "hot", 0, events("acme", "hot"))

    async def attempt() -> bool:
        try:
            await store.append("acme", "hot", 1, events("acme", "hot", 3))
        except ConcurrencyError:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    assert results.count(True) == 1
    assert results.count(False) == 49
    loaded = await store.load("acme", "hot")
    assert [e.version for e in loaded] == [1, 2, 3, 4]
    assert await store.head() == 4


async def test_concurrent_writers_and_readers_see_gapless_contiguous_batches(
    store_url: str, store: FullEventStore
) -> None:
    await concurrent_writers_and_readers(store_url, store, writers=10, appends=100, batch=10)


async def concurrent_writers_and_readers(
    store_url: str, store: FullEventStore, *, writers: int, appends: int, batch: int
) -> float:
    """``writers`` concurrent writers (on two store instances) append ``appends`` batches
    of ``batch`` events each while 2 live readers follow ``read_all``; asserts positions
    1..N unique and gapless for every reader and every batch contiguous. Returns seconds."""
    expected_total = writers * appends * batch
    errors: list[BaseException] = []
    done = asyncio.Event()
    started = time.monotonic()
    async with open_store(store_url) if not store_url.startswith("memory") else _same(store) as s2:
        stores = [store, s2]

        async def writer(w: int) -> None:
            s = stores[w % 2]
            for i in range(appends):
                try:
                    await s.append(
                        f"t{w % 3}", f"w{w}", i * batch, events(f"t{w % 3}", f"w{w}", batch)
                    )
                except BaseException as exc:  # noqa: BLE001 - recorded and asserted below
                    errors.append(exc)
                    return

        async def reader() -> list[tuple[int, str, int]]:
            seen: list[tuple[int, str, int]] = []
            cursor = 1
            deadline = time.monotonic() + 60 + expected_total / 500
            while time.monotonic() < deadline:
                page = await store.read_all(from_position=cursor, limit=250)
                assert [e.position for e in page] == list(range(cursor, cursor + len(page)))
                seen += [(e.position, e.stream_id, e.version) for e in page]
                cursor += len(page)
                if done.is_set() and cursor > expected_total:
                    break
                if not page:
                    await asyncio.sleep(0.005)
            return seen

        readers = [asyncio.create_task(reader()) for _ in range(2)]
        await asyncio.gather(*(writer(w) for w in range(writers)))
        done.set()
        seen_by = await asyncio.gather(*readers)
    elapsed = time.monotonic() - started
    assert errors == []
    for seen in seen_by:
        assert [p for p, _, _ in seen] == list(range(1, expected_total + 1))
    everything: list[Any] = []
    while len(everything) < expected_total + 1:
        page = await store.read_all(from_position=len(everything) + 1, limit=10_000)
        if not page:
            break
        everything += page
    assert [e.position for e in everything] == list(range(1, expected_total + 1))
    # each append is contiguous: versions kb+1..kb+b sit at consecutive positions
    by_stream: dict[str, list[tuple[int, int]]] = {}
    for e in everything:
        by_stream.setdefault(e.stream_id, []).append((e.version, e.position))
    for rows in by_stream.values():
        assert [v for v, _ in rows] == list(range(1, appends * batch + 1))
        for k in range(appends):
            chunk = rows[k * batch : (k + 1) * batch]
            first = chunk[0][1]
            assert [p for _, p in chunk] == list(range(first, first + batch))
    return elapsed


class _same:
    """Async context manager yielding an existing store (memory has one instance)."""

    def __init__(self, store: FullEventStore) -> None:
        self.store = store

    async def __aenter__(self) -> FullEventStore:
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_append_streams_writes_every_stream_in_one_contiguous_batch(
    store: FullEventStore,
) -> None:
    await store.append("acme", "before", 0, events("acme", "before"))
    env = Envelope.create("x", tenant_id="acme")
    results = await store.append_streams(
        "acme",
        [
            StreamAppend("t-1", 0, events("acme", "t-1", 2), [OutboxMessage("am.acme.a", env)]),
            StreamAppend("before", 1, events("acme", "before", 1)),
            StreamAppend("t-2", 0, events("acme", "t-2", 3), [OutboxMessage("am.acme.b", env)]),
        ],
    )
    assert [(r.version, r.positions) for r in results] == [
        (2, (2, 3)),
        (2, (4,)),
        (3, (5, 6, 7)),
    ]
    assert [e.stream_id for e in await store.read_all()] == ["before", "t-1", "t-1", "before"] + [
        "t-2"
    ] * 3
    assert [r.subject for r in await store.outbox_pending()] == ["am.acme.a", "am.acme.b"]


async def test_append_streams_is_all_or_nothing(store: FullEventStore) -> None:
    await store.append("acme", "taken", 0, events("acme", "taken"))
    env = Envelope.create("x", tenant_id="acme")
    with pytest.raises(ConcurrencyError, match="taken"):
        await store.append_streams(
            "acme",
            [
                StreamAppend("fresh", 0, events("acme", "fresh"), [OutboxMessage("am.a", env)]),
                StreamAppend("taken", 0, events("acme", "taken")),
            ],
        )
    assert await store.head() == 1
    assert await store.stream_version("acme", "fresh") == 0
    assert await store.outbox_pending_count() == 0
    with pytest.raises(ValidationError, match="twice"):
        await store.append_streams(
            "acme",
            [StreamAppend("x", 0, events("acme", "x")), StreamAppend("x", 0, events("acme", "x"))],
        )
    with pytest.raises(ValidationError):
        await store.append_streams("acme", [])
    assert await store.head() == 1
