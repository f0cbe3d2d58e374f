"""A group of ``agentmesh agent start-decentralized-agent`` processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentmesh import Mesh
from agentmesh.errors import AgentMeshError

ROOT = Path(__file__).resolve().parents[2]
ELECTION_TIMEOUT = 1.5
GOSSIP_INTERVAL = 0.25
SUSPICION_TIMEOUT = 1.5


def free_port() -> int:
    """A port free for TCP (Raft) and UDP (gossip) alike."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class Cluster:
    """N node processes; ``status(i)`` asks node i on the bus."""

    def __init__(self, mesh: Mesh, nats_url: str, data_dir: Path, size: int) -> None:
        self.mesh = mesh
        self.nats_url = nats_url
        self.data_dir = data_dir
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in range(size)]
        self.ids = [f"node-{i}" for i in range(size)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.stopped: set[int] = set()

    def start(
        self, i: int, *, cluster: list[str] | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        env = dict(
            os.environ,
            NATS_URL=self.nats_url,
            AGENTMESH_DATA_DIR=str(self.data_dir / self.ids[i]),
            AGENTMESH_HEARTBEAT_INTERVAL="0.5",
            LOG_LEVEL="INFO",
        )
        with (self.data_dir / f"{self.ids[i]}.log").open("ab") as log:
            self.procs[i] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentmesh.cli.main",
                    "agent",
                    "start-decentralized-agent",
                    self.ids[i],
                    "--capabilities",
                    "square",
                    "--tenant",
                    self.mesh.tenant,
                    "--cluster-nodes",
                    ",".join(cluster or self.addresses),
                    "--address",
                    self.addresses[i],
                    "--handler",
                    "tests.integration.decentralized_handlers:square",
                    "--election-timeout",
                    str(ELECTION_TIMEOUT),
                    "--gossip-interval",
                    str(GOSSIP_INTERVAL),
                    "--suspicion-timeout",
                    str(SUSPICION_TIMEOUT),
                    "--snapshot-every",
                    "200",
                    *extra,
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def start_all(self) -> None:
        for i in range(len(self.addresses)):
            self.start(i)

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(10)

    def freeze(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGSTOP)
        self.stopped.add(i)

    def thaw(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGCONT)
        self.stopped.discard(i)

    def close(self) -> None:
        for i, proc in self.procs.items():
            if proc.poll() is None:
                if i in self.stopped:
                    proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)

    def alive(self) -> list[int]:
        return [i for i, p in self.procs.items() if p.poll() is None and i not in self.stopped]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.data_dir.glob("*.log"))
        )

    # -- asking the nodes ---------------------------------------------------------------
    async def status(self, i: int, timeout: float = 1.0, **payload: Any) -> dict[str, Any] | None:
        try:
            return await self.mesh.send(
                self.ids[i], payload, type="decentralized_status_request", timeout=timeout
            )
        except (AgentMeshError, TimeoutError):
            return None

    async def statuses(self, nodes: list[int]) -> dict[int, dict[str, Any] | None]:
        return {i: await self.status(i) for i in nodes}

    async def propose(
        self, i: int, proposal: dict[str, Any], timeout: float = 5.0
    ) -> dict[str, Any]:
        return await self.mesh.send(
            self.ids[i],
            {"proposal": proposal, "timeout": timeout},
            type="consensus_proposal",
            timeout=timeout + 2,
        )

    async def leader(self, nodes: list[int], timeout: float) -> str:
        """The leader every node of ``nodes`` agrees on."""
        seen: dict[str, Any] = {}

        async def agreed() -> bool:
            views = await self.statuses(nodes)
            leaders = {v["raft"]["leader"] if v else None for v in views.values()}
            seen["leader"] = leaders.pop() if len(leaders) == 1 else None
            return seen["leader"] is not None

        await until(agreed, timeout)
        return str(seen["leader"])

    def index_of(self, address: str) -> int:
        return self.addresses.index(address)


async def until(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> None:
    """Wait for an async (or plain) condition; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
