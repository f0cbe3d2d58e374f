"""Blackboard: a shared, tenant-scoped knowledge base with versioned entries.

Entries live in a durable key-value bucket (JetStream KV on NATS; see :mod:`agentmesh.kv`)
under ``<tenant>.<board>.<domain>.<key>``; every write returns a revision and a change
notice goes to ``am.<tenant>.bb.<domain>``. Writers coordinate by compare-and-set::

    board = Blackboard(mesh, "puzzle-7")
    rev = await board.write("grid", "r1c1", "C")                  # unconditional
    await board.write("grid", "r1c1", "A", revision=rev)          # CAS: ConcurrencyError if stale
    await board.update("stats", "filled", lambda n: (n or 0) + 1) # read-modify-write, retried

Knowledge sources (:class:`KnowledgeSource`) watch their domains and fire their action
whenever their condition holds on the current view; a :class:`BlackboardController`
watches the goal condition and, once it holds, marks the board done, which stops every
source (in any process).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from agentmesh.envelope import Envelope
from agentmesh.errors import ConcurrencyError, Conflict
from agentmesh.kv import KeyValueStore, KvEntry, KvWatch, open_kv
from agentmesh.patterns import names

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

BUCKET = "AM_BB"
CONTROL = "_control"
BoardView = dict[str, dict[str, Any]]
"""domain -> key -> value: what a knowledge source sees."""


@dataclass(frozen=True, slots=True)
class Entry:
    domain: str
    key: str
    value: Any
    revision: int


class Blackboard:
    """One named board of the mesh's tenant (see the module docstring)."""

    def __init__(
        self,
        mesh: Mesh,
        name: str = "main",
        *,
        writer: str = "anonymous",
        kv: KeyValueStore | None = None,
        notify: bool = True,
    ) -> None:
        self.mesh = mesh
        self.tenant = mesh.tenant
        self.name = name
        self.writer = writer
        self.notify = notify
        self.kv = kv or open_kv(mesh.transport, BUCKET)
        self.conflicts = 0
        names.kv_key(self.tenant, name)  # validates the board name early

    def _key(self, domain: str, key: str) -> str:
        return names.kv_key(self.tenant, self.name, domain, key)

    def _split(self, full: str) -> tuple[str, str]:
        parts = full.split(".")
        return parts[2], ".".join(parts[3:])

    def _entry(self, raw: KvEntry) -> Entry:
        domain, key = self._split(raw.key)
        value = None if raw.value is None else orjson.loads(raw.value)
        return Entry(domain, key, value, raw.revision)

    async def read(self, domain: str, key: str) -> Entry | None:
        raw = await self.kv.get(self._key(domain, key))
        return None if raw is None else self._entry(raw)

    async def write(self, domain: str, key: str, value: Any, *, revision: int | None = None) -> int:
        """Write ``value`` (JSON); with ``revision`` only if the entry is still at it
        (``revision=0``: only if absent). Raises :class:`ConcurrencyError` otherwise."""
        full, data = self._key(domain, key), orjson.dumps(value)
        try:
            if revision is None:
                rev = await self.kv.put(full, data)
            elif revision == 0:
                rev = await self.kv.create(full, data)
            else:
                rev = await self.kv.update(full, data, revision)
        except Conflict as exc:
            self.conflicts += 1
            raise ConcurrencyError(f"{domain}/{key}: {exc.message}") from None
        if self.notify:
            await self._notice(domain, key, rev)
        return rev

    async def _notice(self, domain: str, key: str, revision: int) -> None:
        env = Envelope.create(
            "blackboard.updated",
            {"board": self.name, "domain": domain, "key": key, "revision": revision},
            tenant_id=self.tenant,
            source=self.writer,
        )
        with contextlib.suppress(Exception):  # the notice is advisory; the KV is the truth
            await self.mesh.transport.publish(names.blackboard(self.tenant, domain), env)

    async def update(
        self,
        domain: str,
        key: str,
        change: Callable[[Any], Any],
        *,
        attempts: int = 50,
    ) -> Entry:
        """Read-modify-write under compare-and-set: ``change(old_value_or_None)`` returns
        the new value (may be async); on a conflict it runs again on the newer version."""
        for _ in range(attempts):
            current = await self.read(domain, key)
            new = change(None if current is None else current.value)
            if inspect.isawaitable(new):
                new = await new
            try:
                rev = await self.write(
                    domain, key, new, revision=0 if current is None else current.revision
                )
            except ConcurrencyError:
                continue
            return Entry(domain, key, new, rev)
        raise ConcurrencyError(f"{domain}/{key}: gave up after {attempts} conflicting writes")

    async def delete(self, domain: str, key: str) -> None:
        await self.kv.delete(self._key(domain, key))

    async def entries(self, domain: str) -> dict[str, Entry]:
        out: dict[str, Entry] = {}
        for full in await self.kv.keys(names.kv_key(self.tenant, self.name, domain) + ".>"):
            raw = await self.kv.get(full)
            if raw is not None:
                e = self._entry(raw)
                out[e.key] = e
        return out

    async def view(self, domains: Iterable[str]) -> BoardView:
        return {d: {k: e.value for k, e in (await self.entries(d)).items()} for d in domains}

    async def watch(
        self, domains: Iterable[str], handler: Callable[[Entry], Awaitable[None]]
    ) -> list[KvWatch]:
        """Call ``handler`` with the current entries, then with every change (value None =
        deleted), per domain in revision order."""

        async def deliver(raw: KvEntry) -> None:
            await handler(self._entry(raw))

        return [
            await self.kv.watch(names.kv_key(self.tenant, self.name, d) + ".>", deliver)
            for d in domains
        ]

    async def clear(self, domains: Iterable[str]) -> None:
        """Delete every entry of ``domains`` and the done mark (start a board afresh)."""
        for d in (*domains, CONTROL):
            for key in await self.entries(d):
                await self.delete(d, key)

    async def is_done(self) -> bool:
        return (await self.read(CONTROL, "status")) is not None

    async def finish(self, outcome: Any = "done") -> bool:
        """Mark the board done (first caller wins); returns whether this call did it."""
        try:
            await self.write(CONTROL, "status", outcome, revision=0)
        except ConcurrencyError:
            return False
        return True


