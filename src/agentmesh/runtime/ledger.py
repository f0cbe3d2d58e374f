"""The task ledger: the durable record that makes task handling effectively-once.

At-least-once delivery means a task can arrive again after its handler succeeded (the
agent died between publishing the result and acking). The ledger remembers, per tenant
and task id:

* ``done``: the ``task.completed`` envelope, durable before the broker message is acked;
  a redelivery finds it and re-announces the result instead of running the handler again
  (on NATS the outcome event on ``am.<t>.evt.task.completed.<task_id>`` *is* the record:
  one durable write per task);
* ``failures``: handler failures so far (declines and crashes of the process do not count),
  so the attempt limit holds across agents;
* ``cancelled``: a cancel request, honoured by whichever agent holds or later gets the task.

Implementations: :class:`MemoryLedger` (one per ``memory://`` broker), :class:`NatsLedger`
(a JetStream key-value bucket), :class:`~agentmesh.runtime.ledger_redis.RedisLedger` and
:class:`~agentmesh.runtime.ledger_sql.SqlLedger` (SQLite or PostgreSQL) for the brokers that
keep no key-value data. :func:`ledger_for` picks one per transport (see there).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar, Protocol

import nats.js.errors
from nats.js.api import KeyValueConfig

from agentmesh import subjects
from agentmesh.config import Settings, get_settings
from agentmesh.envelope import Envelope
from agentmesh.errors import ConcurrencyError
from agentmesh.transports import Transport
from agentmesh.transports.nats import NatsTransport

TTL_SECONDS = 7 * 24 * 3600.0


class TaskLedger(Protocol):
    """Durable per-task facts shared by every agent of the mesh."""

    async def outcome(self, tenant: str, task_id: str) -> Envelope | None:
        """The latest outcome event of a task (completed, failed or cancelled), if any."""
        ...

    async def completed(self, tenant: str, task_id: str) -> Envelope | None: ...
    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        """Make the outcome findable; called before the outcome event is published."""
        ...

    async def add_failure(self, tenant: str, task_id: str) -> int:
        """Count one more handler failure; returns the total."""
        ...

    async def failures(self, tenant: str, task_id: str) -> int: ...
    async def cancel(self, tenant: str, task_id: str) -> None: ...
    async def is_cancelled(self, tenant: str, task_id: str) -> bool: ...
    async def close(self) -> None:
        """Release connections (a later call connects again)."""
        ...


class MemoryLedger:
    """In-process ledger, shared by every transport on the same ``memory://`` broker."""

    _shared: ClassVar[dict[str, MemoryLedger]] = {}

    def __init__(self) -> None:
        self._done: dict[tuple[str, str], bytes] = {}
        self._outcomes: dict[tuple[str, str], bytes] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._cancelled: set[tuple[str, str]] = set()

    @classmethod
    def for_broker(cls, name: str) -> MemoryLedger:
        return cls._shared.setdefault(name, cls())

    async def completed(self, tenant: str, task_id: str) -> Envelope | None:
        raw = self._done.get((tenant, task_id))
        return None if raw is None else Envelope.decode(raw)

    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        raw = outcome.encode()
        self._outcomes[(tenant, task_id)] = raw
        if outcome.type == "task.completed":
            self._done[(tenant, task_id)] = raw

    async def outcome(self, tenant: str, task_id: str) -> Envelope | None:
        raw = self._outcomes.get((tenant, task_id))
        return None if raw is None else Envelope.decode(raw)

    async def add_failure(self, tenant: str, task_id: str) -> int:
        key = (tenant, task_id)
        self._failures[key] = self._failures.get(key, 0) + 1
        return self._failures[key]

    async def failures(self, tenant: str, task_id: str) -> int:
        return self._failures.get((tenant, task_id), 0)

    async def cancel(self, tenant: str, task_id: str) -> None:
        self._cancelled.add((tenant, task_id))

    async def is_cancelled(self, tenant: str, task_id: str) -> bool:
        return (tenant, task_id) in self._cancelled

    async def close(self) -> None:
        """Nothing to release."""


