"""Key-value store on a JetStream key-value bucket (nats-py's ``KeyValue``, bound by
:func:`agentmesh.kv.nats_bind.bind` so that a tenant's permissions can scope it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from loguru import logger
from nats.js.api import KeyValueConfig

from agentmesh.errors import BrokerUnavailable, ConcurrencyError, Conflict, ValidationError
from agentmesh.kv.base import KvEntry, WatchHandler
from agentmesh.kv.memory import check_key
from agentmesh.kv.nats_bind import bind
from agentmesh.transports.nats import NatsTransport

_DELETES = ("DEL", "PURGE")
_MISSING = (
    nats.errors.NoRespondersError,  # a direct get: no stream answers its subject
    nats.js.errors.NoStreamResponseError,  # a put: no stream stores the key's subject
    nats.js.errors.NotFoundError,  # a watch: the consumer's stream does not exist
)
"""What an operation on a bucket that does not exist yet raises."""
T = TypeVar("T")


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
            self._kv = bind(self._transport.jetstream, self.bucket)
        return self._kv

    async def _create(self) -> None:
        """Create the bucket (a no-op when it exists, whatever its settings)."""
        async with self._lock:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # exists already
                await self._transport.jetstream.create_key_value(
                    # direct gets name the key in the request subject, so the bus
                    # permissions can scope reads to a tenant's keys
                    KeyValueConfig(
                        bucket=self.bucket,
                        history=1,
                        ttl=self.ttl,
                        direct=True,
                        replicas=self._transport.replicas,
                    )
                )

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """``op(bucket)``; a bucket that does not exist yet is created, then ``op`` retried."""
        kv = await self._open()
        try:
            return await op(kv)
        except _MISSING as exc:
            if isinstance(exc, nats.js.errors.KeyNotFoundError):
                raise
        await self._create()
        return await op(kv)

    async def get(self, key: str) -> KvEntry | None:
        check_key(key)
        try:
            raw = await self._call(lambda kv: kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        except nats.errors.TimeoutError as exc:
            raise BrokerUnavailable(f"key-value get of {key!r} timed out: {exc}") from None
        return KvEntry(key, bytes(raw.value or b""), int(raw.revision or 0))

    async def put(self, key: str, value: bytes) -> int:
        check_key(key)
        return int(await self._call(lambda kv: kv.put(key, value)))

    async def create(self, key: str, value: bytes) -> int:
        check_key(key)
        try:
            return int(await self._call(lambda kv: kv.create(key, value)))
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
            raise Conflict(f"key {key!r} already exists", code="KEY_EXISTS") from None

    async def update(self, key: str, value: bytes, revision: int) -> int:
        check_key(key)
        try:
            return int(await self._call(lambda kv: kv.update(key, value, last=revision)))
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.BadRequestError):
            raise ConcurrencyError(f"key {key!r} is no longer at revision {revision}") from None

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._call(lambda kv: kv.delete(key))

    async def keys(self, pattern: str = ">") -> list[str]:
        watcher = await self._call(
            lambda kv: kv.watch(pattern, ignore_deletes=True, meta_only=True)
        )
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
        try:
            watcher = await self._call(lambda kv: kv.watch(pattern))
        except nats.js.errors.BadRequestError as exc:
            raise ValidationError(f"invalid watch pattern {pattern!r}: {exc}") from None
        return _NatsWatch(watcher, handler, initial)
