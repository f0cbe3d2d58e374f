"""``agentmesh approval list|show|approve|reject``: decide the tenant's approval gates,
on the local store or (``--api-url``) through a running control plane's REST API."""

from __future__ import annotations

import getpass
import json as jsonlib
from typing import Annotated, Any

import typer

from agentmesh.cli.backends import Backend, LocalBackend, RemoteBackend
from agentmesh.cli.output import console, fail
from agentmesh.cli.target import Target, with_target

approval_app = typer.Typer(
    help="Approve or reject tasks and tool calls waiting for a person.", no_args_is_help=True
)
ApprovalArg = Annotated[str, typer.Argument(help="Approval id (see `agentmesh approval list`).")]
CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why (kept in the audit).")]


def register(app: typer.Typer) -> None:
    """Add the ``approval`` group to the main CLI."""
    app.add_typer(approval_app, name="approval")


async def _list(backend: Backend, tenant: str) -> dict[str, Any]:
    if isinstance(backend, RemoteBackend):
        return await backend._call("GET", f"/v1/tenants/{tenant}/approvals")
    assert isinstance(backend, LocalBackend)
    from agentmesh.commands.approvals import ListApprovals

    await backend.p.projector.catch_up()
    items = await backend.bus.query(ListApprovals(tenant))
    return {"items": items, "total": len(items)}


async def _get(backend: Backend, tenant: str, approval_id: str) -> dict[str, Any]:
    if isinstance(backend, RemoteBackend):
        return await backend._call("GET", f"/v1/tenants/{tenant}/approvals/{approval_id}")
    assert isinstance(backend, LocalBackend)
    from agentmesh.commands.approvals import GetApproval

    doc: dict[str, Any] = await backend.bus.query(GetApproval(tenant, approval_id))
    return doc


async def _decide(
    backend: Backend, tenant: str, approval_id: str, decision: str, body: dict[str, Any]
) -> dict[str, Any]:
    if isinstance(backend, RemoteBackend):
        action = "approve" if decision == "approved" else "reject"
        return await backend._call(
            "POST", f"/v1/tenants/{tenant}/approvals/{approval_id}/{action}", body=body
        )
    assert isinstance(backend, LocalBackend)
    from agentmesh.commands.approvals import DecideApproval

    await backend.bus.execute(
        DecideApproval(
            tenant,
            approval_id,
            decision,
            decided_by=f"cli:{getpass.getuser()}",
            roles=("admin",),  # whoever can open the store directly administers it
            comment=body.get("comment", ""),
            edits=body.get("arguments"),
            args_sha256=body.get("args_sha256"),
            call_id=body.get("call_id"),
        )
    )
    return await _get(backend, tenant, approval_id)


def _row(a: dict[str, Any]) -> list[str]:
    what = f"tool {a['tool']}" if a.get("tool") else f"task {a['task']['capability']}"
    return [
        a["approval_id"],
        what,
        a["reason"],
        jsonlib.dumps(a["arguments"])[:60],
        a.get("deadline_at") or "-",
        a.get("required_role") or "-",
    ]


def _render_list(doc: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"pending approvals ({doc['total']})")
    for c in ("approval", "what", "reason", "arguments", "deadline", "role"):
        table.add_column(c)
    for a in doc["items"]:
        table.add_row(*_row(a))
    console.print(table)


def _render_one(doc: dict[str, Any]) -> None:
    for key in ("approval_id", "status", "kind", "reason", "tool", "call_id", "args_sha256"):
        if doc.get(key):
            console.print(f"{key}: {doc[key]}", markup=False, highlight=False)
    console.print(f"arguments: {jsonlib.dumps(doc['arguments'])}", markup=False, highlight=False)
    if doc.get("reasoning"):
        console.print(f"reasoning: {doc['reasoning']}", markup=False, highlight=False)
    if doc.get("decided_by"):
        console.print(
            f"decided by {doc['decided_by']}: {doc.get('comment') or '-'}",
            markup=False,
            highlight=False,
        )


@approval_app.command("list")
@with_target
def approval_list(target: Target) -> None:
    """List the tenant's pending approvals."""
    target.show(_list, _render_list)


@approval_app.command("show")
@with_target
def approval_show(approval_id: ApprovalArg, target: Target) -> None:
    """Show one approval: task, tool call, arguments, reasoning, decision."""
    target.show(lambda b, t: _get(b, t, approval_id), _render_one)


def _body(
    comment: str, arguments: str | None, args_sha256: str | None, call_id: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"comment": comment}
    if arguments is not None:
        try:
            edits = jsonlib.loads(arguments)
        except ValueError:
            fail("Invalid JSON for --arguments")
        if not isinstance(edits, dict):
            fail("--arguments must be a JSON object")
        body["arguments"] = edits
    if args_sha256 is not None:
        body["args_sha256"] = args_sha256
    if call_id is not None:
        body["call_id"] = call_id
    return body


def _decided_line(doc: dict[str, Any]) -> None:
    console.print(
        f"approval {doc['approval_id']}: {doc['status']} (task {doc['task']['status']})",
        markup=False,
        highlight=False,
    )


@approval_app.command("approve")
@with_target
def approval_approve(
    approval_id: ApprovalArg,
    target: Target,
    comment: CommentOpt = "",
    arguments: Annotated[
        str | None, typer.Option(help="Edited arguments (JSON object) to run with instead.")
    ] = None,
    args_sha256: Annotated[
        str | None, typer.Option(help="The args_sha256 you reviewed (refused if it changed).")
    ] = None,
    call_id: Annotated[str | None, typer.Option(help="The tool call you reviewed.")] = None,
) -> None:
    """Approve: the task is offered (or the tool call runs), exactly once."""
    body = _body(comment, arguments, args_sha256, call_id)
    target.show(lambda b, t: _decide(b, t, approval_id, "approved", body), _decided_line)


@approval_app.command("reject")
@with_target
def approval_reject(
    approval_id: ApprovalArg,
    target: Target,
    comment: CommentOpt = "",
    args_sha256: Annotated[
        str | None, typer.Option(help="The args_sha256 you reviewed (refused if it changed).")
    ] = None,
    call_id: Annotated[str | None, typer.Option(help="The tool call you reviewed.")] = None,
) -> None:
    """Reject with ``--comment`` (the reason): a task ends rejected, a tool call is refused."""
    body = _body(comment, None, args_sha256, call_id)
    target.show(lambda b, t: _decide(b, t, approval_id, "rejected", body), _decided_line)


@approval_app.command("webhook-key")
def approval_webhook_key(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Tenant (default AGENTMESH_TENANT).")
    ] = None,
) -> None:
    """Print the tenant's approval-webhook HMAC key (hex), derived from this control
    plane's JWT_SECRET_KEY: the receiver checks X-AgentMesh-Signature with it."""
    from agentmesh.cli.target import settings
    from agentmesh.runtime.approval_webhook import webhook_key

    config = settings().with_secrets()
    if not config.jwt_secret_key:
        fail("no JWT_SECRET_KEY: the webhook key derives from it")
    console.print(
        webhook_key(config.jwt_secret_key, tenant or config.agentmesh_tenant).hex(),
        markup=False,
        highlight=False,
    )
