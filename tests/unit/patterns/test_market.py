"""Contract net on memory://: bids, award rules, dynamic pricing, silent and failing winners."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmesh import Mesh, TaskContext
from agentmesh.errors import AuctionFailed, ValidationError
from agentmesh.patterns.market import Auctioneer, Bid, MarketParticipant, rank
from tests.helpers import eventually
from tests.unit.patterns.conftest import MakeMesh


async def render(task: TaskContext) -> dict[str, Any]:
    return {"frames": task.payload["frames"], "by": task.agent.agent_id}


async def bidder(
    mesh: Mesh,
    agent_id: str,
    handler: Any = render,
    price: float = 1.0,
    level: int = 3,
    slots: int = 4,
) -> MarketParticipant:
    runtime = mesh.agent(agent_id, capabilities={"render": level}, max_concurrent=slots)(handler)
    return MarketParticipant(runtime, base_price=price, base_eta=0.1)


def test_rank_by_rule() -> None:
    cheap = Bid("a", "cheap", price=1.0, eta_seconds=3.0, reputation=0.5)
    quick = Bid("a", "quick", price=2.0, eta_seconds=0.5, reputation=0.5)
    trusted = Bid("a", "trusted", price=1.2, eta_seconds=1.0, reputation=0.95)
    assert next(b.bidder for b in rank([quick, cheap, trusted], "lowest_price")) == "cheap"
    assert next(b.bidder for b in rank([cheap, trusted, quick], "fastest")) == "quick"
    assert next(b.bidder for b in rank([cheap, quick, trusted], "best_value")) == "trusted"
    assert rank([cheap, quick], lambda b: -b.price)[0].bidder == "quick"
    with pytest.raises(ValidationError):
        rank([], "cheapest")


async def test_best_bid_wins_and_settlement_moves_reputation(make_mesh: MakeMesh) -> None:
    farm = make_mesh()
    cheap = await bidder(farm, "cheap-1", price=1.0)
    dear = await bidder(farm, "dear-1", price=3.0)
    client = make_mesh()
    await farm.start()
    await client.start()
    for p in (cheap, dear):
        await p.start()
    before = cheap.quote("render")
    out = await Auctioneer(client, bid_window=0.2, award_rule="lowest_price").auction(
        "render", {"frames": 24}
    )
    assert out.winner == "cheap-1"
    assert out.result == {"frames": 24, "by": "cheap-1"}
    assert sorted(b.bidder for b in out.bids) == ["cheap-1", "dear-1"]
    assert out.price == before[0]
    await eventually(lambda: cheap.delivered == 1, what="the winner delivered")
    assert cheap.earned == out.price
    assert cheap.reputation > 0.5
    assert cheap.quote("render")[0] < before[0]  # a good record lowers its price


async def test_silent_winner_is_replaced_by_the_next_bid(make_mesh: MakeMesh) -> None:
    farm = make_mesh()
    silent = await bidder(farm, "silent-1", price=0.5)  # cheapest: it wins the award first
    backup = await bidder(farm, "backup-1", price=2.0)
    client = make_mesh()
    await farm.start()
    await client.start()
    await silent.start()
    await backup.start()
    # the silent bidder bids, then goes quiet: it no longer answers awards
    for sub in list(silent._subs[1:2]):
        await sub.unsubscribe()
    out = await Auctioneer(
        client, bid_window=0.2, award_rule="lowest_price", award_timeout=0.3
    ).auction("render", {"frames": 8})
    assert out.winner == "backup-1"
    assert out.failed_awards[0][0] == "silent-1"
    assert "silent" in out.failed_awards[0][1]
    await eventually(lambda: silent.defaulted == 1 and backup.delivered == 1)


async def test_failing_winner_then_no_one_left(make_mesh: MakeMesh) -> None:
    farm = make_mesh()

    async def broken(task: TaskContext) -> dict[str, Any]:
        raise RuntimeError("GPU melted")

    flaky = await bidder(farm, "flaky-1", handler=broken, price=0.1)
    client = make_mesh()
    await farm.start()
    await client.start()
    await flaky.start()
    with pytest.raises(AuctionFailed) as info:
        await Auctioneer(client, bid_window=0.2).auction("render", {"frames": 1})
    assert "GPU melted" in str(info.value)
    with pytest.raises(AuctionFailed, match="no bid"):
        await Auctioneer(client, bid_window=0.1).auction("transcode", {"x": 1})


async def test_busy_or_unqualified_agents_do_not_bid(make_mesh: MakeMesh) -> None:
    farm = make_mesh()
    gate, working = asyncio.Event(), asyncio.Event()

    async def slow(task: TaskContext) -> dict[str, Any]:
        working.set()
        await gate.wait()
        return {}

    novice = await bidder(farm, "novice-1", price=1.0, level=1)  # weak match: score < 0.6
    busy = await bidder(farm, "busy-1", handler=slow, price=1.0, level=5, slots=1)
    client = make_mesh()
    await farm.start()
    await client.start()
    await novice.start()
    await busy.start()
    auctioneer = Auctioneer(client, bid_window=0.2)
    first = asyncio.create_task(auctioneer.auction("render", {"frames": 1, "priority": 1}))
    await asyncio.wait_for(working.wait(), 10)  # busy-1 won and holds its only slot
    with pytest.raises(AuctionFailed, match="no bid"):
        await auctioneer.auction("render", {"frames": 2, "priority": 1})
    gate.set()
    assert (await first).winner == "busy-1"
