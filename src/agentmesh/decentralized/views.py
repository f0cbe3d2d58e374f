"""Seeing every decentralized group of a tenant from outside (CLI ``status``, REST).

A scatter-gather on the bus: one ``decentralized_status_request`` to
``am.<tenant>.dc.status``, which every decentralized agent of the tenant answers on the
reply subject named in ``routing.reply_to``; answers are grouped by Raft group.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.transports import Message, Transport

QUIET = 0.25
"""Seconds without a new answer after which the gather ends early (nodes answer in ms)."""


async def collect_nodes(
    transport: Transport, tenant: str, *, wait: float = 0.5
) -> list[dict[str, Any]]:
    """Every decentralized node's status that arrives within ``wait`` seconds (ends
    earlier once no new answer came for :data:`QUIET` seconds)."""
    reply_to = subjects.decentralized(tenant, f"reply-{uuid.uuid4().hex}")
    answers: list[dict[str, Any]] = []
    heard = asyncio.Event()

    async def collect(msg: Message) -> None:
        answers.append(msg.envelope.payload)
        heard.set()

    sub = await transport.subscribe(reply_to, collect)
    try:
        request = Envelope.create(
            "decentralized_status_request", {}, tenant_id=tenant, routing={"reply_to": reply_to}
        )
        await transport.publish(subjects.decentralized(tenant, "status"), request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            heard.clear()
            try:
                await asyncio.wait_for(heard.wait(), min(QUIET, left))
            except TimeoutError:
                break
    finally:
        await sub.unsubscribe()
    return answers


def group_view(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per group: leader, term, commit index and members with gossip state,
    as the node with the highest term (then commit index) sees it."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        if isinstance(node.get("group"), str) and isinstance(node.get("raft"), dict):
            groups.setdefault(node["group"], []).append(node)
    out = []
    for name, members in sorted(groups.items()):
        best = max(
            members,
            key=lambda n: (
                n["raft"].get("leader") is not None,
                n["raft"].get("term") or 0,
                n["raft"].get("commit_index") or 0,
            ),
        )
        raft = best["raft"]
        out.append(
            {
                "group": name,
                "leader": raft.get("leader"),
                "term": raft.get("term"),
                "commit_index": raft.get("commit_index"),
                "members": best.get("members", []),
                "nodes": sorted(
                    (
                        {
                            "node": n.get("node"),
                            "agent_id": n.get("agent_id"),
                            "state": n["raft"].get("state"),
                            "term": n["raft"].get("term"),
                            "commit_index": n["raft"].get("commit_index"),
                            "applied": (n.get("state") or {}).get("applied"),
                        }
                        for n in members
                    ),
                    key=lambda n: str(n["node"]),
                ),
            }
        )
    return out


async def collect_groups(
    transport: Transport, tenant: str, *, wait: float = 0.5
) -> list[dict[str, Any]]:
    """The groups of a tenant (empty when it runs no decentralized agent)."""
    return group_view(await collect_nodes(transport, tenant, wait=wait))
