"""``agentmesh token``, ``agentmesh task`` and ``agentmesh agent list/show/pause/resume/terminate``.

Every command works against the local store (``DATABASE_URL``) or, with ``--api-url``
and ``--token`` (or ``AGENTMESH_API_URL`` / ``AGENTMESH_TOKEN``), against a running
control plane. ``--json`` prints machine-readable output; otherwise Rich tables. Errors
are one red line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar

import typer

from agentmesh.cli.output import console, fail, print_json
from agentmesh.errors import AgentMeshError

T = TypeVar("T")

token_app = typer.Typer(help="Mint API tokens (JWT).", no_args_is_help=True)
task_app = typer.Typer(help="Submit and manage tasks.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", "-t", help="Tenant (default AGENTMESH_TENANT).")
]
ApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--api-url", envvar="AGENTMESH_API_URL", help="Use a running control plane at this URL."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="AGENTMESH_TOKEN", help="Bearer token for --api-url."),
]
LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="Page size.")]
OffsetOpt = Annotated[int, typer.Option(min=0, max=10000, help="Skip this many.")]


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


# -- backends ---------------------------------------------------------------------------
class Backend(Protocol):
    async def list_agents(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]: ...

    async def get_agent(self, tenant: str, agent_id: str) -> dict[str, Any]: ...

    async def agent_action(
        self, tenant: str, agent_id: str, action: str, reason: str
    ) -> dict[str, Any]: ...

    async def submit_task(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def list_tasks(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]: ...

    async def get_task(self, tenant: str, task_id: str) -> dict[str, Any]: ...

    async def task_action(
        self, tenant: str, task_id: str, action: str, reason: str
    ) -> dict[str, Any]: ...


class LocalBackend:
    """Commands and queries on the local store, through the CQRS bus."""

    def __init__(self, persistence: Any, bus: Any) -> None:
        self.p = persistence
        self.bus = bus

    async def list_agents(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        from agentmesh.commands import ListAgents
        from agentmesh.domain import AgentStatus
        from agentmesh.store.queries import AgentListQuery

        status = params.get("status")
        query = AgentListQuery(
            status=AgentStatus(status.upper()) if status else None,
            agent_type=params.get("agent_type"),
            capabilities=tuple(params.get("capabilities") or ()),
            limit=params["limit"],
            offset=params["offset"],
        )
        await self.p.projector.catch_up()
        page = await self.bus.query(ListAgents(tenant, query))
        return {"agents": page.items, "pagination": page.pagination()}

    async def get_agent(self, tenant: str, agent_id: str) -> dict[str, Any]:
        from agentmesh.commands import GetAgent

        await self.p.projector.catch_up()
        doc: dict[str, Any] = await self.bus.query(GetAgent(tenant, agent_id))
        return doc

    async def agent_action(
        self, tenant: str, agent_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        from agentmesh.commands import PauseAgent, ResumeAgent, TerminateAgent

        await self.get_agent(tenant, agent_id)
        command: object = {
            "pause": PauseAgent(tenant, agent_id, reason),
            "resume": ResumeAgent(tenant, agent_id),
            "terminate": TerminateAgent(tenant, agent_id, reason),
        }[action]
        await self.bus.execute(command)
        return await self.get_agent(tenant, agent_id)

    async def submit_task(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        from agentmesh.commands import SubmitTask

        result = await self.bus.execute(SubmitTask(tenant_id=tenant, source="cli", **body))
        return await self.get_task(tenant, str(result.aggregate_id))

    async def list_tasks(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        from agentmesh.commands import ListTasks

        await self.p.projector.catch_up()
        page = await self.bus.query(ListTasks(tenant, **params))
        return {"tasks": page.items, "pagination": page.pagination()}

    async def get_task(self, tenant: str, task_id: str) -> dict[str, Any]:
        from agentmesh.commands import GetTask

        await self.p.projector.catch_up()
        doc: dict[str, Any] = await self.bus.query(GetTask(tenant, task_id))
        return doc

    async def task_action(
        self, tenant: str, task_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        from agentmesh.commands import CancelTask, RetryTask

        await self.get_task(tenant, task_id)
        command: object = (
            CancelTask(tenant, task_id, reason)
            if action == "cancel"
            else RetryTask(tenant, task_id)
        )
        await self.bus.execute(command)
        return await self.get_task(tenant, task_id)


class RemoteBackend:
    """The same operations over the REST API of a running control plane."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def _call(
        self, method: str, path: str, *, params: Any = None, body: Any = None
    ) -> dict[str, Any]:
        import httpx

        try:
            r = await self.client.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise AgentMeshError(
                f"cannot reach the control plane at {self.client.base_url}: {exc}",
                code="API_UNREACHABLE",
            ) from None
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text[:200] or r.reason_phrase, "code": f"HTTP_{r.status_code}"}
        if r.status_code >= 400:
            raise AgentMeshError(
                f"{data.get('error', 'error')} ({data.get('code', r.status_code)}, "
                f"HTTP {r.status_code})",
                code=str(data.get("code", "API_ERROR")),
            )
        if not isinstance(data, dict):
            raise AgentMeshError("unexpected answer from the control plane", code="API_ERROR")
        for key in ("timestamp", "api_version"):
            data.pop(key, None)
        return data

    async def list_agents(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        q = {k: v for k, v in params.items() if v not in (None, [], ())}
        if q.get("status"):
            q["status"] = str(q["status"]).upper()
        return await self._call("GET", f"/v1/tenants/{tenant}/agents", params=q)

    async def get_agent(self, tenant: str, agent_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/tenants/{tenant}/agents/{agent_id}")

    async def agent_action(
        self, tenant: str, agent_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        body = {"reason": reason} if action != "resume" and reason else None
        return await self._call(
            "POST", f"/v1/tenants/{tenant}/agents/{agent_id}/{action}", body=body
        )

    async def submit_task(self, tenant: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = {k: v for k, v in body.items() if v is not None}
        return await self._call("POST", f"/v1/tenants/{tenant}/tasks", body=payload)

    async def list_tasks(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        q = {k: v for k, v in params.items() if v is not None}
        return await self._call("GET", f"/v1/tenants/{tenant}/tasks", params=q)

    async def get_task(self, tenant: str, task_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/v1/tenants/{tenant}/tasks/{task_id}")

    async def task_action(
        self, tenant: str, task_id: str, action: str, reason: str
    ) -> dict[str, Any]:
        body = {"reason": reason} if action == "cancel" and reason else None
        return await self._call("POST", f"/v1/tenants/{tenant}/tasks/{task_id}/{action}", body=body)


def _settings() -> Any:
    from pydantic import ValidationError as SettingsError

    from agentmesh.config import get_settings

    try:
        return get_settings()
    except SettingsError as exc:
        first = exc.errors()[0]
        fail(f"invalid setting {'.'.join(str(p) for p in first['loc']).upper()}: {first['msg']}")


def _run(api_url: str | None, token: str | None, work: Callable[[Backend], Awaitable[T]]) -> T:
    """Run ``work`` on the remote backend (with --api-url) or the local store."""
    if api_url and not token:
        fail("--api-url needs --token (or AGENTMESH_TOKEN); mint one with `agentmesh token create`")

    async def remote() -> T:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=str(api_url).rstrip("/"), headers=headers, timeout=30
        ) as client:
            return await work(RemoteBackend(client))

    async def local() -> T:
        from agentmesh.commands import build_bus
        from agentmesh.security.crypto import encryption_from_settings
        from agentmesh.store.persistence import open_persistence

        settings = _settings()
        crypto = encryption_from_settings(settings)
        p = await open_persistence(settings.effective_database_url)
        try:
            return await work(LocalBackend(p, build_bus(p.store, p.read_models, crypto)))
        finally:
            await p.close()

    try:
        return asyncio.run(remote() if api_url else local())
    except AgentMeshError as exc:
        fail(exc.message)
    except ValueError as exc:  # domain guards that raise plain ValueError
        fail(str(exc))


def _tenant(tenant: str | None) -> str:
    return tenant or _settings().agentmesh_tenant


# -- rendering --------------------------------------------------------------------------
def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def _details(title: str, doc: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in doc.items():
        text = v if isinstance(v, str) else jsonlib.dumps(v, default=str)
        table.add_row(k, text)
    console.print(table)


def _page_note(pagination: dict[str, Any]) -> str:
    return (
        f"{pagination['offset'] + 1}-{pagination['offset'] + pagination.get('limit', 0)} "
        f"of {pagination['total']}"
        if pagination["total"]
        else "0"
    )


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
        svc = token_service_from_settings(_settings())
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
def agent_list(
    tenant: TenantOpt = None,
    status: Annotated[
        str | None, typer.Option(help="AVAILABLE, BUSY, PAUSED, UNHEALTHY or TERMINATED.")
    ] = None,
    agent_type: Annotated[str | None, typer.Option("--type", help="Agent type.")] = None,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", "-c", help="Required capability.")
    ] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the agents of a tenant (registered in the store)."""
    t = _tenant(tenant)
    caps = [c.strip() for item in capability or [] for c in item.split(",") if c.strip()]
    params = {
        "status": status,
        "agent_type": agent_type,
        "capabilities": caps,
        "limit": limit,
        "offset": offset,
    }
    page = _run(api_url, token, lambda b: b.list_agents(t, params))
    if json:
        print_json(page)
        return
    rows = [
        [
            a["agent_id"],
            a["name"],
            a["agent_type"],
            a["status"],
            ", ".join(f"{c['name']}:{c['level']}" for c in a["capabilities"]),
            str(a.get("tasks_completed", 0)),
        ]
        for a in page["agents"]
    ]
    _table(
        f"agents of {t} ({_page_note(page['pagination'])})",
        ["agent", "name", "type", "status", "capabilities", "done"],
        rows,
    )


def agent_show(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show one agent."""
    t = _tenant(tenant)
    doc = _run(api_url, token, lambda b: b.get_agent(t, agent_id))
    if json:
        print_json(doc)
    else:
        _details(f"agent {agent_id}", doc)


def _agent_action(
    action: str,
    agent_id: str,
    tenant: str | None,
    reason: str,
    api_url: str | None,
    token: str | None,
    json: bool,
) -> None:
    t = _tenant(tenant)
    doc = _run(api_url, token, lambda b: b.agent_action(t, agent_id, action, reason))
    if json:
        print_json(doc)
    else:
        console.print(f"agent {agent_id}: {doc['status']}", markup=False, highlight=False)


ReasonOpt = Annotated[str, typer.Option(help="Why (recorded with the event).")]


def agent_pause(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    tenant: TenantOpt = None,
    reason: ReasonOpt = "",
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Pause an idle agent."""
    _agent_action("pause", agent_id, tenant, reason, api_url, token, json)


def agent_resume(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Resume a paused agent."""
    _agent_action("resume", agent_id, tenant, "", api_url, token, json)


def agent_terminate(
    agent_id: Annotated[str, typer.Argument(help="Agent id.")],
    tenant: TenantOpt = None,
    reason: ReasonOpt = "",
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Terminate an agent (final)."""
    _agent_action("terminate", agent_id, tenant, reason, api_url, token, json)


# -- tasks ------------------------------------------------------------------------------
def _priority(value: str) -> int | str:
    return int(value) if value.isdigit() else value.lower()


@task_app.command("submit")
def task_submit(
    capability: Annotated[str, typer.Option("--capability", "-c", help="Required capability.")],
    payload: Annotated[str, typer.Option(help="Task payload as a JSON object.")] = "{}",
    tenant: TenantOpt = None,
    task_id: Annotated[str | None, typer.Option(help="Task id (default: a new uuid4).")] = None,
    task_type: Annotated[str | None, typer.Option(help="Task type (default: capability).")] = None,
    priority: Annotated[str, typer.Option(help="1-5 or low/medium/high/urgent.")] = "medium",
    timeout: Annotated[int, typer.Option(min=1, max=3600, help="Seconds.")] = 300,
    max_retries: Annotated[int, typer.Option(min=0, max=5)] = 3,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Submit a task for the agents with ``--capability``."""
    try:
        body = jsonlib.loads(payload)
    except ValueError:
        fail("Invalid JSON for --payload")
    if not isinstance(body, dict):
        fail("--payload must be a JSON object")
    t = _tenant(tenant)
    request = {
        "capability": capability,
        "payload": body,
        "task_id": task_id,
        "task_type": task_type,
        "priority": _priority(priority),
        "timeout_seconds": timeout,
        "max_retries": max_retries,
    }
    doc = _run(api_url, token, lambda b: b.submit_task(t, request))
    if json:
        print_json(doc)
    else:
        console.print(f"task {doc['task_id']}: {doc['status']}", markup=False, highlight=False)


@task_app.command("list")
def task_list(
    tenant: TenantOpt = None,
    status: Annotated[str | None, typer.Option(help="e.g. offered, completed.")] = None,
    agent: Annotated[str | None, typer.Option(help="Only tasks of this agent.")] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the tasks of a tenant, newest first."""
    t = _tenant(tenant)
    params = {
        "status": status.lower() if status else None,
        "agent_id": agent,
        "limit": limit,
        "offset": offset,
    }
    page = _run(api_url, token, lambda b: b.list_tasks(t, params))
    if json:
        print_json(page)
        return
    rows = [
        [
            x["task_id"],
            x["task_type"],
            x["status"],
            str(x.get("agent_id") or "-"),
            str(x["priority"]),
            str(x.get("attempt", 1)),
            x["submitted_at"],
        ]
        for x in page["tasks"]
    ]
    _table(
        f"tasks of {t} ({_page_note(page['pagination'])})",
        ["task", "type", "status", "agent", "priority", "attempt", "submitted"],
        rows,
    )


@task_app.command("show")
def task_show(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show one task."""
    t = _tenant(tenant)
    doc = _run(api_url, token, lambda b: b.get_task(t, task_id))
    if json:
        print_json(doc)
    else:
        _details(f"task {task_id}", doc)


@task_app.command("cancel")
def task_cancel(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    tenant: TenantOpt = None,
    reason: ReasonOpt = "",
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Cancel a task that has not finished."""
    t = _tenant(tenant)
    doc = _run(api_url, token, lambda b: b.task_action(t, task_id, "cancel", reason))
    if json:
        print_json(doc)
    else:
        console.print(f"task {task_id}: {doc['status']}", markup=False, highlight=False)


@task_app.command("retry")
def task_retry(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """Replay a failed, timed-out or dead-lettered task."""
    t = _tenant(tenant)
    doc = _run(api_url, token, lambda b: b.task_action(t, task_id, "retry", ""))
    if json:
        print_json(doc)
    else:
        console.print(f"task {task_id}: {doc['status']}", markup=False, highlight=False)
