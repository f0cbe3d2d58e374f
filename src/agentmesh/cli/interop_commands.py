"""``agentmesh asyncapi`` (and the interop command groups: ``mcp``, A2A agents)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from agentmesh.cli.output import fail, print_json
from agentmesh.cli.target import settings


def register(app: typer.Typer) -> None:
    """Add ``asyncapi`` to the root command."""
    app.command("asyncapi")(asyncapi)


async def _tenant_specs(tenant: str, wait: float) -> dict[str, dict[str, Any]]:
    from agentmesh.cli.status import live_agents
    from agentmesh.transports import create_transport

    config = settings()
    transport = create_transport(
        config.effective_transport_url(), connect_timeout=config.agentmesh_connect_timeout
    )
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
