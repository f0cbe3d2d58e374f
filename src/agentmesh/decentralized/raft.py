"""Raft consensus through ``pysyncobj``: the group's replicated :class:`ClusterState`.

pysyncobj runs the protocol (elections, log replication over TCP, journal, snapshots,
dynamic membership) in its own thread; this module bridges it to asyncio. A proposal is a
command of :mod:`agentmesh.decentralized.state`; :meth:`RaftNode.propose` returns what the
state machine answered once the entry is committed and applied, or raises
:class:`~agentmesh.errors.ProposalRejected` with the state machine's reason. Proposals
made while the event loop is busy share one log entry (group commit): each is still
applied on its own, in order, with its own answer.

Files live under ``<data_dir>/raft/<group>/<host>_<port>/``: ``journal`` (every entry as
it arrives, with the term and vote) and ``snapshot`` (the state after log compaction).
A restarted node loads both and catches up from the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.syncobj import SyncObjException

from agentmesh.decentralized.config import Timings
from agentmesh.decentralized.state import ClusterState, validate
from agentmesh.errors import (
    BrokerUnavailable,
    ConsensusUnavailable,
    ProposalRejected,
    RequestTimeout,
)

AppliedHook = Callable[[dict[str, Any], dict[str, Any]], None]
RAFT_STATES = {0: "follower", 1: "candidate", 2: "leader"}
BATCH = 256
"""At most this many proposals share one log entry."""
TICK = 0.05
"""Mean seconds between two ticks of an idle pysyncobj thread (its autoTickPeriod)."""
IDLE_LINK_TIMEOUT = 24 * 3600.0
"""Seconds a Raft TCP link may read nothing before pysyncobj drops it (see sync_conf)."""
_FAILURES = {
    FAIL_REASON.QUEUE_FULL: "the proposal queue is full",
    FAIL_REASON.MISSING_LEADER: "no leader (election in progress or no majority)",
    FAIL_REASON.DISCARDED: "the entry was discarded by a new leader",
    FAIL_REASON.NOT_LEADER: "the leader changed before the entry committed",
    FAIL_REASON.LEADER_CHANGED: "the leader changed before the entry committed",
    FAIL_REASON.REQUEST_DENIED: "the request was denied",
    FAIL_REASON.UNKNOWN_OUTCOME: "the outcome is unknown (the leader restarted)",
}


class _Replica(SyncObjConsumer):  # type: ignore[misc]
    """The replicated object: one method that applies a batch of commands in order."""

    def __init__(self, hook: AppliedHook) -> None:
        # attributes set before SyncObjConsumer.__init__ are not part of the snapshot
        self._hook = hook
        self.lock = threading.RLock()
        super().__init__()
        self.state = ClusterState()

    @replicated  # type: ignore[misc,untyped-decorator]
    def apply_batch(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            results = [self.state.apply(c) for c in commands]
        for command, result in zip(commands, results, strict=True):
            self._hook(command, result)
        return results


def sync_conf(
    timings: Timings,
    directory: Path,
    *,
    secret: str | None = None,
    snapshot_every: int = 5000,
    on_state_changed: Callable[[int, int], None] | None = None,
) -> SyncObjConf:
    """The pysyncobj configuration of a group member (also the bench's baseline)."""
    low, high = timings.election_window
    return SyncObjConf(
        autoTick=True,
        raftMinTimeout=low,
        raftMaxTimeout=high,
        appendEntriesPeriod=timings.heartbeat,
        appendEntriesUseBatch=False,  # send each entry at once: commit latency of a round trip
        # pysyncobj drops a link that has *read* nothing for connectionTimeout, and checks
        # only when it next sends on it. Followers send each other nothing between
        # elections, so after a quiet spell longer than any finite read timeout the
        # first request_vote on every follower link closed the link instead of going out:
        # every survivor became a candidate alone and the election took a second round
        # (10 of 10 SIGKILL trials after 20 s of quiet at 1.5 s: 3.0-3.9 s). A dead peer's
        # link is closed by its RST at once, a vanished host's by TCP keepalive
        # (idle 16 s, then 3 probes 5 s apart), so the read timeout is only a backstop.
        connectionTimeout=max(IDLE_LINK_TIMEOUT, high),
        tcp_keepalive=(16, 3, 5),
        connectionRetryTime=min(timings.heartbeat, 1.0),
        leaderFallbackTimeout=high,
        dynamicMembershipChange=True,
        journalFile=str(directory / "journal"),
        fullDumpFile=str(directory / "snapshot"),
        logCompactionMinEntries=max(2, snapshot_every),
        maxBindRetries=1,
        useFork=False,  # never fork an asyncio process with threads
        password=secret,
        onStateChanged=on_state_changed,
    )


def _settle(fut: asyncio.Future[tuple[Any, int]], res: Any, err: int) -> None:
    if not fut.done():
        fut.set_result((res, err))


def _settle_all(futs: list[asyncio.Future[tuple[Any, int]]], res: Any, err: int) -> None:
    ok = err == FAIL_REASON.SUCCESS and isinstance(res, list) and len(res) == len(futs)
    for i, fut in enumerate(futs):
        _settle(fut, res[i] if ok else None, err if ok or err != 0 else FAIL_REASON.DISCARDED)


class RaftNode:
    """One member of a Raft group: ``await node.propose({...})``, ``node.status()``."""

    def __init__(
        self,
        address: str,
        peers: list[str],
        *,
        data_dir: Path,
        group: str,
        timings: Timings,
        on_applied: AppliedHook | None = None,
        secret: str | None = None,
        snapshot_every: int = 5000,
    ) -> None:
        self.address = address
        self.group = group
        self.timings = timings
        self.directory = Path(data_dir) / "raft" / group / address.replace(":", "_")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._on_applied = on_applied
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replica = _Replica(self._applied)
        self._conf = sync_conf(
            timings,
            self.directory,
            secret=secret,
            snapshot_every=snapshot_every,
            on_state_changed=self._state_changed,
        )
        self._peers = peers
        self._obj: SyncObj | None = None
        self._queue: list[tuple[dict[str, Any], asyncio.Future[tuple[Any, int]]]] = []
        self._flush_scheduled = False
        self._state_since: float | None = None  # wall clock of the last raft state change

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the TCP port and start the protocol thread (replays the journal first)."""
        self._loop = asyncio.get_running_loop()
        host, _, port = self.address.rpartition(":")
        try:  # a clear error instead of pysyncobj's endless bind retries
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, int(port)))
        except OSError as exc:
            raise BrokerUnavailable(f"raft cannot bind TCP {self.address}: {exc}") from None
        obj = await asyncio.to_thread(
            SyncObj, self.address, self._peers, self._conf, [self._replica]
        )
        obj.addOnTickCallback(self._jitter_tick)
        try:
            await asyncio.to_thread(obj.waitBinded)
        except SyncObjException:
            await asyncio.to_thread(obj.destroy_synchronous)
            raise BrokerUnavailable(f"raft cannot bind TCP {self.address}") from None
        self._obj = obj

    async def stop(self) -> None:
        obj, self._obj = self._obj, None
        if obj is not None:
            await asyncio.to_thread(obj.destroy_synchronous)

    # -- tick-thread callbacks ----------------------------------------------------------
    def _jitter_tick(self) -> None:
        """Draw the wait before this node's next tick from 0.5-1.5 x TICK.

        pysyncobj checks the election deadline only when it ticks, and every follower
        ticks right after each heartbeat, then every autoTickPeriod: with a fixed period
        the followers tick in step, so two whose random deadlines fall within the same
        period stand at the same instant and can split the vote (2 of 30 SIGKILL trials
        took a second round, each with two candidacies in the same millisecond). With a
        random wait per tick each node stands at its own instant, and the first
        candidate's vote request reaches the others before their next check.
        """
        self._conf.autoTickPeriod = TICK * random.uniform(0.5, 1.5)

    def _applied(self, command: dict[str, Any], result: dict[str, Any]) -> None:
        loop, hook = self._loop, self._on_applied
        if loop is None or hook is None:
            return
        # RuntimeError: the loop closed while the thread was still applying
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(hook, command, result)

    def _state_changed(self, old: int, new: int) -> None:
        self._state_since = time.time()
        logger.info(
            "raft {} {}: {} -> {}", self.group, self.address, RAFT_STATES[old], RAFT_STATES[new]
        )

    # -- proposals ----------------------------------------------------------------------
    def _require(self) -> SyncObj:
        if self._obj is None:
            raise ConsensusUnavailable(f"raft node {self.address} is not running")
        return self._obj

    async def propose(self, command: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
        """Commit ``command`` and return the state machine's answer.

        The command gets a proposal id (``pid``) and is retried while the group elects
        a leader; the state machine applies one ``pid`` once. Raises
        :class:`ProposalRejected` (the reason) when the state machine refused it,
        :class:`ConsensusUnavailable` when the group could not commit it in time, and
        :class:`RequestTimeout` when nothing was decided within ``timeout`` (no majority:
        the entry may still commit later).
        """
        command = validate(dict(command))
        command.setdefault("pid", uuid.uuid4().hex)  # a retry is applied at most once
        self._require()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = min(0.05, self.timings.heartbeat)
        while True:
            try:
                res = await self._propose_once(command, max(0.01, deadline - loop.time()))
            except ConsensusUnavailable:
                if loop.time() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)  # an election is under way: try the new leader
                delay = min(delay * 2, self.timings.heartbeat)
                continue
            if not res.get("ok"):
                raise ProposalRejected(str(res.get("reason")))
            return dict(res)

    async def _propose_once(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Queue one command for the next entry (group commit) and wait for its answer."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, int]] = loop.create_future()
        self._require()
        self._queue.append((command, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        try:
            res, err = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RequestTimeout(
                f"raft group {self.group}: no commit within the timeout (no majority?)"
            ) from None
        if err != FAIL_REASON.SUCCESS:
            raise ConsensusUnavailable(
                f"raft group {self.group}: {_FAILURES.get(err, f'failure {err}')}"
            )
        return dict(res)

    def _flush(self) -> None:
        """Proposals made during one turn of the event loop share one log entry."""
        self._flush_scheduled = False
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            futs = [f for _, f in batch if not f.done()]
            commands = [c for c, f in batch if not f.done()]
            if not commands:
                continue
            if self._obj is None:
                _settle_all(futs, None, FAIL_REASON.MISSING_LEADER)
                continue

            def done(res: Any, err: int, futs: list[asyncio.Future[Any]] = futs) -> None:
                with contextlib.suppress(RuntimeError):  # tick thread; the loop may be closed
                    loop.call_soon_threadsafe(_settle_all, futs, res, err)

            self._replica.apply_batch(commands, callback=done)

    # -- membership ---------------------------------------------------------------------
    async def change_membership(self, action: str, address: str, *, timeout: float = 10.0) -> None:
        """``add`` or ``remove`` a member through pysyncobj's dynamic membership (one change
        at a time; the leader refuses a change while the previous one is uncommitted)."""
        obj = self._require()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Any, int]] = loop.create_future()

        def done(res: Any, err: int) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, res, err)

        if action == "add":
            obj.addNodeToCluster(address, callback=done)
        else:
            obj.removeNodeFromCluster(address, callback=done)
        try:
            _, err = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RequestTimeout(f"membership change {action} {address}: no commit") from None
        if err != FAIL_REASON.SUCCESS:
            raise ConsensusUnavailable(
                f"membership change {action} {address}: {_FAILURES.get(err, f'failure {err}')}"
            )

    # -- reading ------------------------------------------------------------------------
    def read(self, fn: Callable[[ClusterState], Any]) -> Any:
        """Run ``fn`` on the local replica under its lock (a consistent, maybe stale view)."""
        with self._replica.lock:
            return fn(self._replica.state)

    @property
    def ready(self) -> bool:
        """True once this node has applied what the leader had committed when it joined
        (after a restart: the journal is replayed and the node caught up)."""
        return self._obj is not None and bool(self._obj.isReady())

    @property
    def is_leader(self) -> bool:
        return self._obj is not None and bool(self._obj._isLeader())

    def leader(self) -> str | None:
        node = self._obj._getLeader() if self._obj is not None else None
        return str(node.address) if node is not None else None

    def members(self) -> list[str]:
        if self._obj is None:
            return sorted([self.address, *self._peers])
        return sorted([self.address, *(n.address for n in self._obj.otherNodes)])

    def status(self) -> dict[str, Any]:
        obj = self._obj
        if obj is None:
            return {"address": self.address, "state": "stopped", "members": self.members()}
        others = obj.otherNodes
        return {
            "address": self.address,
            "state": "leader" if obj._isLeader() else "follower",
            "state_since": self._state_since,
            "leader": self.leader(),
            "term": obj.raftCurrentTerm,
            "commit_index": obj.raftCommitIndex,
            "last_applied": obj.raftLastApplied,
            "has_quorum": obj.hasQuorum,
            "members": self.members(),
            "connected": sorted(n.address for n in others if obj.isNodeConnected(n)),
        }
