"""``agentmesh asyncapi`` (and the interop command groups: ``mcp``, A2A agents)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from agentmesh.cli.output import fail, print_json
from agentmesh.cli.serving import platform_transport, run_or_fail, serve_until_signalled
from agentmesh.cli.target import settings


def register(app: typer.Typer) -> None:
    """Add ``asyncapi`` to the root command."""
    app.command("asyncapi")(asyncapi)


async def _tenant_specs(tenant: str, wait: float) -> dict[str, dict[str, Any]]:
    from agentmesh.cli.status import live_agents

    transport = platform_transport(settings())
    await transport.connect()
    try:
        _, agents = await live_agents(transport, tenant, wait)
    finally:
        await transport.close()
    specs: dict[str, dict[str, Any]] = {}
    for agent in agents:
        if agent.get("tenant_id") != tenant:
            continue
        for cap, spec in (agent.get("capability_specs") or {}).items():
            if isinstance(spec, dict):
                specs.setdefault(str(cap), spec)
    return specs


def asyncapi(
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            "-t",
            help="Add the payload schemas this tenant's live agents declared (asks the broker).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the document to this file.")
    ] = None,
) -> None:
    """Print the AsyncAPI 3.0 document of the mesh (subjects, envelope, payload schemas)."""
    from agentmesh import ids
    from agentmesh.errors import AgentMeshError
    from agentmesh.interop.asyncapi import asyncapi_document

    config = settings()
    specs: dict[str, dict[str, Any]] = {}
    if tenant is not None:
        if not ids.is_tenant_id(tenant):
            fail(f"invalid tenant id {tenant!r}: 1-64 letters, digits, '-' or '_'")
        wait = config.agentmesh_heartbeat_interval + 0.5
        try:
            specs = asyncio.run(_tenant_specs(tenant, wait))
        except AgentMeshError as exc:
            fail(f"cannot reach the broker for tenant {tenant!r}: {exc.message}")
    doc = asyncapi_document(
        tenant=tenant, capability_specs=specs, transport_url=config.effective_transport_url()
    )
    if output is not None:
        import json

        try:
            output.write_text(json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
        return
    print_json(doc)


def register_agent_commands(agent_app: typer.Typer) -> None:
    """Add ``start-a2a-proxy`` to the ``agent`` group."""
    agent_app.command("start-a2a-proxy")(start_a2a_proxy)


def start_a2a_proxy(
    agent_id: Annotated[str, typer.Argument(help="Agent id of the proxy in the mesh.")],
    url: Annotated[str, typer.Option("--url", help="Base URL of the remote A2A agent.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant (default AGENTMESH_TENANT).")] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="HTTP header for the remote agent, 'Name: value' (repeat)."),
    ] = None,
    max_concurrent: Annotated[int, typer.Option(min=1, max=1000, help="Tasks at once.")] = 8,
) -> None:
    """Join a remote A2A agent to the mesh: its card's skills become capabilities, each
    task becomes an A2A message to it."""

    from agentmesh.cli.main import load_settings
    from agentmesh.errors import AgentMeshError
    from agentmesh.interop.a2a_proxy import a2a_proxy_agent, fetch_card
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.capabilities import validate_agent_id

    try:
        validate_agent_id(agent_id)
    except AgentMeshError as exc:
        fail(exc.message)
    headers: dict[str, str] = {}
    for h in header or []:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            fail(f"--header must look like 'Name: value', got {h!r}")
        headers[name.strip()] = value.strip()
    config = load_settings()

    async def main() -> None:
        import httpx

        try:
            card = await fetch_card(url, headers)
        except (httpx.HTTPError, ValueError) as exc:
            fail(f"cannot fetch the agent card of {url}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the SDK's resolution errors become one CLI line
            fail(f"cannot fetch the agent card of {url}: {type(exc).__name__}: {exc}")
        mesh = Mesh(settings=config, tenant=tenant)
        runtime = await a2a_proxy_agent(
            mesh, agent_id, url, headers=headers, card=card, max_concurrent=max_concurrent
        )
        await serve_until_signalled(
            mesh,
            "A2A proxy {} of {} serving {}; Ctrl-C to stop",
            agent_id,
            url,
            ", ".join(runtime.capabilities),
        )

    run_or_fail(main())
