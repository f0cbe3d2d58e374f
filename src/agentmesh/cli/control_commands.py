"""``agentmesh token``, ``agentmesh task`` and ``agentmesh agent list/show/pause/resume/terminate``.

Every command works against the local store (``DATABASE_URL``) or, with ``--api-url``
and ``--token`` (or ``AGENTMESH_API_URL`` / ``AGENTMESH_TOKEN``), against a running
control plane. ``--json`` prints machine-readable output; otherwise Rich tables. Errors
are one red line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any

import typer

from agentmesh.cli.output import fail, print_json
from agentmesh.cli.target import JsonOpt, Target, settings, status_line, with_target
from agentmesh.domain.task_values import DEFAULT_MAX_ATTEMPTS
from agentmesh.domain.workflows import check_workflow_data, parse_workflow_type, workflow_capability
from agentmesh.errors import AgentMeshError, ValidationError

token_app = typer.Typer(help="Mint API tokens (JWT).", no_args_is_help=True)
task_app = typer.Typer(help="Submit and manage tasks.", no_args_is_help=True)

LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="Page size.")]
OffsetOpt = Annotated[int, typer.Option(min=0, max=10000, help="Skip this many.")]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded with the event).")]
AgentArg = Annotated[str, typer.Argument(help="Agent id.")]
TaskArg = Annotated[str, typer.Argument(help="Task id.")]


def register(app: typer.Typer) -> None:
    """Add the ``token`` and ``task`` groups to the main CLI."""
    app.add_typer(token_app, name="token")
    app.add_typer(task_app, name="task")


def register_agent_commands(agent_app: typer.Typer) -> None:
    """Add ``list``, ``show``, ``pause``, ``resume`` and ``terminate`` to the ``agent`` group."""
    agent_app.command("list")(agent_list)
    agent_app.command("show")(agent_show)
    agent_app.command("pause")(agent_pause)
    agent_app.command("resume")(agent_resume)
    agent_app.command("terminate")(agent_terminate)


# -- token ------------------------------------------------------------------------------
@token_app.command("create")
def token_create(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the token acts in.")],
    role: Annotated[
        list[str],
        typer.Option(
            "--role",
            "-r",
            help="Role (repeat or comma-separate): admin, orchestrator, agent, "
            "task_executor, observer.",
        ),
    ],
    expires: Annotated[
        str | None,
        typer.Option(help="Lifetime such as 15m, 1h, 7d (default JWT_EXPIRATION_HOURS)."),
    ] = None,
    subject: Annotated[str, typer.Option("--subject", "-s", help="The token's sub.")] = "cli",
    json: JsonOpt = False,
) -> None:
    """Mint a signed JWT for ``--tenant`` with ``--role`` (prints the token)."""
    from agentmesh.security.tokens import parse_duration, token_service_from_settings

    roles = [r.strip() for item in role for r in item.split(",") if r.strip()]
    try:
        svc = token_service_from_settings(settings())
        lifetime = parse_duration(expires) if expires else None
        token = svc.create(subject, tenant, roles, expires_in=lifetime)
        claims = svc.verify(token)
    except AgentMeshError as exc:
        fail(exc.message)
    if json:
        print_json(
            {
                "token": token,
                "tenant_id": claims.tenant_id,
                "roles": list(claims.roles),
                "subject": claims.subject,
                "expires_at": claims.expires_at.isoformat(),
            }
        )
    else:
        typer.echo(token)


# -- agents -----------------------------------------------------------------------------
def _agent_row(a: dict[str, Any]) -> list[str]:
    return [
        a["agent_id"],
        a["name"],
        a["agent_type"],
        a["status"],
        ", ".join(f"{c['name']}:{c['level']}" for c in a["capabilities"]),
        str(a.get("tasks_completed", 0)),
    ]


@with_target
def agent_list(
    target: Target,
    status: Annotated[
        str | None, typer.Option(help="AVAILABLE, BUSY, PAUSED, UNHEALTHY or TERMINATED.")
    ] = None,
    agent_type: Annotated[str | None, typer.Option("--type", help="Agent type.")] = None,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", "-c", help="Required capability.")
    ] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
) -> None:
    """List the agents of a tenant (registered in the store)."""
    caps = [c.strip() for item in capability or [] for c in item.split(",") if c.strip()]
    params = {
        "status": status.upper() if status else None,
        "agent_type": agent_type,
        "capabilities": caps,
        "limit": limit,
        "offset": offset,
    }
    columns = ["agent", "name", "type", "status", "capabilities", "done"]
    target.page("agent", params, columns, _agent_row)


@with_target
def agent_show(agent_id: AgentArg, target: Target) -> None:
    """Show one agent."""
    target.one("agent", agent_id)


@with_target
def agent_pause(agent_id: AgentArg, target: Target, reason: ReasonOpt = "") -> None:
    """Pause an idle agent."""
    target.change("agent", agent_id, "pause", reason)


@with_target
def agent_resume(agent_id: AgentArg, target: Target) -> None:
    """Resume a paused agent."""
    target.change("agent", agent_id, "resume")


@with_target
def agent_terminate(agent_id: AgentArg, target: Target, reason: ReasonOpt = "") -> None:
    """Terminate an agent (final)."""
    target.change("agent", agent_id, "terminate", reason)


# -- tasks ------------------------------------------------------------------------------
def _priority(value: str) -> int | str:
    return int(value) if value.isdigit() else value.lower()


STRATEGIES = (
    "round_robin",
    "least_connections",
    "capability_based",
    "load_balanced",
    "priority_queue",
)


@task_app.command("submit")
@with_target
def task_submit(
    capability: Annotated[
        str | None, typer.Option("--capability", "-c", help="Required capability.")
    ] = None,
    payload: Annotated[str, typer.Option(help="Task payload as a JSON object.")] = "{}",
    *,
    target: Target,
    task_id: Annotated[str | None, typer.Option(help="Task id (default: a new uuid4).")] = None,
    task_type: Annotated[str | None, typer.Option(help="Task type (default: capability).")] = None,
    priority: Annotated[str, typer.Option(help="1-5 or low/medium/high/urgent.")] = "medium",
    timeout: Annotated[int, typer.Option(min=1, max=3600, help="Seconds.")] = 300,
    max_attempts: Annotated[
        int, typer.Option(help="Runs at most this often (1-6, retries = attempts - 1).")
    ] = DEFAULT_MAX_ATTEMPTS,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="Route to one live agent: round_robin, least_connections, "
            "capability_based, load_balanced or priority_queue (needs --api-url)."
        ),
    ] = None,
    to_agent: Annotated[str | None, typer.Option(help="Offer it to this agent only.")] = None,
    requires_approval: Annotated[
        bool,
        typer.Option(
            "--requires-approval", help="Hold it as pending_approval until an approver decides."
        ),
    ] = False,
    require_vetting: Annotated[
        bool,
        typer.Option(
            "--require-vetting",
            help="The tenant's safety agent vets it before any worker may take it.",
        ),
    ] = False,
    workflow_type: Annotated[
        str | None,
        typer.Option(
            help="Run a pattern instead (orchestrator_worker, hierarchical, market, swarm) "
            "with --payload as its workflow_data; the control plane's workflow runner runs it."
        ),
    ] = None,
) -> None:
    """Submit a task for the agents with ``--capability`` (or a ``--workflow-type``)."""
    if strategy is not None and strategy not in STRATEGIES:
        fail(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    try:
        body = jsonlib.loads(payload)
    except ValueError:
        fail("Invalid JSON for --payload")
    if not isinstance(body, dict):
        fail("--payload must be a JSON object")
    if workflow_type is not None:
        if capability is not None or strategy is not None or to_agent is not None:
            fail("--workflow-type replaces --capability, --strategy and --to-agent")
        try:
            kind = parse_workflow_type(workflow_type)
            body = check_workflow_data(kind, body)
        except ValidationError as exc:
            fail(str(exc))
        capability, task_type = workflow_capability(kind), task_type or kind
    elif capability is None:
        fail("give --capability or --workflow-type")
    request = {
        "capability": capability,
        "payload": body,
        "task_id": task_id,
        "task_type": task_type,
        "priority": _priority(priority),
        "timeout_seconds": timeout,
        "max_attempts": max_attempts,
        "strategy": strategy,
        "to_agent": to_agent,
        "requires_approval": requires_approval,
        "require_vetting": require_vetting or None,
    }
    target.show(
        lambda backend, tenant: backend.submit_task(tenant, request),
        lambda doc: status_line("task", doc["task_id"], doc),
    )


def _task_row(x: dict[str, Any]) -> list[str]:
    return [
        x["task_id"],
        x["task_type"],
        x["status"],
        str(x.get("agent_id") or "-"),
        str(x["priority"]),
        str(x.get("attempt", 1)),
        x["submitted_at"],
    ]


@task_app.command("list")
@with_target
def task_list(
    target: Target,
    status: Annotated[str | None, typer.Option(help="e.g. offered, completed.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only tasks of this agent.")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    cursor: Annotated[
        str | None, typer.Option(help="Start after the page that printed this next cursor.")
    ] = None,
) -> None:
    """List the tasks of a tenant, newest first; page on with --cursor (every task is
    reachable) or --offset (up to 10,000)."""
    params = {
        "status": status.lower() if status else None,
        "agent_id": agent,
        "limit": limit,
        "offset": offset,
        "cursor": cursor,
    }
    columns = ["task", "type", "status", "agent", "priority", "attempt", "submitted"]
    target.page("task", params, columns, _task_row)


@task_app.command("show")
@with_target
def task_show(task_id: TaskArg, target: Target) -> None:
    """Show one task."""
    target.one("task", task_id)


@task_app.command("cancel")
@with_target
def task_cancel(task_id: TaskArg, target: Target, reason: ReasonOpt = "") -> None:
    """Cancel a task that has not finished."""
    target.change("task", task_id, "cancel", reason)


@task_app.command("retry")
@with_target
def task_retry(task_id: TaskArg, target: Target) -> None:
    """Replay a failed, timed-out or dead-lettered task."""
    target.change("task", task_id, "retry")