Condition = Callable[[BoardView], bool]
Action = Callable[["Blackboard", BoardView], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class KnowledgeSource:
    """Fires ``action(board, view)`` whenever ``condition(view)`` holds on its domains."""

    name: str
    domains: tuple[str, ...]
    condition: Condition
    action: Action


class _Watcher:
    """A local view of some domains kept current by KV watches, plus a change signal."""

    def __init__(self, board: Blackboard, domains: Iterable[str]) -> None:
        self.board = board
        self.domains = tuple(dict.fromkeys([*domains, CONTROL]))
        self.view: BoardView = {d: {} for d in self.domains}
        self.changed = asyncio.Event()
        self._watches: list[KvWatch] = []

    async def start(self) -> None:
        self._watches = await self.board.watch(self.domains, self._apply)
        self.changed.set()  # a first look, even when the board is still empty

    async def _apply(self, e: Entry) -> None:
        if e.value is None:
            self.view[e.domain].pop(e.key, None)
        else:
            self.view[e.domain][e.key] = e.value
        self.changed.set()

    @property
    def done(self) -> bool:
        return "status" in self.view[CONTROL]

    async def stop(self) -> None:
        for w in self._watches:
            await w.stop()
        self._watches = []


class KnowledgeSourceRunner:
    """Runs one knowledge source against a board until the board is done."""

    def __init__(self, board: Blackboard, source: KnowledgeSource) -> None:
        self.board = board
        self.source = source
        self.fired = 0
        self._watcher = _Watcher(board, source.domains)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._watcher.start()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        w = self._watcher
        while not w.done:
            await w.changed.wait()
            w.changed.clear()
            if w.done:
                break
            view = {d: dict(v) for d, v in w.view.items()}
            try:
                if not self.source.condition(view):
                    continue
                self.fired += 1
                await self.source.action(self.board, view)
            except Exception:  # noqa: BLE001 - a user knowledge source must not stop the board
                logger.exception("knowledge source {} failed", self.source.name)
            # its own writes come back through the watch and trigger the next look

    async def wait(self, timeout: float | None = None) -> None:
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._watcher.stop()


class BlackboardController:
    """Watches the goal condition; once it holds, marks the board done and returns the view."""

    def __init__(self, board: Blackboard, domains: Iterable[str], goal: Condition) -> None:
        self.board = board
        self.goal = goal
        self._watcher = _Watcher(board, domains)

    async def run(self, timeout: float = 60.0) -> BoardView:
        """The view that met the goal; raises TimeoutError when it is not met in time."""
        w = self._watcher
        await w.start()
        deadline = time.monotonic() + timeout
        try:
            while True:
                view = {d: dict(v) for d, v in w.view.items()}
                if self.goal(view):
                    await self.board.finish()
                    return view
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"board {self.board.name}: goal not met in {timeout:g}s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(w.changed.wait(), remaining)
                w.changed.clear()
        finally:
            await w.stop()
