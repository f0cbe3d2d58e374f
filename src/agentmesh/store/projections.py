"""Projections: read models (agents, tasks, tenants, messages) built from the global
event order, each with a checkpoint, and sinks that follow the same order.

:class:`Projector` follows :meth:`~agentmesh.store.base.EventReader.read_all` from the
lowest checkpoint, folds a page of events into the affected rows in memory, and writes
the rows and the new checkpoints in ONE transaction, so a read model never runs ahead of
or behind its checkpoint. A stored event that cannot be decoded (unknown type, bad JSON)
or that does not fit its stream stops the projector with
:class:`~agentmesh.store.base.CorruptEventError` naming the position; everything before
it is committed and nothing after it is applied. ``agentmesh_projection_lag_events``
reports how far each projection is behind the head.

An :class:`EventSink` attached with :meth:`Projector.attach` (the audit trail, whose
entries live in the audit store) gets the same events after the read models are
written, with a checkpoint of its own; its trouble is logged and retried on the next
catch-up, never blocks the read models. A rebuild replays everything to it without
deleting its data, so a sink must be idempotent per event position.

>>> projector = Projector(store, db)       # doctest: +SKIP
>>> projector.attach(AuditTrail(audit))    # doctest: +SKIP
>>> await projector.catch_up()             # doctest: +SKIP
>>> await projector.rebuild()              # drop the read models and replay everything
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from loguru import logger

from agentmesh.domain import (
    DomainEvent,
)
from agentmesh.errors import CorruptEventError
from agentmesh.observability import metrics
from agentmesh.store.base import EventReader, StoredEvent
from agentmesh.store.db import Connection, Database, utc_now_text
from agentmesh.store.read_model_projections import Table, default_projections
from agentmesh.store.sealing import Sealer

Key = tuple[Any, ...]
PROJECTION_LOCK = 7_431_250_003
"""PostgreSQL advisory lock held by a projector while it writes a page (one at a time)."""


class Projection(Protocol):
    """Folds events into keyed rows of one table."""

    name: str
    table: Table

    def key(self, stored: StoredEvent, event: DomainEvent) -> Key | None:
        """The row an event touches, or None when the projection ignores it."""
        ...

    def fold(self, state: Any | None, stored: StoredEvent, event: DomainEvent) -> Any:
        """The row state after ``event`` (``state`` is None for a new row)."""
        ...

    def row(self, state: Any) -> tuple[Any, ...]:
        """Column values in :attr:`Table.columns` order."""
        ...

    def load(self, doc: str) -> Any:
        """The state from the stored ``doc`` column (not used by insert-only tables)."""
        ...


class EventSink(Protocol):
    """Follows the global event order into storage of its own (see the module docstring).

    ``apply`` gets events in position order, never one at or below the sink's checkpoint
    except after a rebuild or a failed ``apply``, when the same events come again.
    """

    name: str

    async def apply(self, batch: Sequence[tuple[StoredEvent, DomainEvent]]) -> None:
        """Record ``batch``; events already recorded must be skipped, not duplicated."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    checkpoint: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.checkpoint, 0)


class _Rebuilt(Exception):
    """Another process reset the checkpoints (a rebuild) while this pass ran."""


class _FoldError(Exception):
    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


