"""SQLite (aiosqlite, WAL): ``sqlite+aiosqlite:///path`` or ``sqlite:///path``.

One writer connection per process behind an asyncio lock, ``BEGIN IMMEDIATE`` so that
writers in other processes wait on ``busy_timeout`` instead of failing, and a small pool
of reader connections (WAL lets them read while a write is in progress).

Many connections opening one file at once (several processes starting together) race
on the switch to WAL and on WAL recovery, where SQLite answers "database is locked"
without waiting on ``busy_timeout``. The journal mode is therefore set only when the file
is not in WAL mode yet (it is persistent), and a busy or locked answer while opening or
beginning a transaction is retried until the busy timeout. A connection that fails to
open is closed on every path: an open aiosqlite connection owns a non-daemon thread that
would keep the process alive.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from agentmesh.errors import BrokerUnavailable, ConcurrencyError, ConfigError
from agentmesh.observability.process_metrics import metered, observe_query, track_database
from agentmesh.store.base import AppendResult, NewEvent, OutboxMessage
from agentmesh.store.db import Connection, Dialect
from agentmesh.store.group_commit import GroupCommitter
from agentmesh.store.memory import check_append, concurrency_error
from agentmesh.store.sql import (
    INSERT_EVENT,
    INSERT_OUTBOX,
    STREAM_VERSION,
    SqlEventStore,
    event_rows,
    outbox_rows,
)

BUSY_TIMEOUT_MS = 30_000
READERS = 3
"""Reader connections per database: concurrent requests read in parallel (WAL)."""
_T = TypeVar("_T")


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's transient "database is locked" / "database is busy" answers."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def retry_busy(op: Callable[[], Awaitable[_T]], *, timeout_ms: int = BUSY_TIMEOUT_MS) -> _T:
    """``await op()``, again after a short backoff while SQLite answers busy or locked,
    for at most ``timeout_ms``; the last error is raised after that."""
    deadline = time.monotonic() + timeout_ms / 1000
    delay = 0.002
    while True:
        try:
            return await op()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///`` or ``sqlite+aiosqlite:///`` URL."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :]
            break
    else:
        raise ConfigError(f"not a SQLite URL: {url!r} (use sqlite+aiosqlite:///path)")
    if not path or path == ":memory:":
        raise ConfigError("an in-memory SQLite event store is not supported; use memory://")
    return path


def ensure_parent(path: str) -> None:
    """Create the directory of a SQLite file (sync helper; cheap and called once)."""
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


class _Conn:
    __slots__ = ("_c",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._c = conn

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        rows = await self._c.execute_fetchall(sql, args)
        return [tuple(r) for r in rows]

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self._c.execute_fetchall(sql, args)  # one round trip to the thread
        return next(iter(rows))[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> None:
        await self._c.execute(sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._c.executemany(sql, rows)


class SqliteDatabase:
    """A SQLite file in WAL mode (see module docstring)."""

    dialect: Dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._free: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._wlock = asyncio.Lock()

    async def _open_once(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            async with conn.execute("PRAGMA journal_mode") as cur:
                row = await cur.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            await asyncio.shield(conn.close())
            raise
        return conn

    async def _open(self) -> aiosqlite.Connection:
        ensure_parent(self.path)
        try:
            return await retry_busy(self._open_once)
        except sqlite3.Error as exc:
            raise BrokerUnavailable(f"cannot open SQLite database {self.path}: {exc}") from None

    async def connect(self) -> None:
        if self._writer is None:
            writer = await self._open()
            readers: list[aiosqlite.Connection] = []
            try:
                for _ in range(READERS):
                    readers.append(await self._open())
            except BaseException:
                for c in [writer, *readers]:
                    await asyncio.shield(c.close())
                raise
            self._writer, self._readers = writer, readers
            self._free = asyncio.Queue()
            for r in readers:
                self._free.put_nowait(r)
            track_database(self)

    def open_connections(self) -> int:
        """Open connections (writer and readers), for ``agentmesh_db_connections_active``."""
        return (self._writer is not None) + len(self._readers)

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer, self._readers = None, []
        try:
            if writer is not None:
                await writer.close()
        finally:
            for reader in readers:
                await reader.close()

    def _need(self, conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise BrokerUnavailable(f"SQLite store {self.path} is not connected")
        return conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        conn = self._need(self._writer)
        async with self._wlock:
            await retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield metered(_Conn(conn))
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """A reader connection of the pool, for this task alone until it is given back."""
        self._need(self._writer)
        conn = await self._free.get()
        try:
            yield conn
        finally:
            self._free.put_nowait(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        async with self._reader() as conn:
            await retry_busy(lambda: conn.execute("BEGIN"))
            try:
                yield metered(_Conn(conn))
            finally:
                await conn.execute("COMMIT")

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._reader() as conn:
            return await metered(_Conn(conn)).fetch(sql, *args)

    async def run_in_writer(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """``fn(raw connection)`` in the writer's thread, in ONE round trip, holding the
        writer lock; ``fn`` owns the transaction (see :mod:`agentmesh.store.group_commit`).
        A busy or locked answer (``fn`` must have rolled back) runs it again."""
        conn = self._need(self._writer)
        async with self._wlock:
            # aiosqlite's own queue of calls to its thread: one hop for the whole of fn
            run: Callable[..., Awaitable[_T]] = conn._execute
            return await retry_busy(lambda: run(lambda: fn(conn._conn)))


_VERSION_AND_HEAD = f"SELECT ({STREAM_VERSION}), (SELECT COALESCE(MAX(position), 0) FROM events)"


class SqliteEventStore(SqlEventStore):
    """The event store on a SQLite file; concurrent single-stream appends are group
    committed (:mod:`agentmesh.store.group_commit`)."""

    def __init__(self, url: str) -> None:
        db = SqliteDatabase(url)
        super().__init__(db)
        self._group = GroupCommitter(db.run_in_writer)

    async def append(
        self,
        tenant_id: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        *,
        outbox: Sequence[OutboxMessage] = (),
    ) -> AppendResult:
        check_append(tenant_id, stream_id, expected_version, events)
        n = len(events)
        boxed = outbox_rows(tenant_id, stream_id, outbox)

        def work(raw: sqlite3.Connection) -> int:
            started = time.perf_counter()
            current, last = raw.execute(_VERSION_AND_HEAD, (tenant_id, stream_id)).fetchone()
            observe_query(_VERSION_AND_HEAD, started)
            if current != expected_version:
                raise concurrency_error(tenant_id, stream_id, expected_version, int(current))
            first = int(last) + 1
            started = time.perf_counter()
            raw.executemany(
                INSERT_EVENT, event_rows(tenant_id, stream_id, expected_version, events, first)
            )
            if boxed:
                raw.executemany(INSERT_OUTBOX, boxed)
            observe_query(INSERT_EVENT, started)
            return first

        try:
            first: int = await self._group.submit(work)
        except sqlite3.IntegrityError as exc:
            raise ConcurrencyError(
                f"append to {tenant_id}/{stream_id} at version {expected_version} "
                f"conflicts with a concurrent write: {exc}"
            ) from None
        return AppendResult(expected_version + n, tuple(range(first, first + n)))
