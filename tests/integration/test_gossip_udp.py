"""SWIM gossip over real UDP sockets on 127.0.0.1 (in one process, fast timings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentmesh.decentralized.config import Timings
from agentmesh.decentralized.gossip import Gossip
from tests.helpers import eventually
from tests.integration.decentralized_cluster import free_port

pytestmark = pytest.mark.integration
FAST = Timings(gossip_interval=0.05, suspicion_timeout=0.3)


@pytest.fixture
async def group() -> AsyncIterator[Any]:
    started: list[Gossip] = []

    async def make(n: int, secret: str | None = "s3cret", seeds: int | None = None) -> list[Gossip]:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(n)]
        known = addrs[: seeds or n]
        nodes = [
            Gossip(
                a,
                [s for s in known if s != a],
                group="g",
                agent_id=f"n{i}",
                timings=FAST,
                secret=secret,
            )
            for i, a in enumerate(addrs)
        ]
        for node in nodes:
            await node.start()
        started.extend(nodes)
        return nodes

    yield make
    for node in started:
        await node.stop(leave=False)


def states(node: Gossip) -> dict[str, str]:
    return {m["address"]: m["state"] for m in node.members()}


async def test_a_stopped_member_is_suspected_then_dead_everywhere_and_a_joiner_spreads(
    group: Any,
) -> None:
    a, b, c, d = await group(4, seeds=3)  # d knows a, b, c; nobody knows d
    await eventually(lambda: all(len(states(n)) == 4 for n in (a, b, c, d)), 5)
    await eventually(lambda: all(set(states(n).values()) == {"alive"} for n in (a, b, c, d)), 5)
    assert {m["agent_id"] for m in a.members()} == {"n0", "n1", "n2", "n3"}

    await c.stop(leave=False)  # silent: a crash, not a leave
    await eventually(lambda: all(states(n)[c.address] == "dead" for n in (a, b, d)), 5)
    assert all(states(n)[n.address] == "alive" for n in (a, b, d))


async def test_a_graceful_leave_is_spread_as_left(group: Any) -> None:
    a, b, c = await group(3)
    await eventually(lambda: all(set(states(n).values()) == {"alive"} for n in (a, b, c)), 5)
    await b.stop(leave=True)
    await eventually(lambda: states(a)[b.address] == "left" and states(c)[b.address] == "left", 5)


async def test_datagrams_without_the_cluster_secret_are_ignored(group: Any) -> None:
    (a,) = await group(1, secret="right")
    (intruder,) = await group(1, secret="wrong")
    intruder.table.alive_heard(a.address, 0, None, 0.0)  # it pings a every period
    await eventually(lambda: intruder.sent >= 5, 5)
    assert a.received_count == 0
    assert intruder.address not in states(a)
