"""Fixtures of the store integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.contract.store_fixtures import _db_url, create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a database with no table yet: a SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = await create_pg_database()
    try:
        yield "postgresql+asyncpg://" + _db_url(name).split("://", 1)[1]
    finally:
        await drop_pg_database(name)
