"""The ``agentmesh`` command (also ``python -m agentmesh.cli.main``)."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Annotated, Any

import typer
from loguru import logger
from pydantic import ValidationError as SettingsValidationError

from agentmesh.cli.output import console, fail, print_json
from agentmesh.config import Settings, get_settings
from agentmesh.errors import AgentMeshError
from agentmesh.observability.logging import configure_logging
from agentmesh.observability.tracing import configure_tracing

VERSION_TEXT = "AgentMesh EDA 0.1.0"

app = typer.Typer(
    name="agentmesh",
    help="AgentMesh: event-driven multi-agent systems over any broker.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
agent_app = typer.Typer(help="Run and manage agents.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")


def load_settings(**overrides: Any) -> Settings:
    try:
        settings = get_settings(**overrides)
    except SettingsValidationError as exc:
        first = exc.errors()[0]
        fail(f"invalid setting {'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}")
    configure_logging(settings.log_level)
    configure_tracing("agentmesh-" + "-".join(a for a in sys.argv[1:3] if a.isalpha()))
    return settings


def _version(value: bool) -> None:
    if value:
        typer.echo(VERSION_TEXT)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """AgentMesh command line."""


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Run a demo tenant with agents at work.")
    ] = False,
    api: Annotated[bool, typer.Option("--api/--no-api", help="Serve the control plane.")] = True,
    host: Annotated[str | None, typer.Option(help="Control plane host (default API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Control plane port (default API_PORT).")] = None,
    cluster: Annotated[
        int,
        typer.Option(
            "--cluster",
            min=0,
            max=9,
            help="Run a local NATS cluster of N nodes (JetStream R3) with several control "
            "planes on PostgreSQL (DATABASE_URL) and agent processes instead.",
        ),
    ] = 0,
    replicas: Annotated[
        int, typer.Option(min=1, max=9, help="With --cluster: control-plane replicas.")
    ] = 2,
    agents: Annotated[
        int, typer.Option(min=0, max=32, help="With --cluster: agent processes.")
    ] = 3,
) -> None:
    """Start the embedded mesh: NATS (JetStream) + registry + control plane (+ demo)."""
    from agentmesh.cli.up import run_up

    settings = load_settings()
    if cluster:
        from agentmesh.cli.cluster import ClusterSpec, run_cluster

        spec = ClusterSpec(
            size=cluster, replicas=replicas, agents=agents, port=port or settings.api_port
        )
        spec.demo = demo
        try:
            run_cluster(settings, spec)
        except AgentMeshError as exc:
            fail(str(exc))
        return
    asyncio.run(
        run_up(
            settings,
            demo=demo,
            api=api,
            host=host or settings.api_host,
            port=port or settings.api_port,
            console=console,
        )
    )


def _load_handler(spec: str | None) -> Any:
    if not spec:
        from agentmesh.agents.builtin import echo

        return echo
    module, _, name = spec.partition(":")
    if not module or not name:
        fail(f"--handler must look like 'package.module:function', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        fail(f"cannot load handler {spec!r}: {exc}")


@agent_app.command("start")
def agent_start(
    agent_id: Annotated[str, typer.Argument(help="Agent id: 3-256 letters, digits, '-' or '_'.")],
    capabilities: Annotated[
        list[str],
        typer.Option(
            "--capabilities",
            "-c",
            help="Capabilities, comma- or space-separated; 'name:level' sets a level 1-5 (default 3).",
        ),
    ],
    tenant: Annotated[str | None, typer.Option(help="Tenant (default AGENTMESH_TENANT).")] = None,
    handler: Annotated[
        str | None,
        typer.Option(help="Async handler 'module:function' (default: the built-in echo agent)."),
    ] = None,
    max_concurrent: Annotated[int, typer.Option(min=1, max=1000, help="Tasks at once.")] = 8,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="AGENTMESH_TOKEN",
            show_envvar=True,
            help="Token of the agent's tenant for the bus (agentmesh token create --role agent); "
            "development mints one from the data directory's dev secrets.",
        ),
    ] = None,
) -> None:
    """Start an agent process that joins the mesh through the broker."""
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.agent import AgentRuntime
    from agentmesh.runtime.capabilities import parse_capabilities, validate_agent_id
    from agentmesh.runtime.shutdown import stop_on_signals

    validate_agent_id(agent_id)
    caps = parse_capabilities(capabilities)
    settings = load_settings(**({"agentmesh_token": token} if token else {}))
    fn = _load_handler(handler)
    if not asyncio.iscoroutinefunction(fn):
        fail(f"handler {handler!r} must be an async function")

    async def main() -> None:
        mesh = Mesh(settings=settings, tenant=tenant)
        mesh.add(AgentRuntime(mesh, agent_id, fn, capabilities=caps, max_concurrent=max_concurrent))
        stop = stop_on_signals(asyncio.get_running_loop())
        await mesh.start(registry=False)
        logger.info(
            "agent {} serving {} on {}; Ctrl-C to stop",
            agent_id,
            ", ".join(caps),
            mesh.transport.url,
        )
        try:
            await stop.wait()
        finally:
            await mesh.stop()

    asyncio.run(main())


@app.command()
def status(
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    tenant: Annotated[
        str | None,
        typer.Option(help="Tenant whose agents to list when no 'agentmesh up' registry answers."),
    ] = None,
) -> None:
    """Health of the broker, the store and the live agents."""
    from agentmesh.cli.status import gather_status

    settings = load_settings()
    report = asyncio.run(gather_status(settings, tenant or settings.agentmesh_tenant))
    if json:
        print_json(report)
    else:
        _render_status(report)
    if not report.get("healthy"):
        raise typer.Exit(1)


def _render_status(report: dict[str, Any]) -> None:
    from rich.table import Table

    def mark(ok: bool) -> str:
        return "[green]ok[/]" if ok else "[red]down[/]"

    b, s = report["broker"], report["store"]
    console.print(
        f"broker  {mark(b.get('status') == 'ok')}  {b['url']}"
        + (f"  rtt {b['rtt_ms']} ms" if "rtt_ms" in b else "")
        + (f"  [red]{b['error']}[/]" if "error" in b else "")
    )
    console.print(
        f"store   {mark(s['status'] == 'ok')}  {s['url']}"
        + (f"  [red]{s['error']}[/]" if "error" in s else "")
    )
    if "control_plane" in report:
        console.print(f"api     {report['control_plane']['url']}")
    agents = report.get("agents", [])
    table = Table(title=f"{len(agents)} live agent(s)")
    for col in ("tenant", "agent", "status", "capabilities", "in flight", "done"):
        table.add_column(col)
    for a in agents:
        caps = ", ".join(f"{k}:{v}" for k, v in (a.get("capabilities") or {}).items())
        table.add_row(
            str(a.get("tenant_id")),
            str(a.get("agent_id")),
            str(a.get("status")),
            caps,
            str(a.get("in_flight", 0)),
            str(a.get("tasks_completed", 0)),
        )
    console.print(table)
    queues = report.get("queues") or []
    if queues:
        qt = Table(title="task queues (pending + unacked)")
        for col in ("tenant", "queue", "depth"):
            qt.add_column(col)
        for q in queues:
            qt.add_row(str(q["tenant_id"]), str(q["queue"]), str(q["depth"]))
        console.print(qt)
    from agentmesh.cli.decentralized_commands import render_groups

    render_groups(console, report.get("decentralized") or [])


def _register_optional(module: str, fn: str, target: typer.Typer) -> None:
    """Sub-commands contributed by other packages of agentmesh, when present."""
    try:
        register = getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError):
        return
    register(target)


_register_optional("agentmesh.cli.store_commands", "register", app)
_register_optional("agentmesh.cli.control_commands", "register", app)
_register_optional("agentmesh.cli.audit_commands", "register", app)
_register_optional("agentmesh.cli.control_commands", "register_agent_commands", agent_app)
_register_optional("agentmesh.cli.agent_kinds", "register_agent_kinds", agent_app)
_register_optional("agentmesh.cli.kafka_agent", "register", agent_app)
_register_optional("agentmesh.cli.llm_commands", "register_llm_commands", agent_app)
_register_optional("agentmesh.cli.decentralized_commands", "register", agent_app)
_register_optional("agentmesh.cli.federated_commands", "register", app)
_register_optional("agentmesh.cli.federated_commands", "register_agent_commands", agent_app)
_register_optional("agentmesh.cli.agent_metrics", "register", agent_app)
_register_optional("agentmesh.cli.top", "register", app)
_register_optional("agentmesh.cli.safety_commands", "register", agent_app)
_register_optional("agentmesh.cli.interop_commands", "register", app)
_register_optional("agentmesh.cli.mcp_commands", "register", app)
_register_optional("agentmesh.cli.interop_commands", "register_agent_commands", agent_app)
_register_optional("agentmesh.cli.approval_commands", "register", app)


def _run_app() -> int:
    try:
        app(standalone_mode=True)
    except AgentMeshError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        return 130
    return 0


def main() -> None:
    """Console-script entry point: AgentMesh errors become one red line, never a traceback,
    and a thread a client left running never keeps the process from exiting."""
    from agentmesh.runtime.shutdown import exit_process

    try:
        code = _run_app()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    exit_process(code)


if __name__ == "__main__":
    main()
