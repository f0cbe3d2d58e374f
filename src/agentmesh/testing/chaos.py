"""Faults on purpose, for tests of agents: kill and restart an agent, drop or delay
deliveries, take the broker down.

:class:`ChaosTransport` is the ``memory://`` broker with a switchboard (:class:`Chaos`)
that every transport on the same broker name shares, so several meshes ("processes") in
one test see the same faults::

    chaos = Chaos.for_mesh(mesh)                 # mesh built on ChaosTransport
    with chaos.drop("am.*.task.resize", count=1):  # the next offer is lost in transit ...
        await mesh.run("resize", {...})           # ... redelivered after the ack wait
    with chaos.delay("am.*.rpc.*", 0.5): ...
    async with chaos.outage():                    # publish/request raise BrokerUnavailable,
        ...                                       # deliveries wait until it ends
    await chaos.kill("worker-1")                  # like SIGKILL: no drain, no goodbye;
    await chaos.restart("worker-1")               # its unacked tasks come back after ack wait

A delivery dropped or taken by a killed agent is never acked: durable tasks come back
after the ack wait (at-least-once, as on a real broker); core messages are lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from agentmesh import subjects
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import BrokerUnavailable, NotFound, ValidationError
from agentmesh.transports.memory import MemoryTransport

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh
    from agentmesh.transports.base import RawDelivery
    from agentmesh.transports.message import Dispatcher


@dataclass
class _Rule:
    pattern: str
    drop: int | None = None  # deliveries left to drop (None: every one while active)
    delay: float = 0.0
    dropped: int = 0


@dataclass
class _Switchboard:
    rules: list[_Rule] = field(default_factory=list)
    up: asyncio.Event = field(default_factory=asyncio.Event)
    # killed agents' dispatchers; weak, as an id() could be reused by a new dispatcher
    dead: weakref.WeakSet[Dispatcher] = field(default_factory=weakref.WeakSet)

    def __post_init__(self) -> None:
        self.up.set()


class _Gated:
    """A delivery whose ack/nak/term are lost when its consumer was killed."""

    __slots__ = ("_board", "_key", "_raw")

    def __init__(self, raw: RawDelivery, board: _Switchboard, key: Dispatcher) -> None:
        self._raw, self._board, self._key = raw, board, key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    async def ack(self) -> None:
        if self._key not in self._board.dead:
            await self._raw.ack()

    async def nak(self, delay: float | None = None) -> None:
        if self._key not in self._board.dead:
            await self._raw.nak(delay)

    async def term(self) -> None:
        if self._key not in self._board.dead:
            await self._raw.term()

    async def in_progress(self) -> None:
        if self._key not in self._board.dead:
            await self._raw.in_progress()


class ChaosTransport(MemoryTransport):
    """``memory://`` with faults switched by :class:`Chaos` (see the module docstring)."""

    _boards: ClassVar[dict[str, _Switchboard]] = {}

    @property
    def board(self) -> _Switchboard:
        return self._boards.setdefault(self._name, _Switchboard())

    def _down(self) -> None:
        if not self.board.up.is_set():
            raise BrokerUnavailable(f"broker {self.url} is down (chaos outage)")

    async def ping(self) -> float:
        self._down()
        return await super().ping()

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        self._down()
        await super().publish(subject, envelope, durable=durable)

    async def request(self, subject: str, envelope: Envelope, *, timeout: float = 5.0) -> Envelope:
        self._down()
        return await super().request(subject, envelope, timeout=timeout)

    async def _open(self, dispatcher: Dispatcher, queue: str | None, durable: str | None) -> Any:
        submit = dispatcher.submit
        board, key = self.board, dispatcher
        pending: set[asyncio.Task[None]] = set()

        async def later(raw: RawDelivery, seconds: float) -> None:
            await asyncio.sleep(seconds)
            await gated(raw, delayed=True)

        async def gated(raw: RawDelivery, delayed: bool = False) -> None:
            await board.up.wait()  # an outage holds deliveries back
            if key in board.dead:
                return  # a killed agent takes nothing more
            subject = str(getattr(raw, "subject", ""))
            for rule in board.rules:
                if not subjects.matches(rule.pattern, subject):
                    continue
                if rule.drop is None or rule.drop > rule.dropped:
                    rule.dropped += 1
                    return  # lost in transit: never acked
                if rule.delay and not delayed:
                    task = asyncio.get_running_loop().create_task(later(raw, rule.delay))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    return
            await submit(_Gated(raw, board, key))  # type: ignore[arg-type]

        dispatcher.submit = gated  # type: ignore[method-assign]
        return await super()._open(dispatcher, queue, durable)


class Chaos:
    """The fault switchboard of one ``memory://`` broker (see the module docstring)."""

    def __init__(self, mesh: Mesh) -> None:
        if not isinstance(mesh.transport, ChaosTransport):
            raise ValidationError("chaos needs a mesh built on ChaosTransport (memory://)")
        self.mesh = mesh
        self.board = mesh.transport.board

    @classmethod
    def for_mesh(cls, mesh: Mesh) -> Chaos:
        return cls(mesh)

    @contextlib.contextmanager
    def drop(self, pattern: str, *, count: int | None = None) -> Iterator[_Rule]:
        """Lose deliveries on subjects matching ``pattern`` (``*``/``>`` wildcards): the
        next ``count`` of them, or every one while the block runs."""
        rule = _Rule(pattern, drop=count)
        with self._rule(rule):
            yield rule

    @contextlib.contextmanager
    def delay(self, pattern: str, seconds: float) -> Iterator[_Rule]:
        """Deliver messages on subjects matching ``pattern`` ``seconds`` late."""
        rule = _Rule(pattern, drop=0, delay=seconds)
        with self._rule(rule):
            yield rule

    @contextlib.contextmanager
    def _rule(self, rule: _Rule) -> Iterator[None]:
        self.board.rules.append(rule)
        try:
            yield
        finally:
            self.board.rules.remove(rule)

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """The broker is down inside the block: publishing raises
        :class:`~agentmesh.errors.BrokerUnavailable`, deliveries wait for the end."""
        self.board.up.clear()
        try:
            yield
        finally:
            self.board.up.set()

    async def kill(self, agent_id: str) -> None:
        """Kill an agent of the mesh like SIGKILL: its running handlers stop, nothing it
        held is acked or released, no last heartbeat (the registry finds it silent)."""
        runtime = self._runtime(agent_id)
        subs = [*runtime._work_subs, *runtime._control_subs]
        self.board.dead.update(s.dispatcher for s in subs if hasattr(s, "dispatcher"))
        runtime._beating = False
        if runtime._hb_task is not None:
            runtime._hb_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runtime._hb_task
            runtime._hb_task = None
        runtime.executor.requeue_running()
        runtime._work_subs, runtime._control_subs = [], []
        for sub in subs:
            await sub.unsubscribe()
        await runtime.executor.stop()
        runtime.in_flight = 0
        runtime.status = AgentStatus.TERMINATED

    async def restart(self, agent_id: str) -> None:
        """Start a killed (or stopped) agent again, as a new process would."""
        await self._runtime(agent_id).start()

    def _runtime(self, agent_id: str) -> Any:
        runtime = self.mesh.agents.get(agent_id)
        if runtime is None:
            raise NotFound(f"no agent {agent_id!r} in this mesh")
        return runtime
