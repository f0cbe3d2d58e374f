"""The agent side of task transitions, applied one at a time per agent.

Every task an agent runs adds events to that agent's stream (``AgentTaskAssigned``,
``AgentTaskCompleted`` ...). Many tasks of one agent finish at once, so the writes to its
stream are serialized per agent inside a process, and the agent's latest state and
version are kept in a bounded cache: a follow-up appends with the cached version instead
of replaying a stream that grows with every task. Optimistic concurrency still guards
the store: a write from elsewhere (another replica, a REST command) makes the append
fail, and the cached state catches up with the events written since its version
(``since``) - never a replay of the whole stream, which with every replica recording
every outcome happened on almost every task: a full replay (decrypt, decode, fold) of a
stream of thousands of events, on the event loop, per task.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence

from agentmesh.domain import AgentAggregate, AgentCapability, DomainEvent
from agentmesh.errors import ConcurrencyError

Key = tuple[str, str]
Decide = Callable[[AgentAggregate], tuple[AgentAggregate, Sequence[DomainEvent]]]
Load = Callable[[str, str], Awaitable[tuple[AgentAggregate, int] | None]]
Transition = tuple[AgentAggregate, Sequence[DomainEvent]]
Append = Callable[[str, str, int, Sequence[DomainEvent]], Awaitable[int]]
Since = Callable[[str, str, AgentAggregate, int], Awaitable[tuple[AgentAggregate, int]]]
"""``(tenant, agent, state, version)`` -> the state and version after the events since."""


class AgentFollower:
    """Applies ``decide`` to a registered agent and appends its events (see module doc)."""

    def __init__(
        self,
        load: Load,
        append: Append,
        *,
        since: Since | None = None,
        size: int = 10_000,
        tries: int = 5,
    ):
        self._load = load
        self._append = append
        self._since = since
        self._stale: set[Key] = set()
        self._size = size
        self._tries = tries
        self._cache: OrderedDict[Key, tuple[AgentAggregate, int]] = OrderedDict()
        self._locks: dict[Key, asyncio.Lock] = {}

    def forget(self, tenant_id: str, agent_id: str) -> None:
        """Mark the cached state stale (after a write that did not go through the
        follower): the next follow catches it up first."""
        if (tenant_id, agent_id) in self._cache:
            self._stale.add((tenant_id, agent_id))

    async def _current(self, key: Key, fresh: bool) -> tuple[AgentAggregate, int] | None:
        """The cached state, caught up when stale (or ``fresh``); loaded when not cached."""
        found = self._cache.get(key)
        if found is not None and (fresh or key in self._stale):
            found = None if self._since is None else await self._since(*key, *found)
        self._stale.discard(key)
        if found is None:
            found = await self._load(*key)
        if found is not None:
            self._remember(key, found)
        return found

    def _remember(self, key: Key, state: tuple[AgentAggregate, int]) -> None:
        self._cache[key] = state
        self._cache.move_to_end(key)
        while len(self._cache) > self._size:
            self._stale.discard(self._cache.popitem(last=False)[0])

    async def latest(self, tenant_id: str, agent_id: str) -> AgentAggregate | None:
        """The agent as stored now (its cached state caught up); None when unknown."""
        key = (tenant_id, agent_id)
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = await self._current(key, True)
        return None if found is None else found[0]

    async def follow(
        self,
        tenant_id: str,
        agent_id: str,
        decide: Decide,
        *,
        fresh: bool = False,
        append: Append | None = None,
    ) -> bool:
        """Apply ``decide`` (to the latest stored state when ``fresh``) and append its
        events (through ``append`` when given); False when the agent is not registered."""
        key = (tenant_id, agent_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            for attempt in range(self._tries):
                found = await self._current(key, fresh)
                if found is None:
                    return False
                agent, version = found
                new, events = decide(agent)
                if not events:
                    return True
                try:
                    version = await (append or self._append)(tenant_id, agent_id, version, events)
                except ConcurrencyError:
                    if key in self._cache:
                        self._stale.add(key)  # written elsewhere: catch up, then decide again
                    if attempt == self._tries - 1:
                        raise
                    continue
                self._remember(key, (new, version))
                return True
        return False  # pragma: no cover - the loop returns or raises


def capability_changes(agent: AgentAggregate, announced: Mapping[str, int]) -> Transition:
    """The capabilities ``announced`` by a live agent that its record lacks (added) or
    has at a lower level (upgraded)."""
    events: list[DomainEvent] = []
    current = agent
    for name, level in announced.items():
        have = current.get_capability(name)
        if have is None:
            current, added = current.add_capability(AgentCapability(name, int(level)))
            events += added
        elif int(level) > have.proficiency_level:
            current, upgraded = current.upgrade_capability(name, int(level))
            events += upgraded
    return current, events
