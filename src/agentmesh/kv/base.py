"""The key-value seam: versioned entries with compare-and-set and watches.

A small :class:`typing.Protocol` that the blackboard and the swarm keep their durable
state in. Every write returns the entry's new revision; ``update`` only succeeds when the
caller names the revision it read (optimistic concurrency)::

    kv = await open_kv(mesh.transport, "AM_BB")
    rev = await kv.create("acme.clues.1a", b"CAT")           # Conflict if it exists
    entry = await kv.get("acme.clues.1a")
    await kv.update(entry.key, b"COT", entry.revision)       # ConcurrencyError if stale
    watch = await kv.watch("acme.clues.>", on_change)         # current values, then changes
    await watch.stop()

Keys are dot-separated tokens of letters, digits, ``-`` and ``_``; watch patterns use the
NATS wildcards ``*`` (one token) and a final ``>`` (one or more tokens). Implementations:
:class:`~agentmesh.kv.memory.MemoryKV` (shared per ``memory://`` broker) and
:class:`~agentmesh.kv.nats.NatsKV` (a JetStream key-value bucket).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agentmesh.errors import ConcurrencyError, Conflict


@dataclass(frozen=True, slots=True)
class KvEntry:
    """One version of a key; ``value`` is None when the key was deleted."""

    key: str
    value: bytes | None
    revision: int


WatchHandler = Callable[[KvEntry], Awaitable[None]]


@runtime_checkable
class KvWatch(Protocol):
    async def stop(self) -> None:
        """Stop delivering changes (waits for the handler call in progress)."""
        ...


@runtime_checkable
class KeyValueStore(Protocol):
    """Durable versioned key-value entries shared by every process of a mesh."""

    async def get(self, key: str) -> KvEntry | None:
        """The current entry, or None when the key is absent or deleted."""
        ...

    async def put(self, key: str, value: bytes) -> int:
        """Write unconditionally; returns the new revision."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Write only if the key is absent (or deleted); raises :class:`Conflict` otherwise."""
        ...

    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Write only if the key's revision is still ``revision``; raises
        :class:`ConcurrencyError` when another writer got there first."""
        ...

    async def delete(self, key: str) -> None: ...

    async def keys(self, pattern: str = ">") -> list[str]:
        """Live keys matching a NATS-style pattern, sorted."""
        ...

    async def watch(self, pattern: str, handler: WatchHandler, *, initial: bool = True) -> KvWatch:
        """Call ``handler`` for each change of a matching key, in revision order; with
        ``initial`` the current entries are delivered first."""
        ...


async def modify(
    kv: KeyValueStore,
    key: str,
    change: Callable[[bytes | None], Awaitable[bytes] | bytes],
    *,
    attempts: int = 50,
) -> tuple[bytes, int]:
    """Read-modify-write under compare-and-set, the one retry loop of the package.

    ``change(current value or None)`` returns the new value (it may be a coroutine
    function); when another writer got there first it runs again on the newer version.
    Returns the value written and its revision; raises :class:`ConcurrencyError` after
    ``attempts`` conflicting writes.
    """
    for _ in range(attempts):
        entry = await kv.get(key)
        new = change(None if entry is None else entry.value)
        if inspect.isawaitable(new):
            new = await new
        assert isinstance(new, bytes)
        try:
            if entry is None:
                return new, await kv.create(key, new)
            return new, await kv.update(key, new, entry.revision)
        except Conflict:  # a concurrent create or update (ConcurrencyError is a Conflict)
            continue
    raise ConcurrencyError(f"{key}: gave up after {attempts} conflicting writes")
