"""Schema migrations: a database at the newest revision is recognized without Alembic,
one behind is upgraded, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from agentmesh.store import migrate as migrate_module
from agentmesh.store.migrate import alembic_config, head_revision, migrate, sqlalchemy_url


async def _version(url: str) -> list[str]:
    engine = create_async_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM agentmesh_schema_version"))
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_a_database_at_head_is_not_handed_to_alembic_again(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(empty_url)
    assert await _version(empty_url) == [head_revision()]

    def no_upgrade(connection: Connection) -> None:
        raise AssertionError("alembic ran on a database at head")

    monkeypatch.setattr(migrate_module, "_upgrade", no_upgrade)
    await migrate(empty_url)  # recognized by one query
    assert await _version(empty_url) == [head_revision()]


async def test_a_database_one_revision_behind_is_upgraded(empty_url: str) -> None:
    head = head_revision()
    assert head is not None
    script = ScriptDirectory.from_config(alembic_config())
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)

    def to_previous(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, previous)

    engine = create_async_engine(sqlalchemy_url(empty_url), poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.run_sync(to_previous)
    await engine.dispose()
    assert await _version(empty_url) == [previous]

    await migrate(empty_url)
    assert await _version(empty_url) == [head]
