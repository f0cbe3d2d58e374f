"""Audit stores (memory, SQLite, PostgreSQL): append, query, history, integrity."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from agentmesh.security.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditFilter,
    AuditStatus,
    AuditStore,
    actor_history,
    export_range,
    get_by_request_id,
    resource_history,
    verify_integrity,
)
from agentmesh.store.audit_log import MemoryAuditStore, SqlAuditStore, audit_store_for

PG = "postgresql://postgres@127.0.0.1:5432"


@contextlib.asynccontextmanager
async def scratch_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty SQLite file or PostgreSQL database (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    db_name = "audit_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(f"{PG}/postgres")
    await conn.execute(f'CREATE DATABASE "{db_name}"')
    await conn.close()
    try:
        yield f"{PG}/{db_name}"
    finally:
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditStore]:
    if request.param == "memory":
        s: AuditStore = MemoryAuditStore()
        yield s
        return
    async with scratch_url(request.param, tmp_path) as url:
        s = SqlAuditStore(url)
        await s.connect()
        try:
            yield s
        finally:
            await s.close()


def entry(action: AuditAction, tenant: str = "acme", **kw: str) -> AuditEntry:
    return AuditEntry.new(action, AuditStatus.SUCCESS, tenant_id=tenant, **kw)  # type: ignore[arg-type]


async def test_append_query_and_filters(store: AuditStore) -> None:
    await store.append(
        entry(
            AuditAction.AGENT_CREATED,
            actor="alice",
            resource_type="agent",
            resource_id="a1",
            request_id="r1",
        )
    )
    await store.append(
        entry(AuditAction.AGENT_TERMINATED, actor="bob", resource_type="agent", resource_id="a1")
    )
    await store.append(entry(AuditAction.AUTH_FAILURE, tenant="other", request_id="r1"))
    entries, total = await store.query(AuditFilter(tenant_id="acme"))
    assert total == 2
    assert [e.action for e in entries] == [
        AuditAction.AGENT_TERMINATED,
        AuditAction.AGENT_CREATED,
    ]
    page, total = await store.query(AuditFilter(tenant_id="acme"), limit=1, offset=1)
    assert total == 2
    assert page[0].action is AuditAction.AGENT_CREATED
    assert [e.actor for e in await actor_history(store, "acme", "alice")] == ["alice"]
    assert len(await resource_history(store, "acme", "agent", "a1")) == 2
    assert {e.tenant_id for e in await get_by_request_id(store, "r1")} == {"acme", "other"}
    got = await store.get_by_id(entries[0].entry_id)
    assert got == entries[0]
    assert await store.get_by_id("nope") is None
    denied, n = await store.query(AuditFilter(status="denied"))
    assert n == 0
    assert denied == []


async def test_integrity_chain_and_export(store: AuditStore) -> None:
    for i in range(5):
        await store.append(entry(AuditAction.TASK_ASSIGNED, resource_id=f"t{i}"))
    report = await verify_integrity(store)
    assert report.ok
    assert report.checked == 5
    everything = await store.all_in_order()
    exported = await export_range(store, everything[1].timestamp, everything[3].timestamp, "acme")
    assert [e.resource_id for e in exported] == ["t1", "t2"]


async def test_tampering_is_detected(tmp_path: Path) -> None:
    s = SqlAuditStore(f"sqlite:///{tmp_path / 'a.db'}")
    await s.connect()
    try:
        for i in range(3):
            await s.append(entry(AuditAction.AGENT_UPDATED, resource_id=f"a{i}"))
        second = (await s.all_in_order())[1]
        async with s.db.write() as c:
            await c.execute(
                "UPDATE api_audit_log SET status = 'denied' WHERE entry_id = ?", second.entry_id
            )
        report = await verify_integrity(s)
        assert not report.ok
        assert report.first_bad_entry == second.entry_id
        assert report.checked == 1
    finally:
        await s.close()


async def test_memory_deletion_is_detected() -> None:
    s = MemoryAuditStore()
    for i in range(3):
        await s.append(entry(AuditAction.AGENT_UPDATED, resource_id=f"a{i}"))
    del s._entries[1]
    assert not (await verify_integrity(s)).ok


def test_store_for_url() -> None:
    assert isinstance(audit_store_for("memory://"), MemoryAuditStore)
    assert isinstance(audit_store_for("sqlite:///x.db"), SqlAuditStore)
    assert audit_store_for("postgresql://u@h/d").url == "postgresql://u@h/d"  # type: ignore[attr-defined]


def domain_entry(position: int, tenant: str = "acme") -> AuditEntry:
    return AuditEntry.new(
        AuditAction.TASK_COMPLETED,
        AuditStatus.SUCCESS,
        tenant_id=tenant,
        actor="agent-1",
        resource_type="task",
        resource_id=f"t{position}",
        event_position=position,
    )


async def test_an_event_position_is_appended_once(store: AuditStore) -> None:
    first = await store.append(domain_entry(1))
    await store.append(entry(AuditAction.AUTH_FAILURE))
    again = await store.append(domain_entry(1))
    assert again == first  # the stored entry, not a second one
    added = await store.append_many(
        [domain_entry(2), domain_entry(1), entry(AuditAction.ADMIN_ACTION), domain_entry(3)]
    )
    assert [e.event_position for e in added] == [2, None, 3]
    assert await store.append_many([domain_entry(2), domain_entry(3)]) == []
    everything = await store.all_in_order()
    assert [e.event_position for e in everything] == [1, None, 2, None, 3]
    assert everything[2].prev_hash == everything[1].hash  # one chain through both kinds
    report = await verify_integrity(store)
    assert (report.ok, report.checked) == (True, 5)
    assert (await store.get_by_id(first.entry_id)) == first


async def test_event_position_is_covered_by_the_hash(store: AuditStore) -> None:
    stored = await store.append(domain_entry(7))
    assert stored.content_hash(GENESIS) == stored.hash
    moved = AuditEntry(**{**stored.to_dict(), "event_position": 8})
    assert moved.content_hash(GENESIS) != stored.hash


def test_entries_without_position_hash_as_before_the_column() -> None:
    e = entry(AuditAction.AUTH_FAILURE, actor="eve")
    body = {k: v for k, v in dataclasses.asdict(e).items() if k not in ("prev_hash", "hash")}
    del body["event_position"]
    data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
    assert e.content_hash(GENESIS) == hashlib.sha256(GENESIS.encode() + data).hexdigest()


async def test_two_writers_on_one_database_extend_one_chain(sql_url: str) -> None:
    """Two stores with their own connections (as two processes have) append at once:
    API entries and the same domain events; one linear chain, each position once."""
    api, trail = SqlAuditStore(sql_url), SqlAuditStore(sql_url)
    await api.connect()
    await trail.connect()
    try:

        async def api_writer() -> None:
            for i in range(40):
                await api.append(entry(AuditAction.AUTH_FAILURE, request_id=f"r{i}"))

        async def trail_writer(store: AuditStore) -> None:
            for start in range(1, 41, 8):
                await store.append_many([domain_entry(p) for p in range(start, start + 8)])

        await asyncio.gather(api_writer(), trail_writer(trail), trail_writer(api))
        everything = await api.all_in_order()
        positions = [e.event_position for e in everything if e.event_position is not None]
        assert sorted(positions) == list(range(1, 41))
        assert len(everything) == 80
        report = await verify_integrity(trail)
        assert (report.ok, report.checked) == (True, 80)
    finally:
        await api.close()
        await trail.close()


async def test_concurrent_appends_share_transactions(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends made while a write is under way go into the next write together; each
    returns its own chained entry, and the chain stays one line."""
    store = SqlAuditStore(sql_url)
    await store.connect()
    writes = 0
    real = store.append_many

    async def counting(entries: Any) -> list[AuditEntry]:
        nonlocal writes
        writes += 1
        return await real(entries)

    monkeypatch.setattr(store, "append_many", counting)
    try:
        made = [entry(AuditAction.AUTH_SUCCESS, request_id=f"r{i}") for i in range(60)]
        stored = await asyncio.gather(*(store.append(e) for e in made))
        assert [s.entry_id for s in stored] == [e.entry_id for e in made]
        assert all(s.hash for s in stored)
        assert writes < len(made)
        report = await verify_integrity(store)
        assert (report.ok, report.checked) == (True, 60)
    finally:
        await store.close()
