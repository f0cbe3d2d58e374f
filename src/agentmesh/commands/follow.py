"""The agent side of task transitions, applied one at a time per agent.

Every task an agent runs adds events to that agent's stream (``AgentTaskAssigned``,
``AgentTaskCompleted`` ...). Many tasks of one agent finish at once, so the writes to its
stream are serialized per agent inside a process, and the agent's latest state and
version are kept in a bounded cache: a follow-up appends with the cached version instead
of replaying a stream that grows with every task. Optimistic concurrency still guards
the store: a write from elsewhere (another replica, a REST command) makes the append
fail, the cache entry is dropped and the stream is read again.
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


class AgentFollower:
    """Applies ``decide`` to a registered agent and appends its events (see module doc)."""

    def __init__(self, load: Load, append: Append, *, size: int = 10_000, tries: int = 5):
        self._load = load
        self._append = append
        self._size = size
        self._tries = tries
        self._cache: OrderedDict[Key, tuple[AgentAggregate, int]] = OrderedDict()
        self._locks: dict[Key, asyncio.Lock] = {}

    def forget(self, tenant_id: str, agent_id: str) -> None:
        """Drop the cached state (after a write that did not go through the follower)."""
        self._cache.pop((tenant_id, agent_id), None)

    async def follow(self, tenant_id: str, agent_id: str, decide: Decide) -> bool:
        """Apply ``decide``; False when the agent is not registered (nothing to follow)."""
        key = (tenant_id, agent_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            for attempt in range(self._tries):
                found = self._cache.get(key)
                if found is None:
                    found = await self._load(tenant_id, agent_id)
                    if found is None:
                        return False
                agent, version = found
                new, events = decide(agent)
                if not events:
                    return True
                try:
                    version = await self._append(tenant_id, agent_id, version, events)
                except ConcurrencyError:
                    self._cache.pop(key, None)
                    if attempt == self._tries - 1:
                        raise
                    continue
                self._cache[key] = (new, version)
                self._cache.move_to_end(key)
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
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
