"""Compute job auction (contract net): render farms bid on jobs with prices that follow
their load and reputation; the best value wins, a silent winner is replaced by the next.

    python examples/market.py [URL] [all|workers|client] [suffix]
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from agentmesh import Mesh, TaskContext
from agentmesh.patterns.market import Auctioneer, MarketParticipant

FARMS = {"budget": 1.0, "standard": 2.0, "premium": 3.5}  # base price per job


async def render(task: TaskContext) -> dict[str, Any]:
    frames = int(task.payload["frames"])
    await asyncio.sleep(0.01 * frames)
    return {"frames": frames, "farm": task.agent.agent_id}


async def main(url: str, part: str = "all", suffix: str = "1") -> list[dict[str, Any]] | None:
    mesh = Mesh(url, tenant=os.environ.get("AGENTMESH_TENANT", "examples"))
    bidders = []
    if part in ("all", "workers"):
        for name, price in FARMS.items():
            runtime = mesh.agent(f"{name}-{suffix}", capabilities={"render": 4})(render)
            bidders.append(MarketParticipant(runtime, base_price=price, base_eta=0.2))
    async with mesh:
        for b in bidders:
            await b.start()
        if part == "workers":
            await asyncio.Event().wait()
        auctioneer = Auctioneer(mesh, bid_window=0.5, award_rule="best_value")
        sold = []
        for frames in (10, 20, 30):
            out = await auctioneer.auction("render", {"frames": frames, "priority": 4})
            print(f"{frames} frames -> {out.winner} at {out.price:.2f} ({len(out.bids)} bids)")
            sold.append({"winner": out.winner, "price": out.price, **out.result})
        return sold


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else None
    url = target or os.environ.get("AGENTMESH_TRANSPORT") or os.environ.get("NATS_URL")
    asyncio.run(main(url or "memory://examples", *sys.argv[2:4]))
