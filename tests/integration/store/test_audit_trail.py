"""One audit trail on SQLite and PostgreSQL: what the API saw and what an agent did, in
``GET /audit`` in order; rebuilds and a second writer add nothing twice; the chain holds;
a database from before the trail keeps its chain through the migration."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from agentmesh.api.context import ApiContext
from agentmesh.api.fastapi_app import create_app
from agentmesh.api.options import ApiOptions
from agentmesh.commands import AssignTask, CompleteTask, StartTask, SubmitTask, build_bus
from agentmesh.config import Settings
from agentmesh.security.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditStatus,
    verify_integrity,
)
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.audit_log import SqlAuditStore
from agentmesh.store.audit_trail import AuditTrail
from agentmesh.store.migrate import alembic_config, migrate, sqlalchemy_url
from agentmesh.store.persistence import open_persistence
from tests.contract.store_fixtures import (  # noqa: F401  (pg_template is a fixture)
    _db_url,
    create_pg_database,
    drop_pg_database,
    pg_template,
    store_url_for,
)
from tests.helpers import until

pytestmark = pytest.mark.integration
SECRET = "audit-trail-secret-" + "a" * 45


async def audit_page(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> Any:
    r = await client.get("/v1/tenants/acme/audit", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def until_listed(
    client: httpx.AsyncClient, headers: dict[str, str], action: str, timeout: float = 10
) -> None:
    async def listed() -> int:
        return int((await audit_page(client, headers, action=action))["pagination"]["total"])

    await until(listed, timeout, f"{action} in the audit trail")


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated SQLite file or PostgreSQL database of its own."""
    async with store_url_for(request.param, tmp_path, request) as url:
        yield url


