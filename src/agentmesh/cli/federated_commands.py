"""``agentmesh agent start-federated-agent`` (a coordinator or a participant process) and
``agentmesh federated rounds`` (the rounds of a tenant's jobs, from the event store)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Any

import typer
from loguru import logger
from rich.table import Table

from agentmesh.cli.agent_kinds import CapabilitiesOpt, _prepare
from agentmesh.cli.output import console, fail, print_json
from agentmesh.cli.serving import run_or_fail
from agentmesh.cli.target import JsonOpt, TenantOpt, settings

federated_app = typer.Typer(help="Federated learning jobs.", no_args_is_help=True)

Opt = typer.Option


def register(app: typer.Typer) -> None:
    """Add the ``federated`` group to the main CLI."""
    app.add_typer(federated_app, name="federated")


def register_agent_commands(agent_app: typer.Typer) -> None:
    """Add ``start-federated-agent`` to ``agentmesh agent``."""
    agent_app.command("start-federated-agent")(start_federated_agent)


def start_federated_agent(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    capabilities: CapabilitiesOpt,
    role: Annotated[str, Opt(help="coordinator or participant.")] = "participant",
    data: Annotated[
        str | None,
        Opt(
            help="digits[:shard=i/n][,alpha=A][,seed=S]: a participant's shard, the "
            "coordinator's held-out test set."
        ),
    ] = None,
    coordinator: Annotated[
        str, Opt(help="The coordinator's agent id (participants).")
    ] = "federated-coordinator",
    tenant: Annotated[str | None, Opt(help="Tenant (default AGENTMESH_TENANT).")] = None,
    rounds: Annotated[int, Opt(min=1, max=10000, help="Model versions to commit.")] = 20,
    job: Annotated[str | None, Opt(help="Job id (default: the coordinator's id).")] = None,
    aggregation: Annotated[str, Opt(help="weighted (by samples) or average.")] = "weighted",
    secure_aggregation: Annotated[
        bool, Opt("--secure/--no-secure", help="Pairwise-masked secure aggregation.")
    ] = True,
    update_threshold: Annotated[int, Opt(min=1, help="Aggregate after this many updates.")] = 5,
    min_updates: Annotated[int, Opt(min=1, help="Fewest updates a round commits with.")] = 2,
    min_participants: Annotated[
        int, Opt(min=1, help="Participants a round waits for (up to --round-timeout).")
    ] = 2,
    round_timeout: Annotated[float, Opt(min=0.1, max=86400, help="Round deadline (s).")] = 30.0,
    round_interval: Annotated[float, Opt(min=0, max=86400, help="Pause between rounds (s).")] = 0.0,
    epochs: Annotated[int, Opt(min=1, max=1000, help="Local epochs per round.")] = 5,
    lr: Annotated[float, Opt(min=1e-6, max=100, help="Local learning rate.")] = 0.5,
    fedprox_mu: Annotated[float, Opt(min=0, max=100, help="FedProx proximal weight.")] = 0.0,
    dp_clip: Annotated[float, Opt(min=0, help="DP: clip updates to this L2 norm (0: off).")] = 0.0,
    dp_noise: Annotated[float, Opt(min=0, help="DP: noise multiplier (sigma / clip).")] = 1.0,
) -> None:
    """Start a federated learning coordinator or participant."""
    from agentmesh.errors import ValidationError
    from agentmesh.federated.data import DataSpec, held_out, shard_of
    from agentmesh.federated.model import TrainConfig, evaluate
    from agentmesh.federated.privacy import DPConfig
    from agentmesh.federated.protocol import FederationConfig
    from agentmesh.runtime.capabilities import validate_agent_id

    config, caps = _prepare(agent_id, capabilities)
    if role not in ("coordinator", "participant"):
        fail(f"unknown role {role!r}: use coordinator or participant")
    try:
        spec = DataSpec.parse(data) if data else None
        validate_agent_id(coordinator)
        if role == "participant":
            if spec is None or not spec.count:
                fail("a participant needs --data digits:shard=i/n")
            X, y = shard_of(spec)
        else:
            fed = FederationConfig(
                job=job or agent_id,
                rounds=rounds,
                aggregation=aggregation,
                update_threshold=update_threshold,
                min_updates=min_updates,
                min_participants=min_participants,
                round_timeout=round_timeout,
                round_interval=round_interval,
                secure=secure_aggregation,
                train=TrainConfig(epochs=epochs, lr=lr, mu=fedprox_mu),
                dp=DPConfig(clip=dp_clip, noise=dp_noise) if dp_clip > 0 else None,
            )
    except ValidationError as exc:
        fail(exc.message)

    async def main() -> None:
        from agentmesh.federated.coordinator import FederatedCoordinator
        from agentmesh.federated.participant import FederatedParticipant
        from agentmesh.mesh import Mesh
        from agentmesh.store.factory import create_event_store

        mesh = Mesh(settings=config, tenant=tenant)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        store = None
        if role == "participant":
            mesh.add(FederatedParticipant(mesh, agent_id, coordinator, X, y, capabilities=caps))
            done: Any = stop
        else:
            store = create_event_store(config.effective_database_url)
            await store.connect()
            scorer = None
            if spec is not None:
                X_test, y_test = held_out(spec)
                scorer = lambda w: evaluate(w, X_test, y_test)  # noqa: E731
            coord = FederatedCoordinator(
                mesh, agent_id, store, fed, capabilities=caps, evaluate=scorer
            )
            mesh.add(coord)
            done = coord.finished
        await mesh.start(registry=False)
        logger.info("federated {} {} running on {}", role, agent_id, mesh.transport.url)
        try:
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(done.wait())}
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            if role == "coordinator" and coord.finished.is_set():
                _render(coord.state.rounds)
        finally:
            await mesh.stop()
            if store is not None:
                await store.close()

    run_or_fail(main())


def _render(rows: list[dict[str, Any]]) -> None:
    table = Table(title="federated rounds")
    for col in ("job", "round", "status", "version", "participants", "accuracy", "loss", "epsilon"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["job"]),
            str(r["round"]),
            str(r["status"]),
            str(r["model_version"]),
            str(len(r["participants"])),
            "-" if r.get("accuracy") is None else f"{r['accuracy']:.4f}",
            "-" if r.get("loss") is None else f"{r['loss']:.4f}",
            "-" if r.get("epsilon") is None else f"{r['epsilon']:.3g}",
        )
    console.print(table)


@federated_app.command("rounds")
def rounds_command(
    tenant: TenantOpt = None,
    job: Annotated[str | None, Opt(help="Only this job.")] = None,
    json: JsonOpt = False,
) -> None:
    """The rounds of a tenant's federated jobs (participants, accuracy, loss, epsilon)."""
    from agentmesh.federated.history import round_rows
    from agentmesh.store.factory import create_event_store

    config = settings()
    t = tenant or config.agentmesh_tenant

    async def main() -> list[dict[str, Any]]:
        store = create_event_store(config.effective_database_url)
        await store.connect()
        try:
            return await round_rows(store, t, job)
        finally:
            await store.close()

    rows = run_or_fail(main())
    if json:
        print_json({"tenant": t, "rounds": rows})
    else:
        _render(rows)
