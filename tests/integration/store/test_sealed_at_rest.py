"""Task payloads and results are encrypted at rest: reading the SQLite file and the
PostgreSQL tables raw finds no plaintext, while authorized reads decrypt."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from agentmesh import subjects
from agentmesh.commands import (
    CompleteTask,
    CreateTenant,
    GetTask,
    RecordTask,
    RunTask,
    SubmitTask,
    build_bus,
)
from agentmesh.envelope import Envelope
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.outbox import OutboxRelay
from agentmesh.store.persistence import open_persistence
from agentmesh.transports import create_transport
from tests.contract.store_fixtures import (  # noqa: F401  (pg_template is a fixture)
    pg_template,
    store_url_for,
)
from tests.helpers import Collector

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with store_url_for(request.param, tmp_path, request) as url:
        yield url


def _files_text(directory: Path) -> str:
    """Every file of the SQLite database (main file, WAL, shared memory) as bytes."""
    return "".join(f.read_bytes().decode("latin-1") for f in directory.iterdir() if f.is_file())


async def _raw_text(url: str, tmp_path: Path) -> str:
    """Everything the database holds, as the disk (SQLite) or the server (PostgreSQL) has it."""
    if url.startswith("sqlite"):
        return _files_text(tmp_path)
    conn = await asyncpg.connect("postgresql://" + url.split("://", 1)[1])
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        parts = []
        for t in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{t["tablename"]}" t')
            parts += [r["row"] for r in rows]
        return "\n".join(parts)
    finally:
        await conn.close()


async def test_no_plaintext_payload_or_result_at_rest(db_url: str, tmp_path: Path) -> None:
    secret_in = f"in-{uuid.uuid4().hex}"
    secret_out = f"out-{uuid.uuid4().hex}"
    bus_secret = f"bus-{uuid.uuid4().hex}"
    old_key, new_key = EncryptionService.generate_key(), EncryptionService.generate_key()
    crypto = EncryptionService(old_key)
    p = await open_persistence(db_url, crypto=crypto)
    transport = create_transport(f"memory://{uuid.uuid4().hex}")
    await transport.connect()
    offers = Collector()
    await transport.subscribe(subjects.task("acme", "summarize"), offers)
    try:
        bus = build_bus(p.store, p.read_models, crypto)
        await bus.execute(CreateTenant("Acme", tenant_id="acme"))
        stored = await bus.execute(SubmitTask("acme", "summarize", {"text": secret_in}))
        task_id = str(stored.aggregate_id)
        await bus.execute(RunTask("acme", task_id, "agent-1"))
        await bus.execute(CompleteTask("acme", task_id, {"summary": secret_out}))
        offered = Envelope.create("task.offered", {"text": bus_secret}, tenant_id="acme")
        await bus.execute(
            RecordTask(
                "acme",
                offered.id,
                "summarize",
                offered,
                subjects.task("acme", "summarize"),
                payload=offered.payload,
            )
        )
        await p.projector.catch_up()
        raw = await _raw_text(db_url, tmp_path)
        assert task_id in raw  # the rows are there ...
        for secret in (secret_in, secret_out, bus_secret):
            assert secret not in raw  # ... their payloads and results are not readable

        doc = await bus.query(GetTask("acme", task_id))  # authorized reads decrypt
        assert doc["payload"] == {"text": secret_in}
        assert doc["result"] == {"summary": secret_out}
        assert (await bus.query(GetTask("acme", offered.id)))["payload"] == {"text": bus_secret}

        # the relay opens the outbox rows: agents receive the plaintext offer
        await OutboxRelay(p.store, transport).publish_batch()
        (msg,) = await offers.wait_for(1)
        assert msg.envelope.payload["text"] == secret_in
        assert "encrypted" not in msg.envelope.security
    finally:
        await transport.close()
        await p.close()

    # a rotated key ring (new key first, old kept) still reads what the old key sealed
    rotated = EncryptionService(f"{new_key},{old_key}")
    p = await open_persistence(db_url, crypto=rotated)
    try:
        doc = await build_bus(p.store, p.read_models, rotated).query(GetTask("acme", task_id))
        assert doc["payload"] == {"text": secret_in}
    finally:
        await p.close()
