"""``agentmesh top``: a live terminal view of the mesh, like ``htop``.

Agents (status, load, in flight, done, failed) come from the running registry (or their
heartbeats), queue depths from the broker, throughput from the agents' completion counters
between two samples, and the recent failures from the store (or ``--api-url``). The view
refreshes in place every ``--interval`` seconds until Ctrl-C; ``--once --json`` prints one
snapshot (two samples ``--interval`` apart) for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

import typer

from agentmesh.cli.output import console, print_json
from agentmesh.cli.serving import platform_transport
from agentmesh.cli.target import ApiUrlOpt, TenantOpt, TokenOpt, _run, settings

Snapshot = dict[str, Any]


def _done(agents: list[dict[str, Any]]) -> int:
    return sum(int(a.get("tasks_completed", 0)) + int(a.get("tasks_failed", 0)) for a in agents)


async def sample(transport: Any, tenant: str, wait: float) -> tuple[list[dict[str, Any]], Any]:
    """The tenant's live agents and its task queue depths, read now."""
    from agentmesh.cli.status import live_agents
    from agentmesh.runtime.queues import queue_depths

    _, agents = await live_agents(transport, tenant, wait)
    depths = await queue_depths(transport)
    mine = [a for a in agents if a.get("tenant_id") == tenant]
    queues = [
        {"queue": queue, "depth": depth}
        for (t, queue), depth in sorted(depths.items())
        if t == tenant and queue.startswith("task:")
    ]
    return mine, queues


def snapshot(
    tenant: str,
    agents: list[dict[str, Any]],
    queues: list[dict[str, Any]],
    throughput: float | None,
    failures: list[dict[str, Any]],
) -> Snapshot:
    """The document ``--json`` prints and the view renders."""
    return {
        "tenant": tenant,
        "at": time.time(),
        "agents": [
            {
                k: a.get(k)
                for k in (
                    "agent_id",
                    "status",
                    "capabilities",
                    "load",
                    "in_flight",
                    "tasks_completed",
                    "tasks_failed",
                )
            }
            for a in sorted(agents, key=lambda a: str(a.get("agent_id")))
        ],
        "queues": queues,
        "throughput_per_s": None if throughput is None else round(throughput, 3),
        "recent_failures": failures,
    }


def render(snap: Snapshot) -> Any:
    """The Rich renderable of one snapshot."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rate = snap["throughput_per_s"]
    head = Text.assemble(
        ("agentmesh top ", "bold"),
        f"tenant {snap['tenant']}  ",
        f"{len(snap['agents'])} agent(s)  ",
        ("throughput ", "bold"),
        "-" if rate is None else f"{rate:.2f} tasks/s",
        f"  {time.strftime('%H:%M:%S', time.localtime(snap['at']))}",
    )
    agents = Table(title="agents", expand=True)
    for col in ("agent", "status", "load", "in flight", "done", "failed", "capabilities"):
        agents.add_column(col)
    for a in snap["agents"]:
        load = float(a.get("load") or 0)
        agents.add_row(
            str(a["agent_id"]),
            str(a["status"]),
            f"{load * 100:.0f}%",
            str(a.get("in_flight") or 0),
            str(a.get("tasks_completed") or 0),
            str(a.get("tasks_failed") or 0),
            ", ".join(sorted(a.get("capabilities") or {})),
        )
    queues = Table(title="task queues", expand=True)
    queues.add_column("queue")
    queues.add_column("depth", justify="right")
    for q in snap["queues"]:
        queues.add_row(str(q["queue"]), str(q["depth"]))
    failures = Table(title="recent failures", expand=True)
    for col in ("task", "agent", "error", "when"):
        failures.add_column(col)
    for f in snap["recent_failures"]:
        failures.add_row(
            str(f.get("task_id")),
            str(f.get("agent_id") or "-"),
            str(f.get("error") or "")[:80],
            str(f.get("updated_at") or ""),
        )
    return Group(head, agents, queues, failures)


async def _failures(backend: Any, tenant: str, limit: int = 5) -> list[dict[str, Any]]:
    """The tenant's latest failed tasks (failed, or dead-lettered after their attempts)."""
    found: list[dict[str, Any]] = []
    for status in ("failed", "dead_lettered"):
        page = await backend.page("task", tenant, {"status": status, "limit": limit})
        found += [
            {k: t.get(k) for k in ("task_id", "status", "agent_id", "error", "updated_at")}
            for t in page.get("tasks", [])
        ]
    found.sort(key=lambda t: str(t.get("updated_at") or ""), reverse=True)
    return found[:limit]


def register(app: typer.Typer) -> None:
    """Add ``agentmesh top``."""

    @app.command()
    def top(
        tenant: TenantOpt = None,
        interval: Annotated[
            float, typer.Option(min=0.2, max=60, help="Seconds between refreshes.")
        ] = 2.0,
        once: Annotated[bool, typer.Option("--once", help="One snapshot, then exit.")] = False,
        json: Annotated[
            bool, typer.Option("--json", help="Machine-readable (with --once).")
        ] = False,
        api_url: ApiUrlOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Live view of agents, queues, throughput and recent failures (Ctrl-C to quit)."""

        config = settings()
        who = tenant or config.agentmesh_tenant
        wait = config.agentmesh_heartbeat_interval + 0.5

        async def work(backend: Any) -> None:
            transport = platform_transport(config)
            await transport.connect()
            try:
                agents, queues = await sample(transport, who, wait)
                last, last_at = _done(agents), time.monotonic()
                if once:
                    await asyncio.sleep(interval)
                    agents, queues = await sample(transport, who, wait)
                    rate = (_done(agents) - last) / (time.monotonic() - last_at)
                    snap = snapshot(
                        who, agents, queues, max(rate, 0.0), await _failures(backend, who)
                    )
                    if json:
                        print_json(snap)
                    else:
                        console.print(render(snap))
                    return
                await _live(transport, backend, who, wait, interval, agents, queues, last, last_at)
            finally:
                await transport.close()

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the live view
            _run(api_url, token, work)


async def _live(
    transport: Any,
    backend: Any,
    tenant: str,
    wait: float,
    interval: float,
    agents: list[dict[str, Any]],
    queues: list[dict[str, Any]],
    last: int,
    last_at: float,
) -> None:
    from rich.live import Live

    from agentmesh.runtime.shutdown import stop_on_signals

    stop = stop_on_signals(asyncio.get_running_loop())  # Ctrl-C: a clean return
    snap = snapshot(tenant, agents, queues, None, await _failures(backend, tenant))
    with Live(render(snap), console=console, refresh_per_second=4, screen=False) as live:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            agents, queues = await sample(transport, tenant, wait)
            now, done = time.monotonic(), _done(agents)
            rate = max((done - last) / (now - last_at), 0.0)
            last, last_at = done, now
            snap = snapshot(tenant, agents, queues, rate, await _failures(backend, tenant))
            live.update(render(snap))
