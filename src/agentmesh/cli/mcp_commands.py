"""``agentmesh mcp serve``: a tenant's capabilities as MCP tools (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from loguru import logger

from agentmesh.cli.output import fail
from agentmesh.cli.serving import run_or_fail

if TYPE_CHECKING:
    from agentmesh.config import Settings
    from agentmesh.interop.mcp_server import MeshToolServer

mcp_app = typer.Typer(help="Model Context Protocol: the mesh as MCP tools.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``mcp`` group to the root command."""
    app.add_typer(mcp_app, name="mcp")


@mcp_app.command("serve")
def serve(
    tenant: Annotated[
        str, typer.Option("--tenant", "-t", help="Tenant whose capabilities to serve.")
    ],
    http: Annotated[
        bool,
        typer.Option("--http", help="Serve streamable HTTP on --host/--port (default: stdio)."),
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8765,
    tools: Annotated[
        str | None, typer.Option(help="Only these capabilities, comma-separated (default: all).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds a tool call waits for its task's outcome.")
    ] = 300.0,
) -> None:
    """Serve the tenant's live capabilities as MCP tools; a call is a durable mesh task.

    stdio (default) is for MCP clients that start this command; --http serves
    http://HOST:PORT/mcp and needs a bearer token of the tenant (`agentmesh token create`).
    """
    from agentmesh import ids
    from agentmesh.cli.main import load_settings
    from agentmesh.interop.mcp_server import MeshToolServer
    from agentmesh.mesh import Mesh

    if not ids.is_tenant_id(tenant):
        fail(f"invalid tenant id {tenant!r}: 1-64 letters, digits, '-' or '_'")
    allow = {t.strip() for t in tools.split(",") if t.strip()} if tools else None
    settings = load_settings()

    async def main() -> None:
        mesh = Mesh(settings=settings, tenant=tenant)
        await mesh.start()
        server = MeshToolServer(mesh, allow=allow, timeout=timeout)
        try:
            if http:
                await _serve_http(server, settings, host, port)
            else:
                logger.info("MCP server for tenant {} on stdio ({})", tenant, mesh.transport.url)
                await server.serve_stdio()
        finally:
            await mesh.stop()

    try:
        run_or_fail(main())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _serve_http(server: MeshToolServer, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from agentmesh.security.tokens import token_service_from_settings

    tokens = token_service_from_settings(settings.with_secrets())
    app = server.http_app(tokens, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    logger.info("MCP server for tenant {} on http://{}:{}/mcp", server.mesh.tenant, host, port)
    await uvicorn.Server(config).serve()
