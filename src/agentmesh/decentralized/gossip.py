"""SWIM-style gossip over UDP: periodic pings, indirect pings, suspicion, infection-style news.

One protocol period per ``gossip_interval``: ping one member (round-robin over a shuffled
list); without an ack within ``ping_timeout``, ask up to ``fanout`` other members to ping it
(``ping-req``); without any ack by the end of the period it becomes a suspect. A suspect
that does not refute within the suspicion timeout is declared dead. Every message carries
membership news, and each period fresh news is also pushed to up to ``fanout`` members.
The socket is UDP on the node's own ``host:port`` (the same number as its Raft TCP port).
With a cluster secret every datagram carries an HMAC-SHA256 and unsigned ones are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import time
from collections.abc import Callable
from typing import Any

import orjson
from loguru import logger

from agentmesh.aio import stop_task
from agentmesh.decentralized.config import Timings
from agentmesh.decentralized.membership import Membership
from agentmesh.errors import BrokerUnavailable

NEWS_PER_MESSAGE = 16
MAX_DATAGRAM = 65_000
ChangeListener = Callable[[dict[str, Any]], None]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: Gossip) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.owner.received(data)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.
        logger.debug("gossip socket error: {}", exc)


class Gossip:
    """The gossip member of one node; ``members`` is its current view."""

    def __init__(
        self,
        address: str,
        seeds: list[str],
        *,
        group: str,
        agent_id: str | None,
        timings: Timings,
        on_change: ChangeListener | None = None,
        secret: str | None = None,
    ) -> None:
        self.address = address
        self._key = hashlib.sha256(secret.encode()).digest() if secret else None
        self.group = group
        self.timings = timings
        self.table = Membership(
            address,
            agent_id=agent_id,
            incarnation=int(time.time() * 1000),  # above any incarnation of an earlier run
            now=time.time(),
            seeds=seeds,
        )
        self._listeners: list[ChangeListener] = [on_change] if on_change else []
        self._transport: asyncio.DatagramTransport | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._seq = itertools.count(1)
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._relays: dict[int, tuple[str, int]] = {}  # our seq -> (requester, its seq)
        self.sent = 0
        self.received_count = 0

    def on_change(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        host, port = _split(self.address)
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(host, port)
            )
        except OSError as exc:
            raise BrokerUnavailable(f"gossip cannot bind UDP {self.address}: {exc}") from None
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self, *, leave: bool = True) -> None:
        if self._loop_task is not None:
            await stop_task(self._loop_task)
            self._loop_task = None
        if leave and self._transport is not None:
            self.table.leave(time.time())
            for peer in self.table.pick(self.timings.fanout * 2):
                self._send(peer, {"t": "gossip"})
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- the protocol period ------------------------------------------------------------
    async def _run(self) -> None:
        interval = self.timings.gossip_interval
        while True:
            started = time.monotonic()
            try:
                for addr in self.table.expire(time.time(), self.timings.suspicion):
                    logger.info("gossip {}: {} is dead", self.address, addr)
                    self._changed(addr)
                target = self.table.next_probe()
                if target is not None:
                    await self._probe(target, started + interval * 0.9)
                if self.table.has_news():
                    for peer in self.table.pick(self.timings.fanout):
                        self._send(peer, {"t": "gossip"})
            except Exception:  # noqa: BLE001 - a bad period must not end the protocol
                logger.exception("gossip period failed on {}", self.address)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _probe(self, target: str, deadline: float) -> None:
        seq = next(self._seq)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[seq] = ack
        try:
            self._send(target, {"t": "ping", "seq": seq})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ack), self.timings.ping_timeout)
                return
            for helper in self.table.pick(self.timings.fanout, exclude=(target,)):
                self._send(helper, {"t": "req", "seq": seq, "target": target})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ack), max(0.01, deadline - time.monotonic()))
                return
            if self.table.suspect(target, time.time()):
                logger.info("gossip {}: {} is suspect", self.address, target)
                self._changed(target)
        finally:
            self._acks.pop(seq, None)

    # -- messages -----------------------------------------------------------------------
    def _send(self, peer: str, message: dict[str, Any]) -> None:
        if self._transport is None:
            return
        me = self.table.myself()
        message.update(
            g=self.group,
            src=self.address,
            inc=me["incarnation"],
            agent=me["agent_id"],
            news=self.table.news(NEWS_PER_MESSAGE),
        )
        data = orjson.dumps(message)
        if self._key is not None:
            data = hmac.digest(self._key, data, "sha256") + data
        try:
            self._transport.sendto(data, _split(peer))
            self.sent += 1
        except OSError as exc:
            logger.debug("gossip send to {} failed: {}", peer, exc)

    def received(self, data: bytes) -> None:
        if len(data) > MAX_DATAGRAM:
            return
        if self._key is not None:  # signed by a member that knows the cluster secret
            mac, data = data[:32], data[32:]
            if not hmac.compare_digest(mac, hmac.digest(self._key, data, "sha256")):
                return
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(msg, dict) or msg.get("g") != self.group:
            return
        src, inc = msg.get("src"), msg.get("inc")
        if not isinstance(src, str) or not isinstance(inc, int) or src == self.address:
            return
        self.received_count += 1
        now = time.time()
        agent = msg.get("agent") if isinstance(msg.get("agent"), str) else None
        # first-hand: it spoke to us (a leave notice is news, not proof of life)
        first_hand = msg.get("t") != "gossip" or self.table.state_of(src) is None
        if first_hand and self.table.alive_heard(src, inc, agent, now):
            self._changed(src)
        for news in msg.get("news") or []:
            if isinstance(news, dict) and self.table.update(news, now):
                self._changed(str(news.get("address")))
        kind, seq = msg.get("t"), msg.get("seq")
        if not isinstance(seq, int):
            return
        if kind == "ping":
            self._send(src, {"t": "ack", "seq": seq})
        elif kind == "ack":
            ack = self._acks.get(seq)
            if ack is not None and not ack.done():
                ack.set_result(None)
            relay = self._relays.pop(seq, None)
            if relay is not None:
                requester, their_seq = relay
                self._send(requester, {"t": "ack", "seq": their_seq, "via": src})
        elif kind == "req" and isinstance(msg.get("target"), str):
            ours = next(self._seq)
            self._relays[ours] = (src, seq)
            asyncio.get_running_loop().call_later(
                self.timings.gossip_interval, self._relays.pop, ours, None
            )
            self._send(msg["target"], {"t": "ping", "seq": ours})

    def _changed(self, addr: str) -> None:
        member = self.table.members.get(addr)
        if member is None:
            return
        for listener in self._listeners:
            try:
                listener(member.to_dict())
            except Exception:  # noqa: BLE001 - a user listener must not break the protocol
                logger.exception("gossip listener failed")

    # -- views --------------------------------------------------------------------------
    def members(self) -> list[dict[str, Any]]:
        return self.table.view()

    def state_of(self, address: str) -> str | None:
        return self.table.state_of(address)
