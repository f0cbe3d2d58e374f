"""``redis://``: Redis pub/sub for core traffic, Redis Streams for durability.

* Core publish = ``PUBLISH <subject>``; subscriptions use ``PSUBSCRIBE`` (``*``/``>`` become
  glob ``*``, then the NATS rule is applied client-side). ``PUBLISH`` returns the receiver
  count, so a request nobody listens to fails fast with ``NoResponders``. Replies come to
  a channel per tenant (see :mod:`agentmesh.transports.redis_inbox`).
* Queue groups: every member sees the message; the member chosen by a hash over the live
  member list (a heartbeat sorted set) claims it with ``SET NX``; the others claim it only
  if the preferred member did not (dead or just joined), so each message runs once.
* Durable: one stream per ``am.<tenant>.<kind>`` (``am:s:<tenant>.<kind>``) with a field for
  the subject; ``durable=True`` publishes through a script that drops a duplicate envelope id
  (120 s window), appends to the stream and also publishes to core subscribers.
  ``subscribe(durable=name)`` is a consumer group read with ``XREADGROUP``; unacked entries
  come back with ``XAUTOCLAIM`` after ``ack_wait``; ``nak(delay)`` rewinds the entry's idle
  time so it is reclaimed ``delay`` seconds later; the delivery counter is the attempt.
  The group reads the stream from its start (id ``0``); ``provision`` creates it early.
* ``capabilities.unique_first_delivery``: a duplicate id is dropped for 120 s and the
  attempt is XPENDING's delivery count, which every reclaim after ``ack_wait`` (a crashed
  member's entries too) increments; only ``XREADGROUP >`` hands out attempt 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from loguru import logger

from agentmesh import subjects
from agentmesh.aio import stop_task
from agentmesh.envelope import Envelope
from agentmesh.errors import Forbidden
from agentmesh.transports.base import (
    DEFAULT_MAX_PAYLOAD,
    SubscribeOptions,
    TransportCapabilities,
)
from agentmesh.transports.broker import (
    BrokerSubscription,
    BrokerTransport,
    background,
    durable_scope,
)
from agentmesh.transports.message import CoreDelivery as _CoreRaw
from agentmesh.transports.redis_inbox import (
    DATA_TYPES,
    confirmed,
    frame,
    inbox_channel,
    is_acl_user,
    listen,
    psubscribe_pattern,
    reply_target,
    unframe,
)

STREAM_MAXLEN = 1_000_000
DEDUPE_SECONDS = 120
CLAIM_TTL_MS = 60_000
MEMBER_TTL = 5.0
_FALLBACK_DELAY = 0.15
POOL_WAIT = 30.0  # seconds a call waits for a free pooled connection before it fails

# KEYS: stream, dedupe key. ARGV: subject, data, maxlen, dedupe seconds
_PUBLISH_DURABLE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 's', ARGV[1], 'd', ARGV[2])
  local d = ARGV[2]
  if string.byte(d, 1) == 0 then d = '\\0\\0' .. d end
  return redis.call('PUBLISH', ARGV[1], d)
end
return -1
"""


def stream_key(subject: str) -> str:
    tenant, kind = durable_scope(subject)
    return f"am:s:{tenant}.{kind}"


class _StreamRaw:
    __slots__ = (
        "_consumer",
        "_group",
        "_id",
        "_idle_ms",
        "_r",
        "_stream",
        "attempt",
        "data",
        "reply",
        "subject",
    )

    def __init__(
        self,
        r: aioredis.Redis,
        stream: str,
        group: str,
        consumer: str,
        entry_id: bytes,
        subject: str,
        data: bytes,
        attempt: int,
        ack_wait: float,
    ) -> None:
        self._r = r
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._id = entry_id
        self._idle_ms = int(ack_wait * 1000)
        self.subject = subject
        self.data = data
        self.attempt = attempt
        self.reply: str | None = None

    async def ack(self) -> None:
        await self._r.xack(self._stream, self._group, self._id)

    async def term(self) -> None:
        await self.ack()

    async def nak(self, delay: float | None = None) -> None:
        # age the entry so XAUTOCLAIM (min idle = ack_wait) takes it back after `delay`
        idle = max(self._idle_ms - int((delay or 0.0) * 1000), 0)
        await self._r.xclaim(
            self._stream, self._group, self._consumer, 0, [self._id], idle=idle, justid=True
        )

    async def in_progress(self) -> None:
        await self._r.xclaim(
            self._stream, self._group, self._consumer, 0, [self._id], idle=0, justid=True
        )


