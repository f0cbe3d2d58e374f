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

Implementations: :class:`KvLedger` (on the broker's key-value buckets: NATS, ``memory://``),
:class:`~agentmesh.runtime.ledger_redis.RedisLedger` and
:class:`~agentmesh.runtime.ledger_sql.SqlLedger` (SQLite or PostgreSQL) for the brokers that
keep no key-value data. :func:`ledger_for` picks one per transport (see there).
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from typing import Protocol

from agentmesh import subjects
from agentmesh.config import Settings, get_settings
from agentmesh.envelope import Envelope
from agentmesh.errors import ConfigError
from agentmesh.kv.base import KeyValueStore, modify
from agentmesh.kv.memory import MemoryKV
from agentmesh.transports import Transport
from agentmesh.transports.base import KeyValueHost, LastMessage

TTL_SECONDS = 7 * 24 * 3600.0
BUCKET = "AM_TASKS"
"""The key-value bucket of the ledger on brokers that keep buckets."""


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


class KvLedger:
    """Ledger in a key-value bucket (keys ``<tenant>.<task>.<fact>``), on the broker's own
    key-value store (a JetStream bucket on NATS, the broker's memory on ``memory://``).

    Failures are counted with the package's one compare-and-set loop
    (:func:`agentmesh.kv.base.modify`), so concurrent agents never lose a count. Where the
    transport keeps the last message of each subject (:class:`LastMessage`: NATS), the
    durable outcome event on ``am.<t>.evt.task.<outcome>.<task_id>`` *is* the outcome
    record and nothing more is written; elsewhere the outcome is also kept in the bucket.
    """

    def __init__(self, kv: KeyValueStore, events: LastMessage | None = None) -> None:
        self.kv = kv
        self.events = events

    @staticmethod
    def _key(tenant: str, task_id: str, fact: str) -> str:
        return f"{tenant}.{task_id.replace('.', '_')}.{fact}"

    async def _stored(self, tenant: str, task_id: str, fact: str) -> Envelope | None:
        entry = await self.kv.get(self._key(tenant, task_id, fact))
        return None if entry is None or not entry.value else Envelope.decode(entry.value)

    async def _event(self, tenant: str, kind: str, task_id: str) -> Envelope | None:
        assert self.events is not None
        raw = await self.events.last_message(subjects.task_outcome(tenant, kind, task_id))
        return Envelope.decode(raw) if raw else None

    async def completed(self, tenant: str, task_id: str) -> Envelope | None:
        if self.events is not None:
            return await self._event(tenant, "task.completed", task_id)
        return await self._stored(tenant, task_id, "done")

    async def outcome(self, tenant: str, task_id: str) -> Envelope | None:
        if self.events is None:
            return await self._stored(tenant, task_id, "outcome")
        found = [
            e
            for e in await asyncio.gather(
                *(self._event(tenant, kind, task_id) for kind in subjects.TASK_OUTCOMES)
            )
            if e
        ]
        return max(found, key=lambda e: str(e.metadata.get("timestamp", ""))) if found else None

    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        if self.events is not None:
            return  # the durable outcome event is the record (see outcome)
        raw = outcome.encode()
        await self.kv.put(self._key(tenant, task_id, "outcome"), raw)
        if outcome.type == "task.completed":
            await self.kv.put(self._key(tenant, task_id, "done"), raw)

    async def add_failure(self, tenant: str, task_id: str) -> int:
        value, _ = await modify(
            self.kv,
            self._key(tenant, task_id, "failures"),
            lambda old: str(int(old or b"0") + 1).encode(),
        )
        return int(value)

    async def failures(self, tenant: str, task_id: str) -> int:
        entry = await self.kv.get(self._key(tenant, task_id, "failures"))
        return 0 if entry is None else int(entry.value or b"0")

    async def cancel(self, tenant: str, task_id: str) -> None:
        await self.kv.put(self._key(tenant, task_id, "cancelled"), b"1")

    async def is_cancelled(self, tenant: str, task_id: str) -> bool:
        return await self.kv.get(self._key(tenant, task_id, "cancelled")) is not None

    async def close(self) -> None:
        """The bucket lives on the transport's connection: nothing to release."""


TRUST_FIRST_DELIVERY_SECONDS = 60.0
"""A first delivery (attempt 1) of an envelope created longer ago than this is checked
against the ledger even on brokers with ``unique_first_delivery``: it may be a copy
re-published after the broker's dedupe window (JetStream's is 120 s) closed."""


def past_dedupe_window(envelope: Envelope) -> bool:
    """Whether ``envelope`` was created more than :data:`TRUST_FIRST_DELIVERY_SECONDS` ago
    (an unreadable timestamp counts as old: the ledger is asked)."""
    try:
        age = (datetime.now(UTC) - envelope.timestamp).total_seconds()
    except (ValueError, TypeError, KeyError):
        return True
    return age > TRUST_FIRST_DELIVERY_SECONDS


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
        settings = settings or get_settings()
        check_retention(settings)
        found = _LEDGERS[transport] = _new_ledger(transport, settings)
    return found


def check_retention(settings: Settings) -> None:
    """Refuse (``ConfigError``) a mesh whose redeliveries outlast the ledger's memory.

    A task can be redelivered until ``AGENTMESH_ACK_WAIT`` x ``AGENTMESH_MAX_DELIVER`` after
    its first delivery; a ledger that forgot its outcome sooner would let it run again.
    """
    window = settings.agentmesh_ack_wait * settings.agentmesh_max_deliver
    if window > TTL_SECONDS:
        raise ConfigError(
            f"AGENTMESH_ACK_WAIT x AGENTMESH_MAX_DELIVER = {window:g} s outlasts the task "
            f"ledger's retention of {TTL_SECONDS:g} s; lower one of them"
        )


def _new_ledger(transport: Transport, settings: Settings) -> TaskLedger:
    if isinstance(transport, KeyValueHost):
        events = transport if isinstance(transport, LastMessage) else None
        return KvLedger(transport.key_value(BUCKET, ttl=TTL_SECONDS), events)
    url = shared_ledger_url(transport, settings)
    if url == "local":
        return KvLedger(MemoryKV())  # this transport's own, for its life (see ledger_for)
    if url.startswith(("redis://", "rediss://")):
        from agentmesh.runtime.ledger_redis import RedisLedger

        return RedisLedger(url, ttl_seconds=TTL_SECONDS)
    from agentmesh.runtime.ledger_sql import SqlLedger

    return SqlLedger(url, ttl_seconds=TTL_SECONDS)


def shared_ledger_url(transport: Transport, settings: Settings) -> str:
    """Where the ledger of a broker without key-value storage lives (see :func:`ledger_for`)."""
    if settings.task_ledger_url:
        return settings.task_ledger_url
    own = transport.url
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
