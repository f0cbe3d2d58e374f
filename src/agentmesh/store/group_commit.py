"""Group commit of single-stream appends on SQLite: concurrent ``append`` calls of one
process share ONE write transaction and ONE round trip to the writer connection's thread.

An append through the generic path costs five round trips (BEGIN IMMEDIATE, the version
check, the event insert, the outbox insert, COMMIT), each a hand-off to the aiosqlite
thread and back; under concurrent requests those hand-offs, not SQLite, are the cost.
Here each append is a plain function of the raw ``sqlite3`` connection, and the appends
waiting when the writer frees up run together in the thread::

    BEGIN IMMEDIATE
      SAVEPOINT a; <append 1>; RELEASE a
      SAVEPOINT a; <append 2>  -- a version conflict: ROLLBACK TO a, only it fails
      ...
    COMMIT                        -- then every caller gets its answer

Durability is unchanged: no caller gets its result before the COMMIT that holds its
events (and outbox rows) has returned; a failed COMMIT fails every append of the group.
Positions stay gapless and in commit order (each append reads ``MAX(position)`` inside
the transaction, after the appends before it in the group).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

Work = Callable[[sqlite3.Connection], Any]
"""One append: runs in the writer thread inside the group's transaction."""


def _run_group(raw: sqlite3.Connection, works: list[Work]) -> list[tuple[bool, Any]]:
    """Every work in its own savepoint of one transaction: ``(ok, result or error)``."""
    out: list[tuple[bool, Any]] = []
    raw.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            raw.execute("SAVEPOINT grouped_append")
            try:
                result = work(raw)
            except Exception as exc:  # noqa: BLE001 - handed to the one caller whose append it was
                raw.execute("ROLLBACK TO grouped_append")
                raw.execute("RELEASE grouped_append")
                out.append((False, exc))
                continue
            raw.execute("RELEASE grouped_append")
            out.append((True, result))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return out


class GroupCommitter:
    """Runs appends in groups (see the module docstring) on one writer connection.

    ``run_in_writer`` runs a sync function in the writer's thread while holding the
    database's writer lock (so the group never interleaves with other transactions of
    the same connection)."""

    def __init__(self, run_in_writer: Callable[[Callable[[sqlite3.Connection], Any]], Any]) -> None:
        self._run = run_in_writer
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flushing = asyncio.Lock()

    async def submit(self, work: Work) -> Any:
        """Run ``work`` in the next group; its result once the group has committed."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        item = (work, fut)
        self._queue.append(item)
        try:
            async with self._flushing:
                if not fut.done():
                    group, self._queue = self._queue, []
                    await self._flush(group)
        except asyncio.CancelledError:
            if item in self._queue:  # not taken into a group yet: nothing is written
                self._queue.remove(item)
            raise
        return await fut

    async def _flush(self, group: list[tuple[Work, asyncio.Future[Any]]]) -> None:
        works = [w for w, _ in group]
        run = asyncio.ensure_future(self._run(lambda raw: _run_group(raw, works)))
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            # this flusher's caller went away; the group still ends and the others hear
            run.add_done_callback(lambda t: _deliver(group, t))
            raise
        except Exception:  # noqa: BLE001 - delivered to every caller of the group below
            pass
        _deliver(group, run)


def _deliver(group: list[tuple[Work, asyncio.Future[Any]]], run: asyncio.Future[Any]) -> None:
    """Each caller's outcome: its own result or error, or the group's error."""
    if run.cancelled() or run.exception() is not None:
        error = run.exception() if not run.cancelled() else asyncio.CancelledError()
        for _, fut in group:
            if not fut.done():
                fut.set_exception(error)  # type: ignore[arg-type]
        return
    for (_, fut), (ok, value) in zip(group, run.result(), strict=True):
        if fut.done():  # its caller was cancelled meanwhile; the write stands
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
