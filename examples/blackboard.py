"""A tiny crossword on a blackboard: vocabulary sources fill a slot once its crossing letters
are known; compare-and-set lets one answer per slot win; the controller stops everyone.

    python examples/blackboard.py [URL] [all|workers|client] [suffix]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from agentmesh import Mesh
from agentmesh.errors import ConcurrencyError
from agentmesh.patterns import blackboard as bb
from agentmesh.patterns.blackboard import Blackboard, BoardView

# slot -> (candidate words, [(my position, other slot, its position)])
SLOTS = {
    "1A": (["CAT", "DOG"], []),
    "1D": (["HEN", "COW", "PIG"], [(0, "1A", 0)]),
    "2D": (["OWL", "TOE", "ANT"], [(0, "1A", 2)]),
}


def fits(word: str, slot: str, grid: dict[str, str]) -> bool:
    return all(o in grid and word[i] == grid[o][j] for i, o, j in SLOTS[slot][1])


def source_for(slot: str) -> bb.KnowledgeSource:
    def ready(view: BoardView) -> bool:
        return slot not in view["grid"] and any(fits(w, slot, view["grid"]) for w in SLOTS[slot][0])

    async def fill(board: Blackboard, view: BoardView) -> None:
        word = next(w for w in SLOTS[slot][0] if fits(w, slot, view["grid"]))
        with contextlib.suppress(ConcurrencyError):  # another process filled it first
            await board.write("grid", slot, word, revision=0)

    return bb.KnowledgeSource(f"vocab-{slot}", ("grid",), ready, fill)


async def describe(task: object) -> dict[str, list[str]]:  # what the sources agent serves
    return {"slots": list(SLOTS)}


async def main(url: str, part: str = "all", suffix: str = "1") -> dict[str, str] | None:
    mesh = Mesh(url, tenant=os.environ.get("AGENTMESH_TENANT", "examples"))
    board_name = os.environ.get("BOARD", "crossword")
    if part in ("all", "workers"):  # an agent too, so the sources show in `status`
        mesh.agent(f"sources-{suffix}", capabilities=["crossword"])(describe)
    async with mesh:
        runners = []
        if part == "all":  # a fresh grid on every run
            await Blackboard(mesh, board_name).clear(["grid"])
        if part in ("all", "workers"):
            board = Blackboard(mesh, board_name, writer=f"sources-{suffix}")
            runners = [bb.KnowledgeSourceRunner(board, source_for(s)) for s in SLOTS]
            for r in runners:
                await r.start()
        if part == "workers":
            for r in runners:
                await r.wait()  # until the controller marks the board done
            return None
        controller = bb.BlackboardController(
            Blackboard(mesh, board_name, writer="controller"), ["grid"],
            goal=lambda view: len(view["grid"]) == len(SLOTS),
        )  # fmt: skip
        grid = (await controller.run(timeout=60))["grid"]
        await asyncio.gather(*(r.stop() for r in runners))
        print("solved:", ", ".join(f"{k}={v}" for k, v in sorted(grid.items())))
        return dict(grid)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else None
    url = target or os.environ.get("AGENTMESH_TRANSPORT") or os.environ.get("NATS_URL")
    asyncio.run(main(url or "memory://examples", *sys.argv[2:4]))