class NatsLedger:
    """Ledger in the JetStream key-value bucket ``AM_TASKS`` (keys ``<tenant>.<task>.<fact>``)."""

    BUCKET = "AM_TASKS"

    def __init__(self, transport: NatsTransport) -> None:
        self._transport = transport  # connected later: the bucket is opened on first use
        self._kv: Any = None
        self._lock = asyncio.Lock()

    async def _bucket(self) -> Any:
        if self._kv is None:
            async with self._lock:
                if self._kv is None:
                    js = self._transport.jetstream
                    try:
                        self._kv = await js.key_value(self.BUCKET)
                    except nats.js.errors.BucketNotFoundError:
                        self._kv = await js.create_key_value(
                            KeyValueConfig(bucket=self.BUCKET, history=1, ttl=TTL_SECONDS)
                        )
        return self._kv

    @staticmethod
    def _key(tenant: str, task_id: str, fact: str) -> str:
        return f"{tenant}.{task_id.replace('.', '_')}.{fact}"

    async def _get(self, key: str) -> Any:
        kv = await self._bucket()
        try:
            return await kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None

    async def _last(self, tenant: str, kind: str, task_id: str) -> Envelope | None:
        subject = subjects.task_outcome(tenant, kind, task_id)
        try:
            msg = await self._transport.jetstream.get_last_msg(f"AM_{tenant}_evt", subject)
        except nats.js.errors.NotFoundError:
            return None
        return Envelope.decode(msg.data) if msg.data else None

    async def completed(self, tenant: str, task_id: str) -> Envelope | None:
        return await self._last(tenant, "task.completed", task_id)

    async def outcome(self, tenant: str, task_id: str) -> Envelope | None:
        found = [
            e
            for e in await asyncio.gather(
                *(self._last(tenant, kind, task_id) for kind in subjects.TASK_OUTCOMES)
            )
            if e
        ]
        return max(found, key=lambda e: str(e.metadata.get("timestamp", ""))) if found else None

    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        """Nothing to do: the durable outcome event is the record (see :meth:`outcome`)."""

    async def add_failure(self, tenant: str, task_id: str) -> int:
        kv = await self._bucket()
        key = self._key(tenant, task_id, "failures")
        for _ in range(20):  # compare-and-set: concurrent agents never lose a count
            entry = await self._get(key)
            try:
                if entry is None:
                    await kv.create(key, b"1")
                    return 1
                count = int(entry.value or b"0") + 1
                await kv.update(key, str(count).encode(), last=entry.revision)
                return count
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
                continue
        raise ConcurrencyError(f"could not count a failure of task {task_id}: too much contention")

    async def failures(self, tenant: str, task_id: str) -> int:
        entry = await self._get(self._key(tenant, task_id, "failures"))
        return 0 if entry is None else int(entry.value or b"0")

    async def cancel(self, tenant: str, task_id: str) -> None:
        kv = await self._bucket()
        await kv.put(self._key(tenant, task_id, "cancelled"), b"1")

    async def is_cancelled(self, tenant: str, task_id: str) -> bool:
        return await self._get(self._key(tenant, task_id, "cancelled")) is not None

    async def close(self) -> None:
        """The bucket lives on the transport's connection: forget it, keep the connection."""
        self._kv = None


def unique_first_delivery(transport: Transport) -> bool:
    """Whether a delivery with attempt 1 is the first of its envelope id on the broker:
    the broker drops re-published ids and counts every redelivery, crashes included (the
    transport's ``capabilities.unique_first_delivery``: NATS JetStream, ``memory://``,
    Redis Streams). Elsewhere the executor asks the ledger on every delivery."""
    return transport.capabilities.unique_first_delivery


_LEDGERS: weakref.WeakKeyDictionary[Transport, TaskLedger] = weakref.WeakKeyDictionary()


def ledger_for(transport: Transport, settings: Settings | None = None) -> TaskLedger:
    """The ledger every agent on ``transport``'s broker shares (one instance per transport).

    * NATS: the JetStream bucket and outcome streams; ``memory://``: the broker's memory;
    * otherwise ``TASK_LEDGER_URL`` when set (``redis://``, ``sqlite:///...``,
      ``postgresql://...`` or ``local`` for a process-local ledger);
    * else the transport's own Redis (``redis://`` transport), then ``REDIS_URL``, then a
      PostgreSQL ``DATABASE_URL``, then the SQLite file ``<AGENTMESH_DATA_DIR>/ledger.db``
      (shared by the agent processes of one machine).
    """
    found = _LEDGERS.get(transport)
    if found is None:
        found = _LEDGERS[transport] = _new_ledger(transport, settings or get_settings())
    return found


def _new_ledger(transport: Transport, settings: Settings) -> TaskLedger:
    from agentmesh.transports.memory import MemoryTransport

    if isinstance(transport, NatsTransport):
        return NatsLedger(transport)
    if isinstance(transport, MemoryTransport):
        return MemoryLedger.for_broker(transport.url)
    url = shared_ledger_url(transport, settings)
    if url == "local":
        return MemoryLedger.for_broker(f"local:{id(transport)}")
    if url.startswith(("redis://", "rediss://")):
        from agentmesh.runtime.ledger_redis import RedisLedger

        return RedisLedger(url, ttl_seconds=TTL_SECONDS)
    from agentmesh.runtime.ledger_sql import SqlLedger

    return SqlLedger(url, ttl_seconds=TTL_SECONDS)


def shared_ledger_url(transport: Transport, settings: Settings) -> str:
    """Where the ledger of a broker without key-value storage lives (see :func:`ledger_for`)."""
    if settings.task_ledger_url:
        return settings.task_ledger_url
    own = str(getattr(transport, "url", ""))
    if own.startswith(("redis://", "rediss://")):
        return own
    if settings.redis_url:
        return settings.redis_url
    db = settings.effective_database_url
    if settings.database_url and not db.startswith(("memory://", "sqlite")):
        return db
    if db.startswith("memory://"):
        return "local"
    return f"sqlite+aiosqlite:///{(settings.data_dir / 'ledger.db').resolve()}"
