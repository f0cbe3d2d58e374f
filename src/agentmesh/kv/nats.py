"""Key-value store on a JetStream key-value bucket (nats-py ``js.key_value``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors
import nats.js.errors
from loguru import logger
from nats.js.api import KeyValueConfig

from agentmesh.errors import BrokerUnavailable, ConcurrencyError, Conflict, ValidationError
from agentmesh.kv.base import KvEntry, WatchHandler
from agentmesh.kv.memory import check_key
from agentmesh.transports.nats import NatsTransport

_DELETES = ("DEL", "PURGE")


class _NatsWatch:
    def __init__(self, watcher: Any, handler: WatchHandler, initial: bool) -> None:
        self.watcher = watcher
        self.handler = handler
        self.initial = initial
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        seen_marker = False
        async for raw in self.watcher:
            if raw is None:  # end of the initial values
                seen_marker = True
                continue
            if not self.initial and not seen_marker:
                continue
            deleted = raw.operation in _DELETES
            entry = KvEntry(raw.key, None if deleted else bytes(raw.value or b""), raw.revision)
            try:
                await self.handler(entry)
            except Exception:  # noqa: BLE001 - a user watch handler must not end the watch
                logger.exception("kv watch handler failed on {}", entry.key)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):  # stopping a watcher whose connection may be gone
            await self.watcher.stop()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class NatsKV:
    """A JetStream KV bucket (created on first use, one value of history per key)."""

    def __init__(self, transport: NatsTransport, bucket: str, *, ttl: float | None = None) -> None:
        self._transport = transport
        self.bucket = bucket
        self.ttl = ttl
        self._kv: Any = None
        self._lock = asyncio.Lock()

    async def _open(self) -> Any:
        if self._kv is None:
            async with self._lock:
                if self._kv is None:
                    js = self._transport.jetstream
                    try:
                        self._kv = await js.key_value(self.bucket)
                    except nats.js.errors.BucketNotFoundError:
                        try:
                            self._kv = await js.create_key_value(
                                # direct gets name the key in the request subject, so
                                # the bus permissions can scope reads to a tenant's keys
                                KeyValueConfig(
                                    bucket=self.bucket,
                                    history=1,
                                    ttl=self.ttl,
                                    direct=True,
                                    replicas=self._transport.replicas,
                                )
                            )
                        except nats.js.errors.BadRequestError:
                            self._kv = await js.key_value(self.bucket)  # lost a creation race
        return self._kv

    async def get(self, key: str) -> KvEntry | None:
        kv = await self._open()
        try:
            raw = await kv.get(check_key(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        except nats.errors.TimeoutError as exc:
            raise BrokerUnavailable(f"key-value get of {key!r} timed out: {exc}") from None
        return KvEntry(key, bytes(raw.value or b""), int(raw.revision or 0))

    async def put(self, key: str, value: bytes) -> int:
        kv = await self._open()
        return int(await kv.put(check_key(key), value))

    async def create(self, key: str, value: bytes) -> int:
        kv = await self._open()
        try:
            return int(await kv.create(check_key(key), value))
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
            raise Conflict(f"key {key!r} already exists", code="KEY_EXISTS") from None

    async def update(self, key: str, value: bytes, revision: int) -> int:
        kv = await self._open()
        try:
            return int(await kv.update(check_key(key), value, last=revision))
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
            raise ConcurrencyError(f"key {key!r} is no longer at revision {revision}") from None

    async def delete(self, key: str) -> None:
        kv = await self._open()
        await kv.delete(check_key(key))

    async def keys(self, pattern: str = ">") -> list[str]:
        kv = await self._open()
        watcher = await kv.watch(pattern, ignore_deletes=True, meta_only=True)
        found: list[str] = []
        try:
            while True:
                try:
                    raw = await watcher.updates(timeout=5.0)
                except nats.errors.TimeoutError:
                    break
                if raw is None:
                    break
                found.append(raw.key)
        finally:
            await watcher.stop()
        return sorted(set(found))

    async def watch(
        self, pattern: str, handler: WatchHandler, *, initial: bool = True
    ) -> _NatsWatch:
        kv = await self._open()
        try:
            watcher = await kv.watch(pattern)
        except nats.js.errors.BadRequestError as exc:
            raise ValidationError(f"invalid watch pattern {pattern!r}: {exc}") from None
        return _NatsWatch(watcher, handler, initial)
