"""``agentmesh agent start-decentralized-agent``: a Raft + gossip member as a process."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from loguru import logger

from agentmesh.cli.output import fail

USAGE = 2  # bad input exits like a usage error


def register(agent_app: typer.Typer) -> None:
    """Add ``start-decentralized-agent`` to ``agentmesh agent``."""

    @agent_app.command("start-decentralized-agent")
    def start_decentralized_agent(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: Annotated[
            list[str],
            typer.Option("--capabilities", "-c", help="Capabilities, comma- or space-separated."),
        ],
        cluster_nodes: Annotated[
            list[str],
            typer.Option(
                "--cluster-nodes",
                help="The group's nodes as host:port, comma-separated (may include --address).",
            ),
        ],
        address: Annotated[
            str | None,
            typer.Option(help="This node's host:port (Raft over TCP, gossip over UDP)."),
        ] = None,
        group: Annotated[str, typer.Option(help="Name of the Raft group.")] = "default",
        tenant: Annotated[
            str | None, typer.Option(help="Tenant (default AGENTMESH_TENANT).")
        ] = None,
        handler: Annotated[
            str | None,
            typer.Option(
                help="Async handler 'module:function' for pool tasks (default: operations)."
            ),
        ] = None,
        max_concurrent: Annotated[int, typer.Option(min=1, max=1000)] = 8,
        election_timeout: Annotated[
            float, typer.Option(help="Raft election timeout in s (heartbeat: a third of it).")
        ] = 5.0,
        gossip_interval: Annotated[float, typer.Option(help="Gossip period in s.")] = 1.0,
        fanout: Annotated[int, typer.Option(help="Gossip fan-out (peers per round).")] = 3,
        suspicion_timeout: Annotated[
            float | None,
            typer.Option(help="Seconds a suspect has to refute (default 3 gossip periods)."),
        ] = None,
        snapshot_every: Annotated[
            int, typer.Option(min=2, help="Compact the Raft log into a snapshot every N entries.")
        ] = 5000,
        cluster_secret: Annotated[
            str | None,
            typer.Option(
                envvar="AGENTMESH_CLUSTER_SECRET",
                help="Encrypt Raft traffic with this password.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Start a DecentralizedAgent: Raft consensus + SWIM gossip with its peers."""
        from agentmesh import subjects
        from agentmesh.agents.kinds import execute_operation
        from agentmesh.cli.main import _load_handler, load_settings
        from agentmesh.decentralized import DecentralizedAgent, Timings, parse_cluster
        from agentmesh.decentralized.config import validate_group
        from agentmesh.errors import AgentMeshError
        from agentmesh.mesh import Mesh
        from agentmesh.runtime.capabilities import parse_capabilities, validate_agent_id
        from agentmesh.runtime.shutdown import stop_on_signals

        try:
            validate_agent_id(agent_id)
            caps = parse_capabilities(capabilities)
            me, peers = parse_cluster(cluster_nodes, address)
            validate_group(group)
            timings = Timings(
                election_timeout=election_timeout,
                gossip_interval=gossip_interval,
                fanout=fanout,
                suspicion_timeout=suspicion_timeout,
            )
        except AgentMeshError as exc:
            fail(exc.message, USAGE)
        settings = load_settings()
        try:  # a bad tenant id: one line, before anything starts
            subjects.agent(tenant or settings.agentmesh_tenant, agent_id)
        except ValueError as exc:
            fail(str(exc), USAGE)
        work: Any = _load_handler(handler) if handler else execute_operation
        if not asyncio.iscoroutinefunction(work):
            fail(f"handler {handler!r} must be an async function", USAGE)

        async def main() -> None:
            mesh = Mesh(settings=settings, tenant=tenant)
            mesh.add(
                DecentralizedAgent(
                    mesh,
                    agent_id,
                    work,
                    capabilities=caps,
                    address=me,
                    peers=peers,
                    group=group,
                    timings=timings,
                    max_concurrent=max_concurrent,
                    secret=cluster_secret,
                    snapshot_every=snapshot_every,
                )
            )
            stop = stop_on_signals(asyncio.get_running_loop())
            await mesh.start(registry=False)
            logger.info("decentralized agent {} serving on {}; Ctrl-C to stop", agent_id, me)
            try:
                await stop.wait()
            finally:
                await mesh.stop()

        try:
            asyncio.run(main())
        except AgentMeshError as exc:
            fail(exc.message)


def render_groups(console: Any, groups: list[dict[str, Any]]) -> None:
    """The ``agentmesh status`` table of decentralized groups (nothing when there is none)."""
    from rich.table import Table

    for g in groups:
        table = Table(
            title=f"raft group {g['group']}: leader {g.get('leader') or '-'}, "
            f"term {g.get('term')}, commit index {g.get('commit_index')}"
        )
        for col in ("member", "agent", "gossip", "raft", "commit index"):
            table.add_column(col)
        commits = {n.get("node"): n.get("commit_index") for n in g.get("nodes", [])}
        for m in g.get("members", []):
            role = "leader" if m.get("leader") else ("member" if m.get("raft_member") else "-")
            table.add_row(
                str(m.get("address")),
                str(m.get("agent_id") or "-"),
                str(m.get("gossip")),
                role,
                str(commits.get(m.get("address"), "-")),
            )
        console.print(table)
