"""``agentmesh audit list``, ``agentmesh audit verify`` and ``agentmesh token revoke``.

``list`` reads the local store (``DATABASE_URL``), first bringing the trail up to date
with the event store, or, with ``--api-url`` and ``--token`` (or ``AGENTMESH_API_URL`` /
``AGENTMESH_TOKEN``), asks a running control plane (``GET /v1/tenants/{t}/audit``).
``verify`` recomputes the hash chain of the local store and exits 1 when it is broken.
``token revoke`` records a revoked token or signing key in the local store's audit trail,
where every control plane on that database picks it up within seconds.
Errors are one red line on stderr and a non-zero exit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from agentmesh.cli.output import console, fail, print_json
from agentmesh.cli.serving import run_or_fail
from agentmesh.cli.target import ApiUrlOpt, JsonOpt, TenantOpt, TokenOpt, settings
from agentmesh.errors import AgentMeshError

T = TypeVar("T")

audit_app = typer.Typer(help="The audit trail: list and verify.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group to the main CLI."""
    app.add_typer(audit_app, name="audit")
    from agentmesh.cli.control_commands import token_app

    token_app.command("revoke")(token_revoke)


def token_revoke(
    token: Annotated[
        str | None, typer.Option("--token", help="The JWT to revoke (its jti is recorded).")
    ] = None,
    jti: Annotated[str | None, typer.Option(help="The id (jti) of a token to revoke.")] = None,
    key: Annotated[
        bool, typer.Option("--key", help="Revoke the current signing key: every token it signed.")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Revoke a token (``--token`` or ``--jti``) or the signing key (``--key``): REST, the
    WebSocket and the message router refuse it with 401 from then on."""
    import jwt

    from agentmesh.security.revocation import record_revocation
    from agentmesh.security.tokens import token_service_from_settings

    if token is not None:
        try:
            found = jwt.decode(token, options={"verify_signature": False}).get("jti")
        except jwt.PyJWTError as exc:
            fail(f"not a JWT: {exc}")
        if not isinstance(found, str) or not found:
            fail("the token has no jti claim")
        jti = found
    kid = None
    if key:
        try:
            kid = token_service_from_settings(settings()).key_id
        except AgentMeshError as exc:
            fail(exc.message)
    if not jti and not kid:
        fail("give --token, --jti or --key")

    async def work(p: Any, audit: Any) -> None:
        await record_revocation(audit, jti=jti, kid=kid)

    _local(work)
    if json:
        print_json({"revoked_jti": jti, "revoked_kid": kid})
    else:
        typer.echo(
            f"revoked {'token ' + jti if jti else ''}{' and ' if jti and kid else ''}"
            f"{'signing key ' + kid if kid else ''}"
        )


def _local(work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``work(persistence, audit_store)`` on the local store, always close."""
    from agentmesh.security.crypto import encryption_from_settings
    from agentmesh.store.audit_log import audit_store_for
    from agentmesh.store.persistence import open_persistence

    config = settings()
    url = config.effective_database_url

    async def main() -> T:
        p = await open_persistence(url, crypto=encryption_from_settings(config))
        audit = audit_store_for(url, db=p.db)
        try:
            await audit.connect()
            return await work(p, audit)
        finally:
            await audit.close()
            await p.close()

    return run_or_fail(main())


def _remote(api_url: str, token: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    """GET ``path`` of a running control plane; its error body becomes one line."""
    import httpx

    try:
        r = httpx.get(
            api_url.rstrip("/") + path,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach the control plane at {api_url}: {exc}")
    try:
        data = r.json()
    except ValueError:
        data = {"error": r.text[:200] or r.reason_phrase, "code": f"HTTP_{r.status_code}"}
    if r.status_code >= 400 or not isinstance(data, dict):
        err = data if isinstance(data, dict) else {}
        fail(f"{err.get('error', 'error')} ({err.get('code', 'API_ERROR')}, HTTP {r.status_code})")
    for key in ("timestamp", "api_version"):
        data.pop(key, None)
    return data


@audit_app.command("list")
def audit_list(
    tenant: TenantOpt = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. task_completed, auth_failure.")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor (token subject, agent id or system).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 50,
    offset: Annotated[int, typer.Option(min=0, max=100000, help="Skip this many.")] = 0,
    api_url: ApiUrlOpt = None,
    token: TokenOpt = None,
    json: JsonOpt = False,
) -> None:
    """List the audit entries of a tenant, newest first (API and domain entries)."""
    t = tenant or settings().agentmesh_tenant
    if api_url:
        if not token:
            fail(
                "--api-url needs --token (or AGENTMESH_TOKEN); mint one with `agentmesh token create`"
            )
        params = {
            k: v
            for k, v in {"action": action, "actor": actor, "limit": limit, "offset": offset}.items()
            if v is not None
        }
        page = _remote(api_url, token, f"/v1/tenants/{t}/audit", params)
    else:
        page = _list_local(t, action, actor, limit, offset)
    if json:
        print_json(page)
        return
    _render(t, page)


def _list_local(
    tenant: str, action: str | None, actor: str | None, limit: int, offset: int
) -> dict[str, Any]:
    from agentmesh.security.audit import AuditAction, AuditFilter

    if action is not None and action not in {a.value for a in AuditAction}:
        fail(f"unknown action {action!r}; one of {', '.join(a.value for a in AuditAction)}")

    async def work(p: Any, audit: Any) -> dict[str, Any]:
        from agentmesh.store.audit_trail import AuditTrail

        p.projector.attach(AuditTrail(audit))
        await p.projector.catch_up()
        flt = AuditFilter(tenant_id=tenant, action=action, actor=actor)
        entries, total = await audit.query(flt, limit=limit, offset=offset)
        has_more = offset + len(entries) < total
        return {
            "entries": [
                {k: v for k, v in e.to_dict().items() if k != "prev_hash"} for e in entries
            ],
            "pagination": {
                "total": total,
                "limit": limit,
                "offset": offset,
                "has_more": has_more,
                "next_offset": offset + len(entries) if has_more else None,
            },
        }

    return _local(work)


def _render(tenant: str, page: dict[str, Any]) -> None:
    from rich.table import Table

    p = page["pagination"]
    shown = f"{p['offset'] + 1}-{p['offset'] + len(page['entries'])}" if page["entries"] else "0"
    table = Table(title=f"audit trail of {tenant} ({shown} of {p['total']}, newest first)")
    for col in ("time", "action", "status", "actor", "resource", "request"):
        table.add_column(col)
    for e in page["entries"]:
        resource = f"{e['resource_type']}:{e['resource_id']}" if e["resource_type"] else "-"
        table.add_row(
            e["timestamp"],
            e["action"],
            e["status"],
            e["actor"] or "-",
            resource,
            e["request_id"] or "-",
        )
    console.print(table)


@audit_app.command("verify")
def audit_verify(tenant: TenantOpt = None, json: JsonOpt = False) -> None:
    """Recompute the hash chain of the local audit trail; exit 1 when it is broken.

    The chain runs through every tenant's entries, so all of it is checked; ``--tenant``
    says how many of the checked entries are that tenant's.
    """
    from agentmesh.security.audit import AuditFilter, verify_integrity

    t = tenant or settings().agentmesh_tenant

    async def work(p: Any, audit: Any) -> tuple[Any, int]:
        report = await verify_integrity(audit)
        _, mine = await audit.query(AuditFilter(tenant_id=t), limit=1)
        return report, mine

    report, mine = _local(work)
    if json:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "first_bad_entry": report.first_bad_entry,
                "tenant_id": t,
                "tenant_entries": mine,
            }
        )
    elif report.ok:
        console.print(
            f"audit trail intact: {report.checked} entries checked ({mine} of {t})",
            markup=False,
            highlight=False,
        )
    else:
        console.print(
            f"audit trail BROKEN at entry {report.first_bad_entry} "
            f"(after {report.checked} intact entries)",
            markup=False,
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)
