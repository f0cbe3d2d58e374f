"""Document review hierarchy: a chief editor splits a document into sections for editors,
editors split sections into paragraphs for reviewers; verdicts flow back up.

    python examples/hierarchical.py [URL] [all|workers|client] [suffix]
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from agentmesh import Mesh
from agentmesh.patterns.hierarchical import NodeContext, node

DOCUMENT = [
    "Agents cooperate through events. Every task is durable.",
    "A supervisor watches its team. Silent members lose their work to others.",
    "This paragraph has a teh typo. The rest is fine.",
]


async def review(ctx: NodeContext) -> dict[str, Any]:
    sentence = ctx.payload["sentence"]
    await ctx.report("reviewed", {"sentence": sentence[:20]})
    return {"ok": " teh " not in f" {sentence} ", "reviewer": ctx.node.agent_id}


async def edit(ctx: NodeContext) -> dict[str, Any]:
    sentences = [s for s in ctx.payload["section"].split(". ") if s]
    verdicts = await ctx.delegate_all([{"sentence": s} for s in sentences])
    return {"approved": all(v["ok"] for v in verdicts), "sentences": len(verdicts)}


async def chief(ctx: NodeContext) -> dict[str, Any]:
    sections = await ctx.delegate_all([{"section": s} for s in ctx.payload["document"]])
    return {"publish": all(s["approved"] for s in sections), "sections": sections}


async def main(url: str, part: str = "all", suffix: str = "1") -> dict[str, Any] | None:
    mesh = Mesh(url, tenant=os.environ.get("AGENTMESH_TENANT", "examples"))
    if part in ("all", "workers"):
        node(mesh, f"chief-{suffix}", role="publish", level=0, subordinates="edit")(chief)
        for i in range(2):
            node(mesh, f"editor-{suffix}-{i}", role="edit", level=1, subordinates="review")(edit)
        for i in range(3):
            node(mesh, f"reviewer-{suffix}-{i}", role="review", level=2)(review)
    async with mesh:
        if part == "workers":
            await asyncio.Event().wait()
        await asyncio.sleep(2 * mesh.settings.agentmesh_heartbeat_interval)  # see the tree
        task_id = await mesh.submit("publish", {"document": DOCUMENT})
        out = await mesh.wait_result(task_id, timeout=60)
        print(
            f"publish={out['publish']}: " + ", ".join(str(s["approved"]) for s in out["sections"])
        )
        return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else None
    url = target or os.environ.get("AGENTMESH_TRANSPORT") or os.environ.get("NATS_URL")
    asyncio.run(main(url or "memory://examples", *sys.argv[2:4]))