class RedisTransport(BrokerTransport):
    """Redis pub/sub + Streams transport (see module docstring)."""

    broker_name = "Redis"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **kwargs: Any) -> None:
        max_payload = kwargs.pop("max_payload", DEFAULT_MAX_PAYLOAD)
        kwargs.setdefault(
            "capabilities",
            TransportCapabilities(max_payload=max_payload, unique_first_delivery=True),
        )
        super().__init__(url, **kwargs)
        self._r: aioredis.Redis | None = None
        self._publish_durable: Any = None
        self._counter = 0
        self._inbox_tasks: list[asyncio.Task[None]] = []
        self._acl_user = is_acl_user(url)

    @property
    def r(self) -> aioredis.Redis:
        self.require_connected()
        assert self._r is not None
        return self._r

    async def _connect(self) -> None:
        # a blocking pool: more concurrent calls than connections wait for a free one
        # (the default pool raises MaxConnectionsError past its size)
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout,
            max_connections=512,
            timeout=POOL_WAIT,
            health_check_interval=0,
        )
        self._r = aioredis.Redis(connection_pool=pool)
        try:
            await self._r.ping()
        except redis.exceptions.ConnectionError as exc:
            await self._r.aclose()  # type: ignore[no-untyped-call]
            await pool.disconnect()
            self._r = None
            raise self.unavailable(exc) from None
        self._publish_durable = self._r.register_script(_PUBLISH_DURABLE)

    async def _disconnect(self) -> None:
        for task in self._inbox_tasks:
            await stop_task(task)
        self._inbox_tasks.clear()
        if self._r is not None:
            pool = self._r.connection_pool
            await self._r.aclose()  # type: ignore[no-untyped-call]
            # connections a cancelled reader still held count as "in use": close them too
            await pool.disconnect(inuse_connections=True)
            self._r = None

    async def ping(self) -> float:
        """Round-trip time to Redis in seconds; raises BrokerUnavailable."""
        start = time.perf_counter()
        try:
            await self.r.ping()
        except (redis.exceptions.ConnectionError, OSError) as exc:
            raise self.unavailable(exc) from None
        return time.perf_counter() - start

    # -- publish --------------------------------------------------------------------------
    async def _send(
        self, subject: str, data: bytes, *, durable: bool, msg_id: str, reply: str | None = None
    ) -> int | None:
        try:
            if durable:
                key = stream_key(subject)
                n = await self._publish_durable(
                    keys=[key, f"am:dd:{key}:{msg_id}"],
                    args=[subject, data, STREAM_MAXLEN, DEDUPE_SECONDS],
                )
                return None if int(n) < 0 else int(n)
            return int(await self.r.publish(subject, frame(data, reply)))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise self.unavailable(exc) from None
        except redis.exceptions.NoPermissionError as exc:  # a tenant ACL user (redis_acl.py)
            raise Forbidden(f"Redis refused {subject!r} to this user: {exc}") from None

    async def _respond(self, reply: str, envelope: Envelope) -> None:
        channel, token = reply_target(reply)  # see redis_inbox
        await self.r.publish(channel, frame(envelope.encode(), token))

    tenant_inboxes = True

    async def _open_inbox(self) -> str:
        return await self._open_tenant_inbox(None)

    async def _open_tenant_inbox(self, tenant: str | None) -> str:
        channel = inbox_channel(tenant, self.instance)

        def on_reply(raw: bytes) -> None:
            data, token = unframe(raw)
            if token:
                self.deliver_reply(token, data)

        try:
            self._inbox_tasks.append(await listen(self.r, channel, on_reply, self.connect_timeout))
        except (TimeoutError, redis.exceptions.ConnectionError) as exc:
            raise self.unavailable(exc) from None
        return channel

    # -- core subscriptions ---------------------------------------------------------------
    async def _start_core(self, sub: BrokerSubscription, queue: str | None) -> None:
        pattern = sub.subject
        ps = self.r.pubsub()  # keeps the subscribe confirmations, which readiness waits for

        sub.release.append(ps.aclose)  # released when the subscription ends or fails
        exact = "*" not in pattern and ">" not in pattern
        if exact:
            await ps.subscribe(pattern)
        else:
            await ps.psubscribe(psubscribe_pattern(pattern, acl_user=self._acl_user))
        group = _QueueMember(self, queue, pattern) if queue else None
        if group is not None:
            await ps.subscribe(group.changed_channel)
        try:  # live once Redis confirmed: a publish from now on reaches this connection
            early = await confirmed(ps, 2 if group else 1, self.connect_timeout)
        except (TimeoutError, redis.exceptions.ConnectionError) as exc:
            raise self.unavailable(exc) from None
        except redis.exceptions.NoPermissionError as exc:  # a tenant ACL user (redis_acl.py)
            raise Forbidden(f"Redis refused {pattern!r} to this user: {exc}") from None
        if group is not None:
            await group.join()
            sub.release.append(group.leave)

        async def read() -> None:
            d = sub.dispatcher
            while not d.closed:
                try:
                    msg = early.pop(0) if early else await ps.get_message(timeout=0.25)
                except (redis.exceptions.ConnectionError, OSError) as exc:
                    logger.warning("redis subscription {} lost: {}", pattern, exc)
                    await asyncio.sleep(0.5)
                    continue
                if msg is None or d.closed or msg["type"] not in DATA_TYPES:
                    continue
                channel = msg["channel"].decode()
                if group is not None and channel == group.changed_channel:
                    await group.refresh()
                    continue
                if not exact and not subjects.matches(pattern, channel):
                    continue
                raw = msg["data"]
                if group is not None and not await group.claim(raw, d, channel):
                    continue
                data, reply = unframe(raw)
                await d.submit(_CoreRaw(channel, data, reply))

        sub.spawn(read())

    # -- durable subscriptions ------------------------------------------------------------
    async def _group_stream(self, subject: str, durable: str) -> str:
        """The stream of a durable group on ``subject``; the group is created from its start."""
        stream = stream_key(subject.replace("*", "x").replace(">", "x"))
        try:
            await self.r.xgroup_create(stream, durable, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise self.unavailable(exc) from None
        return stream

    async def _declare_durable(self, subject: str, durable: str, options: SubscribeOptions) -> None:
        await self._group_stream(subject, durable)

    async def _start_durable(
        self, sub: BrokerSubscription, durable: str, options: SubscribeOptions
    ) -> None:
        stream = await self._group_stream(sub.subject, durable)
        self._counter += 1
        consumer = f"{self.instance}-{self._counter}"
        sub.spawn(self._durable_loop(sub, stream, durable, consumer, options))

    async def _durable_loop(
        self,
        sub: BrokerSubscription,
        stream: str,
        group: str,
        consumer: str,
        options: SubscribeOptions,
    ) -> None:
        d = sub.dispatcher
        r = self.r
        claim_every = min(0.25, options.ack_wait / 4)
        idle_ms = int(options.ack_wait * 1000)
        last_claim = 0.0

        def raw(entry_id: bytes, fields: dict[bytes, bytes], attempt: int) -> _StreamRaw:
            subject = fields.get(b"s", b"").decode()
            return _StreamRaw(
                r,
                stream,
                group,
                consumer,
                entry_id,
                subject,
                fields.get(b"d", b""),
                attempt,
                options.ack_wait,
            )

        while not d.closed:
            free = d.free_slots
            if free <= 0:
                await asyncio.sleep(0.005)
                continue
            try:
                now = time.monotonic()
                if now - last_claim >= claim_every:
                    last_claim = now
                    _, claimed, *_ = await r.xautoclaim(
                        stream, group, consumer, idle_ms, "0-0", count=min(free, 256)
                    )
                    for entry_id, fields in claimed:
                        if fields is None or d.closed:
                            continue
                        info = await r.xpending_range(stream, group, entry_id, entry_id, 1)
                        attempt = int(info[0]["times_delivered"]) if info else 2
                        if attempt > options.max_deliver:
                            await r.xack(stream, group, entry_id)
                            continue
                        await sub.deliver(raw(entry_id, fields, attempt), None)
                    if claimed:
                        continue
                resp = await r.xreadgroup(
                    group, consumer, {stream: ">"}, count=min(free, 256), block=100
                )
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
                if d.closed:
                    return
                logger.warning("redis stream read on {} failed: {}; retrying", stream, e)
                await asyncio.sleep(0.5)
                continue
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" in str(exc):  # stream deleted under us: recreate the group
                    with contextlib.suppress(redis.exceptions.ResponseError):
                        await r.xgroup_create(stream, group, id="0", mkstream=True)
                    continue
                raise
            batches: Any = resp or ()
            for _, entries in batches:
                for entry_id, fields in entries:
                    await sub.deliver(raw(entry_id, fields, 1), None)


class _QueueMember:
    """One member of a core queue group (see module docstring)."""

    def __init__(self, transport: RedisTransport, queue: str, pattern: str) -> None:
        self.t = transport
        self.key = f"am:qg:{queue}:{pattern}"
        self.changed_channel = f"am:qg-changed:{queue}:{pattern}"
        self.claim_prefix = f"am:qc:{queue}:{pattern}:"
        transport._counter += 1
        self.me = f"{transport.instance}-{transport._counter}"
        self.members: list[str] = [self.me]
        self._beat: asyncio.Task[None] | None = None

    async def join(self) -> None:
        await self.t.r.zadd(self.key, {self.me: time.time()})
        await self.refresh()
        await self.t.r.publish(self.changed_channel, b"join")
        self._beat = asyncio.create_task(self._heartbeat())

    async def leave(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        await self.t.r.zrem(self.key, self.me)
        await self.t.r.publish(self.changed_channel, b"leave")

    async def refresh(self) -> None:
        live: Any = await self.t.r.zrangebyscore(self.key, time.time() - MEMBER_TTL, "+inf")
        members = sorted(bytes(m).decode() for m in live)
        self.members = members if self.me in members else sorted([*members, self.me])

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):  # membership refresh is retried every second
                await self.t.r.zadd(self.key, {self.me: time.time()})
                await self.t.r.zremrangebyscore(self.key, "-inf", time.time() - 10 * MEMBER_TTL)
                await self.refresh()

    async def _try(self, key: str) -> bool:
        return bool(await self.t.r.set(key, self.me, nx=True, px=CLAIM_TTL_MS))

    async def claim(self, raw: bytes, dispatcher: Any, subject: str) -> bool:
        """True when this member should run the message now; else maybe later as fallback."""
        digest = hashlib.blake2b(raw, digest_size=12).digest()
        key = self.claim_prefix + digest.hex()
        if self.members[int.from_bytes(digest[:4]) % len(self.members)] == self.me:
            return await self._try(key)

        async def fallback() -> None:
            await asyncio.sleep(_FALLBACK_DELAY)
            if not dispatcher.closed and await self._try(key):
                data, reply = unframe(raw)
                await dispatcher.submit(_CoreRaw(subject, data, reply))

        background(fallback())
        return False
