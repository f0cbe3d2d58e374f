"""The task ledger in Redis: one hash per task, ``am:ledger:<tenant>:<task_id>``, with
fields ``outcome``, ``done``, ``failures`` and ``cancelled``; every write renews its TTL."""

from __future__ import annotations

import asyncio
from typing import Any

from agentmesh.envelope import Envelope
from agentmesh.errors import BrokerUnavailable


class RedisLedger:
    """:class:`~agentmesh.runtime.ledger.TaskLedger` on a Redis server."""

    def __init__(self, url: str, *, ttl_seconds: float) -> None:
        self.url = url
        self.ttl = int(ttl_seconds)
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def _redis(self) -> Any:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    import redis.asyncio as aioredis

                    client = aioredis.from_url(self.url)
                    try:
                        await client.ping()
                    except (OSError, aioredis.RedisError) as exc:
                        await client.aclose()
                        raise BrokerUnavailable(
                            f"cannot reach the task ledger at {self.url}: {exc}"
                        ) from None
                    self._client = client
        return self._client

    @staticmethod
    def _key(tenant: str, task_id: str) -> str:
        return f"am:ledger:{tenant}:{task_id}"

    async def _field(self, tenant: str, task_id: str, field: str) -> bytes | None:
        r = await self._redis()
        value: bytes | None = await r.hget(self._key(tenant, task_id), field)
        return value

    async def _write(self, tenant: str, task_id: str, mapping: dict[str, Any]) -> None:
        r = await self._redis()
        key = self._key(tenant, task_id)
        async with r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, self.ttl)
            await pipe.execute()

    async def completed(self, tenant: str, task_id: str) -> Envelope | None:
        raw = await self._field(tenant, task_id, "done")
        return None if raw is None else Envelope.decode(raw)

    async def outcome(self, tenant: str, task_id: str) -> Envelope | None:
        raw = await self._field(tenant, task_id, "outcome")
        return None if raw is None else Envelope.decode(raw)

    async def record_outcome(self, tenant: str, task_id: str, outcome: Envelope) -> None:
        raw = outcome.encode()
        fields = {"outcome": raw}
        if outcome.type == "task.completed":
            fields["done"] = raw
        await self._write(tenant, task_id, fields)

    async def add_failure(self, tenant: str, task_id: str) -> int:
        r = await self._redis()
        key = self._key(tenant, task_id)
        async with r.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "failures", 1)
            pipe.expire(key, self.ttl)
            count, _ = await pipe.execute()
        return int(count)

    async def failures(self, tenant: str, task_id: str) -> int:
        raw = await self._field(tenant, task_id, "failures")
        return 0 if raw is None else int(raw)

    async def cancel(self, tenant: str, task_id: str) -> None:
        await self._write(tenant, task_id, {"cancelled": b"1"})

    async def is_cancelled(self, tenant: str, task_id: str) -> bool:
        return await self._field(tenant, task_id, "cancelled") is not None

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None:
                await self._client.aclose()
                self._client = None
