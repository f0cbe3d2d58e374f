"""NATS hot path with bus auth on vs off (``make bench``; the issue asks >= 0.9x).

Two embedded nats-servers in the same run: one without auth, one with the auth callout
of ``agentmesh up`` (its callout service in this process). On each, the same work with an
agent token of one tenant (auth on) or none (auth off):

* ``core``: raw nats-py publish -> subscribe of small messages on ``am.<t>.evt.x`` (the
  server checks the permissions of every publish and delivery);
* ``task_path``: :mod:`bench.engine`'s durable task flow (submit -> 4 competing agents ->
  result event) through our transport, JetStream and KV ledger included.

Figures are wall-clock rates, interleaved and best of ``ROUNDS`` (the machine is shared);
``ratio`` = auth on / auth off.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats

from agentmesh.runtime.embedded import EmbeddedNats
from agentmesh.security.bus_auth import BusAuthConfig
from agentmesh.security.bus_permissions import inbox_prefix
from agentmesh.security.nats_callout import NatsCalloutService
from agentmesh.security.tokens import TokenConfig, TokenService
from bench.core import entry
from bench.task_path import noop_task_rate

Result = dict[str, dict[str, Any]]
CORE_MESSAGES = 20_000
TASKS = 600
ROUNDS = 5
SECRET = "b" * 32


async def core(url: str, tenant: str, token: str | None) -> float:
    """Messages per wall second, publish -> subscribe on one connection each."""
    opts: dict[str, Any] = {"token": token, "inbox_prefix": inbox_prefix(tenant)}
    pub, sub = await nats.connect(url, **opts), await nats.connect(url, **opts)
    got = asyncio.Event()
    count = [0]

    last = [0.0]

    async def on_msg(_: Any) -> None:
        count[0] += 1
        last[0] = time.perf_counter()
        if count[0] == CORE_MESSAGES:
            got.set()

    await sub.subscribe(f"am.{tenant}.evt.x", cb=on_msg, pending_msgs_limit=CORE_MESSAGES * 2)
    await sub.flush()
    start = time.perf_counter()
    for i in range(CORE_MESSAGES):
        await pub.publish(f"am.{tenant}.evt.x", b"x" * 64)
        if i % 1000 == 999:
            await pub.flush()
    await pub.flush()
    with contextlib.suppress(TimeoutError):  # core NATS is at-most-once: a slow consumer
        await asyncio.wait_for(got.wait(), 10)  # may lose a few under load; count arrivals
    if count[0] < CORE_MESSAGES * 0.9:
        raise RuntimeError(f"only {count[0]} of {CORE_MESSAGES} messages arrived")
    rate = count[0] / (last[0] - start)
    await pub.close()
    await sub.close()
    return rate


async def task_path(url: str, tenant: str, token: str | None, tmp: Path) -> float:
    """Tasks per wall second through submit -> agent -> result event."""
    return await noop_task_rate(url, tenant, TASKS, tmp, clock=time.perf_counter, bus_token=token)


async def run() -> Result:
    tokens = TokenService(TokenConfig(secret=SECRET))
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        config = BusAuthConfig.generate()
        with (
            EmbeddedNats(tmp / "open", port=None) as open_server,
            EmbeddedNats(tmp / "auth", port=None, auth=config) as auth_server,
        ):
            callout = NatsCalloutService(auth_server.url, config, tokens)
            await callout.start()
            try:
                for _ in range(ROUNDS):
                    for mode, url in (("off", open_server.url), ("on", auth_server.url)):
                        tenant = "bench-" + uuid.uuid4().hex[:6]
                        token = tokens.create("bench", tenant, ["agent"]) if mode == "on" else None
                        for name, rate in (
                            ("core", await core(url, tenant, token)),
                            ("task_path", await task_path(url, tenant, token, tmp)),
                        ):
                            key = f"{name}.{mode}"
                            best[key] = max(best.get(key, 0.0), rate)
            finally:
                await callout.stop()
    return {
        "bus_auth.nats.core": entry(best["core.on"], "msgs/s", best["core.off"]),
        "bus_auth.nats.task_path": entry(best["task_path.on"], "tasks/s", best["task_path.off"]),
    }
