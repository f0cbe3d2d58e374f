"""Event store implementations the contract suite (and store tests) run against.

``postgres`` uses the PostgreSQL server of the machine (``AGENTMESH_TEST_POSTGRES``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``): a migrated template database
is created once per session and every test gets a fresh copy (``CREATE DATABASE ...
TEMPLATE``), dropped afterwards. A server that does not answer fails the tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from agentmesh.store import FullEventStore, create_event_store
from agentmesh.store.migrate import migrate

PG_ADMIN_URL = os.environ.get(
    "AGENTMESH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STORE_KINDS = ("memory", "sqlite", "postgres")
T = TypeVar("T")


def _db_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_pg_database(template: str | None = None) -> str:
    """Create a uniquely named scratch database; returns its name."""
    name = "am_test_" + uuid.uuid4().hex[:12]
    await _admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


async def drop_pg_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh loop in a worker thread (an event loop may be running here)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database (one per test session)."""

    async def make() -> str:
        name = await create_pg_database()
        await migrate(_db_url(name))
        return name

    name = _run_in_thread(make())
    yield name
    _run_in_thread(drop_pg_database(name))


@contextlib.asynccontextmanager
async def pg_database(template: str) -> AsyncIterator[str]:
    """A fresh migrated PostgreSQL database URL, dropped on exit."""
    name = await create_pg_database(template)
    try:
        yield "postgresql+asyncpg://" + _db_url(name).split("://", 1)[1]
    finally:
        await drop_pg_database(name)


@contextlib.asynccontextmanager
async def store_url_for(kind: str, tmp: Path, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    if kind == "memory":
        yield "memory://"
    elif kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'events.db'}"
    else:
        async with pg_database(request.getfixturevalue("pg_template")) as url:
            yield url


@pytest.fixture(params=STORE_KINDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with store_url_for(request.param, tmp_path, request) as url:
        yield url


@pytest.fixture(params=("sqlite", "postgres"))
async def sql_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with store_url_for(request.param, tmp_path, request) as url:
        yield url


@contextlib.asynccontextmanager
async def open_store(url: str) -> AsyncIterator[FullEventStore]:
    store = create_event_store(url)
    await store.connect()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[FullEventStore]:
    async with open_store(store_url) as s:
        yield s
