"""Audit stores (memory, SQLite, PostgreSQL): append, query, history, integrity."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from agentmesh.security.audit import (
    AuditAction,
    AuditEntry,
    AuditFilter,
    AuditStatus,
    AuditStore,
    MemoryAuditStore,
    SqlAuditStore,
    actor_history,
    audit_store_for,
    audit_table,
    export_range,
    get_by_request_id,
    resource_history,
    verify_integrity,
)

PG = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditStore]:
    db_name = None
    if request.param == "memory":
        s: AuditStore = MemoryAuditStore()
    elif request.param == "sqlite":
        s = SqlAuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    else:
        db_name = "audit_" + uuid.uuid4().hex[:10]
        conn = await asyncpg.connect(f"{PG}/postgres")
        await conn.execute(f'CREATE DATABASE "{db_name}"')
        await conn.close()
        s = SqlAuditStore(f"{PG}/{db_name}")
    await s.connect()
    try:
        yield s
    finally:
        await s.close()
        if db_name is not None:
            conn = await asyncpg.connect(f"{PG}/postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await conn.close()


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
        async with s.engine.begin() as conn:
            await conn.execute(
                sa.update(audit_table)
                .where(audit_table.c.entry_id == second.entry_id)
                .values(status="denied")
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
    assert audit_store_for("postgresql://u@h/d").url.startswith("postgresql+asyncpg://")  # type: ignore[attr-defined]
