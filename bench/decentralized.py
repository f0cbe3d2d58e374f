"""Committed decisions per second of a decentralized group, next to pysyncobj's bare counter.

Each group runs one process per node on 127.0.0.1 (followers are subprocesses of this
module, the proposing node runs here). Ours: ``decide`` proposals through
:class:`~agentmesh.decentralized.raft.RaftNode` (asyncio bridge, proposal ids, the
replicated state machine with its digest chain). Baseline: the same pysyncobj
configuration (journal and snapshot files included) replicating a bare ``incCounter``
with callbacks, the library's own example. Both keep ``CONCURRENCY`` proposals in flight
from the node that wins the first election (it has the shortest election timeout).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj, replicated

from agentmesh.decentralized.config import Timings
from agentmesh.decentralized.raft import RaftNode, sync_conf

COUNT = 3000
CONCURRENCY = 64
DRIVER = Timings(election_timeout=0.6)
FOLLOWER = Timings(election_timeout=3.0)


class Counter(SyncObj):  # type: ignore[misc]
    def __init__(self, me: str, peers: list[str], directory: Path, timings: Timings) -> None:
        super().__init__(me, peers, sync_conf(timings, directory))
        self.value = 0

    @replicated  # type: ignore[misc]
    def incCounter(self) -> int:
        self.value += 1
        return self.value


def _free_ports(n: int) -> list[int]:
    """Ports free for TCP (Raft); the bench runs no gossip."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in ports:
            ports.append(port)
    return ports


def _follow(mode: str, me: str, peers: list[str], directory: str) -> None:
    """A follower process: serve until killed."""
    if mode == "bare":
        Counter(me, peers, Path(directory), FOLLOWER)
        threading.Event().wait()

    async def serve() -> None:
        node = RaftNode(me, peers, data_dir=Path(directory), group="bench", timings=FOLLOWER)
        await node.start()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _start_followers(mode: str, addrs: list[str], root: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i, me in enumerate(addrs[1:], start=1):
        peers = ",".join(a for a in addrs if a != me)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.decentralized", mode, me, peers, str(root / str(i))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return procs


async def _ours(addrs: list[str], root: Path) -> float:
    node = RaftNode(addrs[0], addrs[1:], data_dir=root / "0", group="bench", timings=DRIVER)
    await node.start()
    try:
        for _ in range(1500):  # at most 30 s for the first election
            if node.is_leader:
                break
            await asyncio.sleep(0.02)
        await node.propose({"op": "decide", "key": "warm", "value": 0}, timeout=30)
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with sem:
                await node.propose({"op": "decide", "key": f"k{i}", "value": i}, timeout=60)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(COUNT)))
        return COUNT / (time.perf_counter() - started)
    finally:
        await node.stop()


def _bare(addrs: list[str], root: Path) -> float:
    counter = Counter(addrs[0], addrs[1:], root / "0", DRIVER)
    try:
        for _ in range(1500):
            if counter._isLeader():
                break
            time.sleep(0.02)
        counter.incCounter(sync=True, timeout=30)
        slots = threading.Semaphore(CONCURRENCY)
        done = threading.Event()
        committed = [0]
        lock = threading.Lock()

        def landed(result: Any, err: int) -> None:
            slots.release()
            with lock:
                committed[0] += 1
                if committed[0] == COUNT:
                    done.set()

        started = time.perf_counter()
        for _ in range(COUNT):
            slots.acquire()
            counter.incCounter(callback=landed)
        done.wait(120)
        return COUNT / (time.perf_counter() - started)
    finally:
        counter.destroy_synchronous()


async def _measure(mode: str, nodes: int) -> float:
    root = Path(tempfile.mkdtemp(prefix=f"am-raft-{mode}-"))
    for i in range(nodes):
        (root / str(i)).mkdir()
    addrs = [f"127.0.0.1:{p}" for p in _free_ports(nodes)]
    procs = _start_followers(mode, addrs, root)
    try:
        if mode == "bare":
            return await asyncio.to_thread(_bare, addrs, root)
        return await _ours(addrs, root)
    finally:
        for p in procs:
            p.kill()
            p.wait(10)


async def run() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for nodes in (3, 5):
        bare = await _measure("bare", nodes)
        ours = await _measure("ours", nodes)
        out[f"raft_committed_decisions_{nodes}_nodes"] = {
            "value": round(ours, 1),
            "unit": "decisions/s",
            "baseline": round(bare, 1),
            "ratio": round(ours / bare, 3),
        }
    return out


if __name__ == "__main__":
    _follow(sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4])
