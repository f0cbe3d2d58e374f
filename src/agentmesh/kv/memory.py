"""In-process key-value store, shared by every transport on the same ``memory://`` broker."""

from __future__ import annotations

import asyncio
import contextlib

from agentmesh import subjects
from agentmesh.errors import ConcurrencyError, Conflict, ValidationError
from agentmesh.kv.base import KvEntry, WatchHandler


def check_key(key: str) -> str:
    if not subjects.is_valid(key) or "*" in key or ">" in key:
        raise ValidationError(f"invalid key {key!r}: dot-separated letters, digits, '-' or '_'")
    return key


class _MemoryWatch:
    def __init__(self, store: MemoryKV, pattern: str, handler: WatchHandler) -> None:
        self.store = store
        self.pattern = pattern
        self.handler = handler
        self.queue: asyncio.Queue[KvEntry | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while (entry := await self.queue.get()) is not None:
            try:
                await self.handler(entry)
            except Exception:  # noqa: BLE001 - a user watch handler must not end the watch
                from loguru import logger

                logger.exception("kv watch handler failed on {}", entry.key)

    async def stop(self) -> None:
        if self in self.store._watches:
            self.store._watches.remove(self)
        self.queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class MemoryKV:
    """A bucket in process memory with the same semantics as a JetStream KV bucket."""

    def __init__(self) -> None:
        self._data: dict[str, KvEntry] = {}
        self._revision = 0
        self._watches: list[_MemoryWatch] = []

    def _write(self, key: str, value: bytes | None) -> int:
        self._revision += 1
        entry = KvEntry(key, value, self._revision)
        self._data[key] = entry
        for w in self._watches:
            if subjects.matches(w.pattern, key):
                w.queue.put_nowait(entry)
        return self._revision

    async def get(self, key: str) -> KvEntry | None:
        entry = self._data.get(check_key(key))
        return entry if entry is not None and entry.value is not None else None

    async def put(self, key: str, value: bytes) -> int:
        return self._write(check_key(key), bytes(value))

    async def create(self, key: str, value: bytes) -> int:
        if await self.get(key) is not None:
            raise Conflict(f"key {key!r} already exists", code="KEY_EXISTS")
        return self._write(key, bytes(value))

    async def update(self, key: str, value: bytes, revision: int) -> int:
        current = self._data.get(check_key(key))
        if current is None or current.revision != revision:
            found = None if current is None else current.revision
            raise ConcurrencyError(f"key {key!r} is at revision {found}, not {revision}")
        return self._write(key, bytes(value))

    async def delete(self, key: str) -> None:
        if await self.get(key) is not None:
            self._write(key, None)

    async def keys(self, pattern: str = ">") -> list[str]:
        return sorted(
            k for k, e in self._data.items() if e.value is not None and subjects.matches(pattern, k)
        )

    async def watch(
        self, pattern: str, handler: WatchHandler, *, initial: bool = True
    ) -> _MemoryWatch:
        if not subjects.is_valid(pattern):
            raise ValidationError(f"invalid watch pattern {pattern!r}")
        w = _MemoryWatch(self, pattern, handler)
        if initial:
            for entry in sorted(self._data.values(), key=lambda e: e.revision):
                if entry.value is not None and subjects.matches(pattern, entry.key):
                    w.queue.put_nowait(entry)
        self._watches.append(w)
        return w
