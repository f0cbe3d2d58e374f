"""Leader election between control-plane replicas that share one store.

Several replicas of the control plane may run on one PostgreSQL database. Work that must
happen once (the outbox relay, the tracker's sweep and heartbeat records, anomaly audit
entries) runs only on the replica that holds the leadership; everything else is safe to
run on every replica (see the README's *Cluster mode*).

:class:`AdvisoryLeader` holds a PostgreSQL session advisory lock on a connection of its
own: the lock is held exactly as long as that session lives, so a replica killed with
SIGKILL loses it as soon as the server sees the socket close, and a replica whose
connection breaks steps down at its next check (``interval``). :class:`SoleLeader` is the
leader of a store only one process can use (SQLite, memory)::

    leader = leader_for(settings.effective_database_url)
    await leader.start()
    if leader.is_leader: ...
    await leader.stop()

A leader that lost its session may still be finishing a step when another replica takes
over; the work gated by it is therefore also idempotent (the relay publishes with the
envelope id as the JetStream dedupe key).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Any, Protocol, runtime_checkable

from loguru import logger

from agentmesh.aio import stop_task
from agentmesh.store.db import safe_url


@runtime_checkable
class Leadership(Protocol):
    """Whether this process is the one that runs once-only work right now."""

    name: str

    @property
    def is_leader(self) -> bool:
        """True while this process holds the leadership."""
        ...

    async def start(self) -> None:
        """Begin competing for the leadership (returns at once)."""
        ...

    async def stop(self) -> None:
        """Give the leadership up (if held) and stop competing."""
        ...


def lock_key(name: str) -> int:
    """The advisory-lock key of a leadership ``name`` (a stable signed 64-bit integer)."""
    return 7_431_250_100 + zlib.crc32(name.encode())


class SoleLeader:
    """The only process of its store: always the leader."""

    def __init__(self, name: str = "controlplane") -> None:
        self.name = name

    @property
    def is_leader(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


STEP_DOWN_SECONDS = 2.0
"""The least a leader whose session broke waits before it tries to lead again."""


class AdvisoryLeader:
    """Leadership through a PostgreSQL session advisory lock (see the module docstring)."""

    def __init__(self, url: str, name: str = "controlplane", *, interval: float = 0.5) -> None:
        from agentmesh.store.postgres import asyncpg_dsn

        self.url = url
        self.name = name
        self.interval = interval
        self._dsn = asyncpg_dsn(url)
        self._key = lock_key(name)
        self._conn: Any = None
        self._leader = False
        self._acquired = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.changes = 0
        """How many times this process gained or lost the leadership."""

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        await self._drop()

    async def wait_leader(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the leadership; True when held."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._acquired.wait(), timeout)
        return self._leader

    def _set(self, leader: bool) -> None:
        if leader != self._leader:
            self._leader = leader
            if leader:
                self._acquired.set()
            else:
                self._acquired.clear()
            self.changes += 1
            logger.info(
                "{} leadership {} ({})",
                self.name,
                "acquired" if leader else "lost",
                safe_url(self.url),
            )

    async def _drop(self) -> None:
        self._set(False)
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing: the session may already be gone
                await asyncio.wait_for(conn.close(), 2.0)

    async def _step(self) -> None:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            if self._leader:  # through the step-down below, not straight back to the lock
                raise ConnectionError("the leader's database session is gone")
            self._set(False)
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
        if self._leader:
            await self._conn.fetchval("SELECT 1", timeout=max(self.interval * 2, 1.0))
        else:
            got = await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=5)
            self._set(bool(got))

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any session trouble means not the leader; retried
                was_leader = self._leader
                if was_leader:
                    logger.warning("{} leadership check failed: {}", self.name, exc)
                await self._drop()
                if was_leader:  # a replica whose session broke lets a healthy one lead first
                    # (long enough for a CPU-starved peer's next try, not just a few polls)
                    await asyncio.sleep(max(self.interval * 4, STEP_DOWN_SECONDS))
            await asyncio.sleep(self.interval)


def leader_for(database_url: str, name: str = "controlplane") -> Leadership:
    """An :class:`AdvisoryLeader` for a PostgreSQL ``database_url``, else a
    :class:`SoleLeader` (SQLite and memory stores have one control plane)."""
    if database_url.startswith(("postgresql", "postgres")):
        return AdvisoryLeader(database_url, name)
    return SoleLeader(name)
