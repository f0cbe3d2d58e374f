"""One SQLite file opened by many connections in many processes at the same instant.

Several agents and a control plane starting together all open the same store, ledger
and audit files; SQLite answers "database is locked" to the race on the switch to WAL
and on WAL recovery without waiting on ``busy_timeout``. None of it may fail.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from agentmesh.runtime.ledger_sql import SqlLedger
from agentmesh.store.migrate import migrate
from agentmesh.store.sqlite import SqliteDatabase

PROCESSES = 4
CONNECTIONS_PER_PROCESS = 5  # 4 x 5 = 20 connections on one file at once
ROUNDS = 50


async def _open_round(url: str, proc: int) -> list[str]:
    """Open CONNECTIONS_PER_PROCESS connections at once, write through each, close."""

    async def one(i: int) -> None:
        db = SqliteDatabase(url)
        try:
            await db.connect()
            async with db.write() as c:
                await c.execute("CREATE TABLE IF NOT EXISTS hits (p INTEGER, i INTEGER)")
                await c.execute("INSERT INTO hits VALUES (?, ?)", proc, i)
        finally:
            await db.close()

    results = await asyncio.gather(
        *(one(i) for i in range(CONNECTIONS_PER_PROCESS)), return_exceptions=True
    )
    return [repr(r) for r in results if isinstance(r, BaseException)]


def _open_worker(root: str, proc: int, barrier: Barrier, errors: Any) -> None:
    for n in range(ROUNDS):
        url = f"sqlite+aiosqlite:///{root}/round-{n}.db"
        barrier.wait(timeout=60)
        errors.extend(asyncio.run(_open_round(url, proc)))


def _run(target: Any, args: tuple[Any, ...]) -> list[str]:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        errors = manager.list()
        barrier = ctx.Barrier(PROCESSES)
        procs = [
            ctx.Process(target=target, args=(*args, p, barrier, errors)) for p in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.is_alive():
                p.kill()
        assert codes == [0] * PROCESSES, f"worker exit codes {codes}"
        return list(errors)


@pytest.mark.integration
def test_twenty_connections_in_four_processes_open_one_file_at_once(tmp_path: Path) -> None:
    errors = _run(_open_worker, (str(tmp_path),))
    assert errors == []
    for n in range(ROUNDS):
        rows = sqlite3.connect(tmp_path / f"round-{n}.db").execute("SELECT COUNT(*) FROM hits")
        assert rows.fetchone() == (PROCESSES * CONNECTIONS_PER_PROCESS,)


def _migrate_and_ledger_worker(root: str, proc: int, barrier: Barrier, errors: Any) -> None:
    async def round_(n: int) -> None:
        store = f"sqlite+aiosqlite:///{root}/store-{n}.db"
        ledger = SqlLedger(f"sqlite+aiosqlite:///{root}/ledger-{n}.db", ttl_seconds=60)
        try:
            await asyncio.gather(migrate(store), ledger.add_failure("t", f"task-{n}"))
        except Exception as exc:  # noqa: BLE001 - every failure is collected and asserted
            errors.append(repr(exc))
        finally:
            await ledger.close()

    for n in range(5):
        barrier.wait(timeout=60)
        asyncio.run(round_(n))


@pytest.mark.integration
def test_migrations_and_ledgers_started_together_all_succeed(tmp_path: Path) -> None:
    errors = _run(_migrate_and_ledger_worker, (str(tmp_path),))
    assert errors == []
    for n in range(5):
        ledger = sqlite3.connect(tmp_path / f"ledger-{n}.db")
        assert ledger.execute("SELECT failures FROM am_task_ledger").fetchone() == (PROCESSES,)
        store = sqlite3.connect(tmp_path / f"store-{n}.db")
        assert store.execute("SELECT COUNT(*) FROM agentmesh_schema_version").fetchone() == (1,)