async def test_api_and_agent_entries_form_one_trail(db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        jwt_secret_key=SECRET,
        encryption_key=Fernet.generate_key().decode(),
        database_url=db_url,
        environment="testing",
        agentmesh_data_dir=tmp_path,
    )
    app = create_app(
        settings, options=ApiOptions(rate_limit_enabled=False, projector_interval=0.05)
    )
    async with app.router.lifespan_context(app):
        ctx: ApiContext = app.state.ctx
        admin = {"Authorization": f"Bearer {ctx.tokens.create('alice', 'acme', ['admin'])}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body = {"agent_id": "agent-1", "name": "Agent 1", "capabilities": [{"name": "sum"}]}
            r = await client.post("/v1/tenants/acme/agents", json=body, headers=admin)
            assert r.status_code == 201, r.text

            # the agent works through another connection (as the task tracker does),
            # never through the API
            worker = await open_persistence(db_url)
            try:
                bus = build_bus(
                    worker.store,
                    worker.read_models,
                    EncryptionService(Fernet.generate_key().decode()),
                )
                task_id = (
                    await bus.execute(SubmitTask("acme", "sum", {"text": "secret"}))
                ).aggregate_id
                await bus.execute(AssignTask("acme", task_id, "agent-1"))
                await bus.execute(StartTask("acme", task_id))
                await bus.execute(CompleteTask("acme", task_id, {"summary": "hidden"}))
            finally:
                await worker.close()
            await until_listed(client, admin, "task_completed")  # the projector's loop

            r = await client.get("/v1/tenants/acme/agents", headers={"Authorization": "Bearer x"})
            assert r.status_code == 401
            page = await audit_page(client, admin, limit=1000)
            oldest_first = [(e["action"], e["actor"]) for e in reversed(page["entries"])]
            api_created = oldest_first.index(("agent_created", "alice"))
            assert oldest_first.index(("agent_created", "agent-1")) < api_created
            completed = oldest_first.index(("task_completed", "agent-1"))
            assert api_created < completed < oldest_first.index(("auth_failure", ""))
            assert ("task_submitted", "system") in oldest_first
            done = next(e for e in page["entries"] if e["action"] == "task_completed")
            assert done["event_position"] is not None
            assert (done["resource_type"], done["resource_id"]) == ("task", task_id)
            assert "result" not in done["details"]

            # filters
            mine = await audit_page(client, admin, actor="agent-1", resource_type="task")
            assert {e["action"] for e in mine["entries"]} == {"task_assigned", "task_completed"}
            one = await audit_page(client, admin, resource_id=task_id, action="task_completed")
            assert [e["entry_id"] for e in one["entries"]] == [done["entry_id"]]
            later = await audit_page(client, admin, since=done["timestamp"], limit=1000)
            assert done["entry_id"] in {e["entry_id"] for e in later["entries"]}
            assert "agent_created" not in {e["action"] for e in later["entries"]}
            before = await audit_page(client, admin, until=done["timestamp"], limit=1000)
            assert done["entry_id"] not in {e["entry_id"] for e in before["entries"]}
            for bad in (
                {"since": "yesterday"},
                {"since": done["timestamp"], "until": done["timestamp"]},
                {"since": "0001-01-01T00:00:00+05:00"},
                {"action": "task_exploded"},
                {"verb": "x"},
            ):
                r = await client.get("/v1/tenants/acme/audit", params=bad, headers=admin)
                assert r.status_code == 422, (bad, r.text)
                assert set(r.json()) <= {"error", "code", "details"}

            # a rebuild, and a second writer replaying every event, add nothing
            total = page["pagination"]["total"]
            await ctx.persistence.projector.rebuild()
            other = await open_persistence(db_url)
            other_audit = SqlAuditStore(db_url, db=other.db)
            try:
                other.projector.attach(AuditTrail(other_audit))
                await other.projector.catch_up()
            finally:
                await other.close()
            assert (await audit_page(client, admin))["pagination"]["total"] == total
            report = await verify_integrity(ctx.audit)
            assert report.ok
            assert report.checked == total
            positions = [e.event_position for e in await ctx.audit.all_in_order()]
            known = [p for p in positions if p is not None]
            assert len(known) == len(set(known))


# -- a database from before the trail --------------------------------------------------
_legacy = sa.MetaData()
sa.Table(  # api_audit_log as the control plane created it before revision 0002
    "api_audit_log",
    _legacy,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.String(32), nullable=False, unique=True),
    sa.Column("timestamp", sa.String(40), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(256), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("client_ip", sa.String(64), nullable=False),
    sa.Column("classification", sa.String(16), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


async def test_a_database_from_before_keeps_its_chain(empty_url: str) -> None:
    def old_schema(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        _legacy.create_all(conn)
        prev = GENESIS
        for i in range(3):
            e = AuditEntry.new(
                AuditAction.AUTH_FAILURE, AuditStatus.FAILURE, tenant_id="acme", request_id=f"r{i}"
            ).chained(prev)
            row = {k: v for k, v in e.to_dict().items() if k != "event_position"}
            row["details"] = "{}"
            conn.execute(_legacy.tables["api_audit_log"].insert().values(**row))
            prev = e.hash

    engine = create_async_engine(sqlalchemy_url(empty_url), poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.run_sync(old_schema)
    await engine.dispose()

    await migrate(empty_url)
    p = await open_persistence(empty_url)
    audit = SqlAuditStore(empty_url, db=p.db)
    try:
        async with p.db.read() as c:
            version = await c.fetch("SELECT version_num FROM agentmesh_schema_version")
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert version == [(head,)]
        assert (await verify_integrity(audit)).checked == 3
        bus = build_bus(p.store, p.read_models, EncryptionService(Fernet.generate_key().decode()))
        await bus.execute(SubmitTask("acme", "sum", task_id=f"t-{uuid.uuid4().hex[:6]}"))
        p.projector.attach(AuditTrail(audit))
        await p.projector.catch_up()
        await p.projector.rebuild()
        entries = await audit.all_in_order()
        assert [e.event_position for e in entries[:3]] == [None] * 3
        assert {e.action for e in entries[3:]} == {"task_submitted", "message_routed"}
        report = await verify_integrity(audit)
        assert (report.ok, report.checked) == (True, len(entries))
        with pytest.raises(Exception, match="audit_log"):
            async with p.db.read() as c:
                await c.fetch("SELECT COUNT(*) FROM audit_log")
    finally:
        await p.close()
