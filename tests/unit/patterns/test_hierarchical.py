"""Hierarchy on memory://: commands down, events up, lateral talk, supervisor reassignment."""

from __future__ import annotations

import asyncio
from typing import Any

from agentmesh import Envelope
from agentmesh.patterns.hierarchical import HierarchyNode, NodeContext, node
from tests.helpers import eventually, registry_knows
from tests.unit.patterns.conftest import MakeMesh


async def review(ctx: NodeContext) -> dict[str, Any]:
    text = ctx.payload["paragraph"]
    await ctx.report("progress", {"paragraph": text})
    return {"paragraph": text, "ok": "typo" not in text, "by": ctx.node.agent_id}


async def edit(ctx: NodeContext) -> dict[str, Any]:
    paragraphs = ctx.payload["section"].split("|")
    reviews = await ctx.delegate_all([{"paragraph": p} for p in paragraphs])
    await ctx.tell_peers({"section_done": ctx.payload["section"]})
    return {"approved": all(r["ok"] for r in reviews), "reviews": reviews}


async def publish(ctx: NodeContext) -> dict[str, Any]:
    sections = await ctx.delegate_all([{"section": s} for s in ctx.payload["sections"]])
    return {"publish": all(s["approved"] for s in sections), "sections": sections}


async def test_three_level_review_tree(make_mesh: MakeMesh) -> None:
    reports: list[Envelope] = []
    peer_news: list[Envelope] = []

    async def got_report(env: Envelope) -> None:
        reports.append(env)

    async def got_peer(env: Envelope) -> None:
        peer_news.append(env)

    mesh = make_mesh()
    node(mesh, "chief-1", role="publish", level=0, subordinates="edit")(publish)
    for i in range(2):
        node(
            mesh,
            f"editor-{i}",
            role="edit",
            level=1,
            subordinates="review",
            on_report=got_report,
            on_peer=got_peer,
        )(edit)
    for i in range(3):
        node(mesh, f"reviewer-{i}", role="review", level=2)(review)
    client = make_mesh()
    await mesh.start()
    await client.start()
    await registry_knows(
        mesh, "chief-1", "editor-0", "editor-1", "reviewer-0", "reviewer-1", "reviewer-2"
    )
    task_id = await client.submit("publish", {"sections": ["intro|body", "typo here|end"]})
    out = await client.wait_result(task_id, timeout=15)
    assert out["publish"] is False
    assert [s["approved"] for s in out["sections"]] == [True, False]
    reviewers = {r["by"] for s in out["sections"] for r in s["reviews"]}
    assert len(reviewers) >= 2
    await eventually(lambda: len(reports) >= 4, what="every progress report")
    assert sorted(e.payload["paragraph"] for e in reports) == ["body", "end", "intro", "typo here"]
    assert all(e.type == "hierarchy.progress" for e in reports)
    assert len(peer_news) >= 1  # editors heard each other on their level
    assert all(e.payload["level"] == 1 for e in peer_news)


async def test_supervisor_reassigns_the_work_of_a_silent_subordinate(make_mesh: MakeMesh) -> None:
    boss_mesh = make_mesh()
    boss: HierarchyNode = node(boss_mesh, "lead-1", role="lead", level=0, subordinates="review")(
        edit
    )
    doomed_mesh = make_mesh()
    got_work = asyncio.Event()

    @node(doomed_mesh, "reviewer-doomed", role="review", level=1)
    async def hang(ctx: NodeContext) -> dict[str, Any]:
        got_work.set()
        await asyncio.Event().wait()
        return {}

    client = make_mesh()
    await doomed_mesh.start()
    await boss_mesh.start()
    await client.start()
    await registry_knows(boss_mesh, "reviewer-doomed")
    task_id = await client.submit("lead", {"section": "only paragraph"})
    await asyncio.wait_for(got_work.wait(), 5)
    hb = doomed_mesh.agents["reviewer-doomed"]._hb_task
    assert hb is not None
    hb.cancel()  # the subordinate goes silent
    healthy = make_mesh()
    node(healthy, "reviewer-ok", role="review", level=1)(review)
    await healthy.start()
    out = await client.wait_result(task_id, timeout=15)
    assert out["approved"] is True
    assert out["reviews"][0]["by"] == "reviewer-ok"
    assert boss.assignments.reassigned == 1
