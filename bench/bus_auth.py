"""NATS hot path with bus auth on vs off (``make bench``; the issue asks >= 0.9x).

Two embedded nats-servers in the same run: one without auth, one with the auth callout
of ``agentmesh up`` (its callout service in this process). On each side, connected once
with an agent token of one tenant (auth on) or none (auth off):

* ``core``: raw nats-py publish -> subscribe of small messages on ``am.<t>.evt.x`` (the
  server checks the permissions of every publish and delivery);
* ``task_path``: the durable task flow (submit -> 4 competing no-op agents -> result
  event) through a started mesh: our transport, JetStream and the KV ledger included.

The two sides take turns in short slices (a chunk of messages, a batch of tasks), off,
on, on, off in every round, so both see the same load from the rest of the (shared)
machine. A round's ratio is on / off of its rates, per wall second and per CPU second
(this process plus the nats-server of that side, from ``/proc``); a figure's ``ratio`` is
the median of its rounds' ratios, ``rounds`` lists them, and ``value`` / ``baseline`` are
the median rates with auth on / off.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats

from agentmesh import Envelope, Mesh, TaskContext
from agentmesh.config import Settings
from agentmesh.runtime.embedded import EmbeddedNats
from agentmesh.security.bus_auth import BusAuthConfig
from agentmesh.security.bus_permissions import inbox_prefix
from agentmesh.security.nats_callout import NatsCalloutService
from agentmesh.security.tokens import TokenConfig, TokenService
from bench.core import entry

Result = dict[str, dict[str, Any]]
CORE_CHUNK = 6_000
TASK_BATCH = 150
ROUNDS = 25
ORDER = ("off", "on", "on", "off")
DEADLINE = 60.0
SECRET = "b" * 32


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _noop(task: TaskContext) -> dict[str, Any]:
    return {"ok": True}


class _Counter:
    """Counts arrivals and wakes a waiter at a target count."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()

    async def wait_for(self, target: int) -> None:
        self.target = target
        if self.count < target:
            self.reached.clear()
            await asyncio.wait_for(self.reached.wait(), DEADLINE)


class _Side:
    """One server with its tenant's connections and a started mesh of four no-op agents."""

    def __init__(self, server: EmbeddedNats, token: str | None, tenant: str, tmp: Path) -> None:
        assert server.proc is not None
        self.server, self.pid, self.token, self.tenant, self.tmp = (
            server,
            server.proc.pid,
            token,
            tenant,
            tmp,
        )
        self.messages, self.tasks = _Counter(), _Counter()

    async def open(self) -> None:
        opts: dict[str, Any] = {"token": self.token, "inbox_prefix": inbox_prefix(self.tenant)}
        self.pub = await nats.connect(self.server.url, **opts)
        self.sub = await nats.connect(self.server.url, **opts)

        async def on_msg(_: Any) -> None:
            self.messages.hit()

        await self.sub.subscribe(f"am.{self.tenant}.evt.x", cb=on_msg, pending_msgs_limit=-1)
        await self.sub.flush()
        settings = Settings(agentmesh_data_dir=self.tmp / self.tenant)  # type: ignore[call-arg]
        self.mesh = Mesh(
            self.server.url, tenant=self.tenant, settings=settings, bus_token=self.token
        )
        for i in range(4):
            self.mesh.agent(f"bench-{i}", capabilities=["noop"], max_concurrent=64)(_noop)
        await self.mesh.start(registry=False)

        async def on_done(_: Envelope) -> None:
            self.tasks.hit()

        await self.mesh.on_event("task.completed", on_done)

    async def close(self) -> None:
        await self.mesh.stop()
        await self.pub.close()
        await self.sub.close()

    def _cpu(self) -> float:
        return time.process_time() + _server_cpu(self.pid)

    async def core(self) -> tuple[float, float]:
        """(wall, CPU) seconds of one chunk of messages, published until all arrived."""
        target = self.messages.count + CORE_CHUNK
        wall, cpu = time.perf_counter(), self._cpu()
        for i in range(CORE_CHUNK):
            await self.pub.publish(f"am.{self.tenant}.evt.x", b"x" * 64)
            if i % 1000 == 999:
                await self.pub.flush()
        await self.pub.flush()
        await self.messages.wait_for(target)
        return time.perf_counter() - wall, self._cpu() - cpu

    async def task_path(self) -> tuple[float, float]:
        """(wall, CPU) seconds of one batch of tasks, submitted until all completed."""
        target = self.tasks.count + TASK_BATCH
        wall, cpu = time.perf_counter(), self._cpu()
        await asyncio.gather(*(self.mesh.submit("noop", {"i": i}) for i in range(TASK_BATCH)))
        await self.tasks.wait_for(target)
        return time.perf_counter() - wall, self._cpu() - cpu


def _figure(on: list[float], off: list[float], unit: str) -> dict[str, Any]:
    """Median rates on and off, the median of the per-round ratios on / off, and those
    ratios (``rounds``: their spread shows how busy the machine was)."""
    figure = entry(statistics.median(on), unit, statistics.median(off))
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    figure["ratio"] = round(statistics.median(ratios), 3)
    figure["rounds"] = [round(r, 3) for r in ratios]
    return figure


async def _rounds(sides: dict[str, _Side], workload: str, n: int, unit: str) -> Result:
    for side in sides.values():  # warm-up, not counted
        await getattr(side, workload)()
    rates: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        spent = {mode: [0.0, 0.0] for mode in sides}
        for mode in ORDER:
            wall, cpu = await getattr(sides[mode], workload)()
            spent[mode][0] += wall
            spent[mode][1] += max(cpu, 1e-3)
        for mode, (wall, cpu) in spent.items():
            runs = ORDER.count(mode) * n
            rates.setdefault(mode, []).append(runs / wall)
            rates.setdefault(f"cpu.{mode}", []).append(runs / cpu)
    return {
        f"bus_auth.nats.{workload}": _figure(rates["on"], rates["off"], f"{unit}/s"),
        f"bus_auth.nats.{workload}.cpu": _figure(
            rates["cpu.on"], rates["cpu.off"], f"{unit}/cpu-s"
        ),
    }


async def run() -> Result:
    tokens = TokenService(TokenConfig(secret=SECRET))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        config = BusAuthConfig.generate()
        with (
            EmbeddedNats(tmp / "open", port=None) as open_server,
            EmbeddedNats(tmp / "auth", port=None, auth=config) as auth_server,
        ):
            callout = NatsCalloutService(auth_server.url, config, tokens)
            await callout.start()
            tenant = "bench-" + uuid.uuid4().hex[:6]
            sides = {
                "off": _Side(open_server, None, tenant + "-off", tmp),
                "on": _Side(
                    auth_server,
                    tokens.create("bench", tenant + "-on", ["agent"]),
                    tenant + "-on",
                    tmp,
                ),
            }
            try:
                for side in sides.values():
                    await side.open()
                result = await _rounds(sides, "core", CORE_CHUNK, "msgs")
                result |= await _rounds(sides, "task_path", TASK_BATCH, "tasks")
            finally:
                for side in sides.values():
                    if hasattr(side, "mesh"):
                        await side.close()
                await callout.stop()
    return result
