"""``agentmesh tenant``, ``agentmesh message`` and ``agentmesh projections``.

The store is ``DATABASE_URL`` (SQLite in the data directory by default); commands bring
the read models up to date before reading them. Errors print one red line on stderr and
exit non-zero.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from agentmesh.cli.output import console, fail, print_json
from agentmesh.cli.serving import run_or_fail
from agentmesh.config import get_settings
from agentmesh.errors import AgentMeshError, NotFound

T = TypeVar("T")

tenant_app = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
message_app = typer.Typer(help="Inspect recorded (encrypted) messages.", no_args_is_help=True)
projections_app = typer.Typer(help="Read models built from the event store.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def register(app: typer.Typer) -> None:
    """Add the ``tenant``, ``message`` and ``projections`` groups to the main CLI."""
    app.add_typer(tenant_app, name="tenant")
    app.add_typer(message_app, name="message")
    app.add_typer(projections_app, name="projections")


def _run(work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the store of the settings, run ``work(persistence)``, always close."""
    from pydantic import ValidationError as SettingsError

    from agentmesh.security.crypto import encryption_from_settings
    from agentmesh.store.persistence import open_persistence

    try:
        settings = get_settings()
    except SettingsError as exc:
        first = exc.errors()[0]
        fail(f"invalid setting {'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}")

    async def main() -> T:
        p = await open_persistence(
            settings.effective_database_url, crypto=encryption_from_settings(settings)
        )
        try:
            return await work(p)
        finally:
            await p.close()

    return run_or_fail(main())


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="Unique tenant name.")],
    json: JsonOpt = False,
) -> None:
    """Create a tenant (id: a new uuid4) with a unique name."""
    from agentmesh.commands import CreateTenant, build_bus

    async def work(p: Any) -> str:
        result = await build_bus(p.store, p.read_models).execute(CreateTenant(name))
        await p.projector.catch_up()
        return str(result.aggregate_id)

    tenant_id = _run(work)
    if json:
        print_json({"id": tenant_id, "name": name})
    else:
        console.print(f"Tenant '{name}' created successfully.", markup=False, highlight=False)


@tenant_app.command("list")
def tenant_list(json: JsonOpt = False) -> None:
    """Print every tenant name, one per line."""

    async def work(p: Any) -> list[dict[str, Any]]:
        await p.projector.catch_up()
        tenants: list[dict[str, Any]] = await p.read_models.list_tenants()
        return tenants

    tenants = _run(work)
    if json:
        print_json([{"id": t["id"], "name": t["name"]} for t in tenants])
    elif not tenants:
        console.print("No tenants found.", highlight=False)
    else:
        for t in tenants:
            typer.echo(t["name"])


@message_app.command("view")
def message_view(
    message_id: Annotated[str, typer.Argument(help="Message id (the envelope's metadata.id).")],
    json: JsonOpt = False,
) -> None:
    """Show a recorded message: its id, its tenant and the decrypted payload."""
    from agentmesh.security.crypto import encryption_from_settings

    crypto = encryption_from_settings(get_settings())

    async def work(p: Any) -> Any:
        await p.projector.catch_up()
        return await p.read_models.get_message(message_id)

    msg = _run(work)
    if msg is None:
        if json:
            print_json(
                {"error": f"Message with ID: {message_id} not found.", "code": NotFound.code}
            )
        else:
            console.print(f"[yellow]Message with ID: {message_id} not found.[/]", highlight=False)
        raise typer.Exit(1)
    try:
        body = crypto.decrypt_json(msg.payload)
    except AgentMeshError as exc:
        fail(f"message {message_id}: {exc.message}")
    if json:
        print_json({"id": msg.id, "tenant_id": msg.tenant_id, "payload": body})
    else:
        console.print(f"ID: {msg.id}", markup=False, highlight=False)
        console.print(f"Tenant ID: {msg.tenant_id}", markup=False, highlight=False)
        console.print("Payload:", markup=False)
        console.print_json(data=body)


@projections_app.command("rebuild")
def projections_rebuild(json: JsonOpt = False) -> None:
    """Drop every read model and rebuild it from the first event."""

    async def work(p: Any) -> tuple[int, list[Any]]:
        n = await p.projector.rebuild()
        return n, await p.projector.status()

    n, status = _run(work)
    if json:
        print_json(
            {
                "events": n,
                "projections": [{"name": s.name, "checkpoint": s.checkpoint} for s in status],
            }
        )
    else:
        console.print(f"Rebuilt {len(status)} projections from {n} events.", highlight=False)


@projections_app.command("status")
def projections_status(json: JsonOpt = False) -> None:
    """Checkpoint and lag of every projection."""

    async def work(p: Any) -> list[Any]:
        status: list[Any] = await p.projector.status()
        return status

    status = _run(work)
    if json:
        print_json(
            [
                {"name": s.name, "checkpoint": s.checkpoint, "head": s.head, "lag": s.lag}
                for s in status
            ]
        )
        return
    from rich.table import Table

    table = Table(title="projections")
    for col in ("projection", "checkpoint", "head", "lag"):
        table.add_column(col)
    for s in status:
        table.add_row(s.name, str(s.checkpoint), str(s.head), str(s.lag))
    console.print(table)
