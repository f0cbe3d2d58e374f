"""JetStream pull consumers: the fetch loop that feeds a dispatcher, and the hand-back of
messages a leaving subscriber fetched but will not run.

An unsettled JetStream message comes back to the group only after ``ack_wait`` (30 s by
default), so every message this process fetched and will not handle is nak'ed at once:
the ones still to be started when the subscription closes, and the ones a pull request
delivered after its fetch had already timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors
from loguru import logger
from nats.aio.msg import Msg

from agentmesh.transports.message import Dispatcher

FETCH_TIMEOUT = 0.5
"""Seconds one pull request waits for messages; the loop notices a close within this."""
_PULL_STATUS = ("404", "408", "409")  # status replies to a pull request, not messages


class JsRaw:
    """A fetched JetStream message as the dispatcher's raw delivery."""

    __slots__ = ("_msg", "attempt", "data", "reply", "subject")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.subject = msg.subject
        self.data = msg.data
        self.reply: str | None = None
        try:
            self.attempt = int(msg.metadata.num_delivered)
        except (
            nats.errors.Error,
            AttributeError,
            TypeError,
            ValueError,
        ):  # not a JetStream message
            self.attempt = 1

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self._msg.nak(delay=delay if delay and delay > 0 else None)

    async def term(self) -> None:
        await self._msg.term()

    async def in_progress(self) -> None:
        await self._msg.in_progress()


async def fetch_loop(pull: Any, d: Dispatcher, subject: str) -> None:
    """Fetch as many messages as ``d`` has free slots until it closes."""
    while not d.closed:
        want = d.free_slots
        if want <= 0:
            await asyncio.sleep(0.005)
            continue
        try:
            msgs = await pull.fetch(batch=min(want, 256), timeout=FETCH_TIMEOUT)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        except asyncio.CancelledError:
            raise
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
            return
        except Exception as exc:  # noqa: BLE001 - the fetch loop retries after any client error while open
            if d.closed:
                return
            logger.warning("fetch on {} failed: {}; retrying", subject, exc)
            await asyncio.sleep(0.5)
            continue
        await _hand_over(d, msgs)


async def _hand_over(d: Dispatcher, msgs: list[Msg]) -> None:
    """Start a handler for each fetched message; once the subscription is closing, give
    the rest back at once."""
    pending = [m for m in msgs if not _is_status(m)]
    try:
        while pending and not d.closed:
            await d.submit(JsRaw(pending[0]))
            pending.pop(0)
    finally:
        await give_back(pending)


def left_over(pull: Any) -> list[Msg]:
    """Messages that arrived after the last fetch returned (its pull request was still
    open on the server): they sit in the subscription's queue until given back."""
    queue = pull._sub._pending_queue  # nats-py exposes only its size (pending_msgs)
    msgs: list[Msg] = []
    while not queue.empty():
        m = queue.get_nowait()
        if not _is_status(m):
            msgs.append(m)
    return msgs


async def give_back(msgs: list[Msg]) -> None:
    """Nak ``msgs`` now so another member of the group takes them."""
    for m in msgs:
        with contextlib.suppress(Exception):  # best effort: the server redelivers after ack_wait
            await m.nak()


def _is_status(m: Msg) -> bool:
    return bool(m.headers and m.headers.get("Status") in _PULL_STATUS)