class Projector:
    """Keeps the read models of ``projections`` up to date with an event store."""

    def __init__(
        self,
        events: EventReader,
        db: Database,
        projections: Sequence[Projection] | None = None,
        *,
        batch_size: int = 1000,
        sealer: Sealer | None = None,
    ) -> None:
        self.events = events
        self.db = db
        self.projections = (
            list(projections) if projections is not None else default_projections(sealer)
        )
        self.batch_size = batch_size
        self.sinks: list[EventSink] = []
        self._failed: set[str] = set()
        self._lock = asyncio.Lock()
        # catch-up requests coalesce: request n is served by any pass that started after it
        self._asked = 0
        self._served = 0

    def attach(self, sink: EventSink) -> None:
        """Feed ``sink`` from the next catch-up on (its name must be unique)."""
        names = {p.name for p in self.projections} | {s.name for s in self.sinks}
        if sink.name in names:
            raise ValueError(f"the projector already has a {sink.name!r} projection or sink")
        self.sinks.append(sink)

    def detach(self, sink: EventSink) -> None:
        """Stop feeding ``sink`` (its checkpoint stays for the next attach)."""
        if sink in self.sinks:
            self.sinks.remove(sink)

    def _names(self) -> list[str]:
        return [p.name for p in self.projections] + [s.name for s in self.sinks]

    async def checkpoints(self) -> dict[str, int]:
        rows = await self.db.query("SELECT name, position FROM projection_checkpoints")
        stored = {str(n): int(p) for n, p in rows}
        return {name: stored.get(name, 0) for name in self._names()}

    @staticmethod
    async def _read_checkpoints(c: Connection) -> dict[str, int]:
        rows = await c.fetch("SELECT name, position FROM projection_checkpoints")
        return {str(n): int(p) for n, p in rows}

    async def status(self) -> list[ProjectionStatus]:
        """Checkpoint, head and lag of every projection (also sets the lag metric)."""
        cps = await self.checkpoints()
        head = await self.events.head()
        out = [ProjectionStatus(name, cp, head) for name, cp in cps.items()]
        for s in out:
            metrics.projection_lag.labels(s.name).set(s.lag)
        return out

    async def catch_up(self) -> int:
        """Apply every event after the checkpoints; returns the number of events read.

        Every event committed before the call is applied when it returns. Concurrent
        callers share passes: a caller waiting for the lock returns at once when a pass
        that began after its call has finished (it then reports 0 events read).
        """
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._served >= ticket:
                return 0
            covers = self._asked
            total = await self._pass()
            self._served = covers
            return total

    async def _pass(self) -> int:
        """One catch-up pass (the caller holds the lock), restarted from the checkpoints
        when another process rebuilt the read models meanwhile."""
        while True:
            try:
                return await self._pass_once()
            except _Rebuilt:
                continue

    async def _pass_once(self) -> int:
        cps = await self.checkpoints()
        start = min(cps.values(), default=0) + 1
        total = 0
        self._failed.clear()
        ended = False
        try:
            while True:
                page = await self.events.read_all(start, self.batch_size)
                if not page:
                    break
                decoded: list[tuple[StoredEvent, DomainEvent]] = []
                error: CorruptEventError | None = None
                for stored in page:
                    try:
                        decoded.append((stored, stored.decode()))
                    except CorruptEventError as exc:
                        error = exc
                        break
                if decoded:
                    await self._apply(decoded, cps)
                    total += len(decoded)
                if error is not None:
                    raise error
                start = page[-1].position + 1
                if len(page) < self.batch_size:
                    break  # a short page was the end: no need to ask again
            ended = True
        finally:
            if ended:  # every event up to start - 1 was read: that was the head
                self._report_lag(cps, start - 1)
            else:
                await self.status()
        return total

    @staticmethod
    def _report_lag(cps: dict[str, int], head: int) -> None:
        for name, cp in cps.items():
            metrics.projection_lag.labels(name).set(max(head - cp, 0))

    async def rebuild(self) -> int:
        """Empty every read model and checkpoint, then replay the whole store (sinks keep
        their data and get every event again)."""
        async with self._lock, self.db.write() as c:
            if self.db.dialect == "postgresql":
                await c.execute("SELECT pg_advisory_xact_lock(?)", PROJECTION_LOCK)
            for p in self.projections:
                await c.execute(f"DELETE FROM {p.table.name}")
            for name in self._names():
                await c.execute("DELETE FROM projection_checkpoints WHERE name = ?", name)
        return await self.catch_up()

    async def run(self, stop: asyncio.Event, interval: float = 0.05) -> None:
        """Follow the store until ``stop`` is set (a corrupt event ends the loop)."""
        while not stop.is_set():
            n = await self.catch_up()
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    async def _apply(
        self, batch: list[tuple[StoredEvent, DomainEvent]], cps: dict[str, int]
    ) -> None:
        """Fold ``batch`` into the read models in ONE write transaction that first takes
        the projection lock and re-reads the checkpoints: projectors in several processes
        (control-plane replicas, CLI commands) serialize their passes, and each folds
        from rows that match its checkpoints, so no event is ever applied twice."""
        last = batch[-1][0].position
        try:
            async with self.db.write() as c:
                if self.db.dialect == "postgresql":
                    await c.execute("SELECT pg_advisory_xact_lock(?)", PROJECTION_LOCK)
                fresh = await self._read_checkpoints(c)
                for p in self.projections:
                    if fresh.get(p.name, 0) < cps[p.name]:
                        raise _Rebuilt  # checkpoints went back: replay from them
                    cps[p.name] = fresh.get(p.name, 0)
                work = await self._fold(batch, cps, c)
                for p, touched in work:
                    if touched:
                        await c.executemany(
                            p.table.upsert_sql(), [p.row(s) for s in touched.values()]
                        )
                await self._checkpoint(c, [p.name for p, _ in work if last > cps[p.name]], last)
        except _FoldError as err:
            # commit everything before the offending event, then stop on it
            good = [(s, e) for s, e in batch if s.position < err.position]
            if good:
                await self._apply(good, cps)
            raise CorruptEventError(err.position, err.reason) from None
        for p, _ in work:
            cps[p.name] = max(cps[p.name], last)
        await self._feed_sinks(batch, cps)

    async def _feed_sinks(
        self, batch: list[tuple[StoredEvent, DomainEvent]], cps: dict[str, int]
    ) -> None:
        """Hand the batch to every sink that has not failed in this catch-up.

        Outside the read-model transaction: a sink may write to the same database.
        """
        last = batch[-1][0].position
        done: list[str] = []
        for sink in self.sinks:
            if sink.name in self._failed or last <= cps[sink.name]:
                continue
            todo = [(s, e) for s, e in batch if s.position > cps[sink.name]]
            try:
                await sink.apply(todo)
            except Exception as exc:  # noqa: BLE001 - retried from its checkpoint on the next catch-up
                self._failed.add(sink.name)
                logger.error("{} stopped at {}: {}", sink.name, cps[sink.name], exc)
                continue
            done.append(sink.name)
        if done:
            async with self.db.write() as c:
                await self._checkpoint(c, done, last)
            for name in done:
                cps[name] = last

    async def _fold(
        self, batch: list[tuple[StoredEvent, DomainEvent]], cps: dict[str, int], c: Connection
    ) -> list[tuple[Projection, dict[Key, Any]]]:
        work: list[tuple[Projection, dict[Key, Any]]] = []
        for p in self.projections:
            todo = [
                (s, e, k)
                for s, e in batch
                if s.position > cps[p.name] and (k := p.key(s, e)) is not None
            ]
            states: dict[Key, Any] = {}
            if todo and not p.table.insert_only:
                states = await self._load(c, p, {k for _, _, k in todo})
            touched: dict[Key, Any] = {}
            for stored, event, key in todo:
                try:
                    new = p.fold(states.get(key), stored, event)
                except (ValueError, TypeError, KeyError) as exc:
                    raise _FoldError(
                        stored.position, f"the {p.name} projection cannot apply it: {exc}"
                    ) from None
                states[key] = new
                touched[key] = new
            work.append((p, touched))
        return work

    async def _checkpoint(self, c: Connection, names: Sequence[str], position: int) -> None:
        """Move the checkpoints of ``names`` to ``position`` (one statement for all)."""
        if not names:
            return
        now = utc_now_text()
        await c.executemany(
            # never backwards: a sink fed by two processes at once keeps the higher one
            "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = CASE WHEN excluded.position > "
            "projection_checkpoints.position THEN excluded.position "
            "ELSE projection_checkpoints.position END, updated_at = excluded.updated_at",
            [(name, position, now) for name in names],
        )

    async def _load(self, c: Connection, p: Projection, keys: Iterable[Key]) -> dict[Key, Any]:
        t = p.table
        out: dict[Key, Any] = {}
        groups: dict[Key, list[Any]] = {}
        for k in keys:
            groups.setdefault(k[:-1], []).append(k[-1])
        for prefix, last_values in groups.items():
            for i in range(0, len(last_values), 500):
                chunk = last_values[i : i + 500]
                where = " AND ".join(f"{col} = ?" for col in t.key[:-1])
                marks = ", ".join("?" for _ in chunk)
                cond = (where + " AND " if where else "") + f"{t.key[-1]} IN ({marks})"
                rows = await c.fetch(
                    f"SELECT {', '.join(t.key)}, doc FROM {t.name} WHERE {cond}",
                    *prefix,
                    *chunk,
                )
                for r in rows:
                    out[tuple(r[:-1])] = p.load(str(r[-1]))
        return out
