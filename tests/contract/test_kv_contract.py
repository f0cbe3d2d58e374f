"""One contract suite for the key-value seam, over memory:// and a private NATS server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from agentmesh.errors import ConcurrencyError, Conflict, ValidationError
from agentmesh.kv import KeyValueStore, KvEntry, open_kv
from agentmesh.kv.base import modify
from agentmesh.transports import Transport, create_transport
from tests.helpers import eventually, quiet_period

MakeKv = Callable[[], Awaitable[KeyValueStore]]


@pytest.fixture(params=["memory", "nats"])
async def make_kv(request: pytest.FixtureRequest) -> AsyncIterator[MakeKv]:
    url = f"memory://{uuid.uuid4().hex}" if request.param == "memory" else None
    if url is None:
        url = request.getfixturevalue("nats_url")
    bucket = "KVT_" + uuid.uuid4().hex[:8]
    transports: list[Transport] = []

    async def make() -> KeyValueStore:
        t = create_transport(url)
        await t.connect()
        transports.append(t)
        return open_kv(t, bucket)

    yield make
    for t in transports:
        await t.close()


async def test_create_get_update_delete(make_kv: MakeKv) -> None:
    kv = await make_kv()
    assert await kv.get("a.b") is None
    rev = await kv.create("a.b", b"one")
    entry = await kv.get("a.b")
    assert entry == KvEntry("a.b", b"one", rev)
    with pytest.raises(Conflict):
        await kv.create("a.b", b"again")
    rev2 = await kv.update("a.b", b"two", rev)
    assert rev2 > rev
    with pytest.raises(ConcurrencyError):
        await kv.update("a.b", b"stale", rev)
    await kv.delete("a.b")
    assert await kv.get("a.b") is None
    assert await kv.keys("a.>") == []
    await kv.create("a.b", b"reborn")  # a deleted key can be created again


async def test_state_is_shared_between_connections(make_kv: MakeKv) -> None:
    one, two = await make_kv(), await make_kv()
    await one.put("x.1", b"v")
    await one.put("x.2", b"w")
    await one.put("y.1", b"z")
    entry = await two.get("x.1")
    assert entry is not None
    assert entry.value == b"v"
    assert await two.keys("x.*") == ["x.1", "x.2"]
    assert await two.keys() == ["x.1", "x.2", "y.1"]


async def test_concurrent_compare_and_set_loses_no_increment(make_kv: MakeKv) -> None:
    stores = [await make_kv() for _ in range(3)]
    await stores[0].put("counter.n", b"0")

    async def increment(kv: KeyValueStore, times: int) -> int:
        conflicts = 0
        for _ in range(times):
            while True:
                entry = await kv.get("counter.n")
                assert entry is not None
                assert entry.value is not None
                try:
                    await kv.update("counter.n", str(int(entry.value) + 1).encode(), entry.revision)
                    break
                except ConcurrencyError:
                    conflicts += 1
        return conflicts

    await asyncio.gather(*(increment(kv, 10) for kv in stores))
    final = await stores[1].get("counter.n")
    assert final is not None
    assert final.value == b"30"


async def test_modify_is_one_compare_and_set_loop_that_loses_nothing(make_kv: MakeKv) -> None:
    stores = [await make_kv() for _ in range(3)]  # "counter.m" starts absent: create races too

    async def bump(kv: KeyValueStore) -> None:
        for _ in range(10):
            await modify(kv, "counter.m", lambda old: str(int(old or b"0") + 1).encode())

    await asyncio.gather(*(bump(kv) for kv in stores))
    final = await stores[2].get("counter.m")
    assert final is not None
    assert final.value == b"30"


async def test_watch_delivers_current_values_then_changes(make_kv: MakeKv) -> None:
    writer, reader = await make_kv(), await make_kv()
    await writer.put("w.old", b"1")
    await writer.put("other.k", b"x")
    seen: list[KvEntry] = []
    live: list[KvEntry] = []

    async def record(entry: KvEntry) -> None:
        seen.append(entry)

    async def record_live(entry: KvEntry) -> None:
        live.append(entry)

    watch = await reader.watch("w.>", record)
    live_watch = await reader.watch("w.>", record_live, initial=False)
    await eventually(lambda: len(seen) == 1, timeout=5)
    await writer.put("w.new", b"2")
    await writer.delete("w.old")
    await eventually(lambda: len(seen) == 3 and len(live) == 2, timeout=5)
    assert [(e.key, e.value) for e in seen] == [
        ("w.old", b"1"),
        ("w.new", b"2"),
        ("w.old", None),
    ]
    assert [e.key for e in live] == ["w.new", "w.old"]
    assert seen[1].revision < seen[2].revision
    await watch.stop()
    await live_watch.stop()
    await writer.put("w.after", b"3")
    await quiet_period(0.1)  # a stopped watch sees nothing more
    assert len(seen) == 3


async def test_invalid_keys_are_rejected(make_kv: MakeKv) -> None:
    kv = await make_kv()
    for bad in ("", "a..b", "a.*", "a b"):
        with pytest.raises(ValidationError):
            await kv.put(bad, b"x")
