"""A scratch PostgreSQL database per test (created on the machine's server, dropped after)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentmesh.store.migrate import migrate
from tests.contract.store_fixtures import _db_url, create_pg_database, drop_pg_database


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, migrated database of its own: ``postgresql+asyncpg://.../am_test_<hex>``."""
    name = await create_pg_database()
    url = _db_url(name).replace("postgresql://", "postgresql+asyncpg://", 1)
    await migrate(url)
    try:
        yield url
    finally:
        await drop_pg_database(name)
