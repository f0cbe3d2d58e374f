"""The options every control command shares (``--tenant``, ``--api-url``, ``--token``,
``--json``) and what they decide: which backend a command runs on, for which tenant, and
whether it prints JSON or a Rich table."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json as jsonlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from agentmesh.cli.backends import Backend, Kind, LocalBackend, RemoteBackend
from agentmesh.cli.output import console, fail, print_json
from agentmesh.errors import AgentMeshError

T = TypeVar("T")
Doc = dict[str, Any]

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


def settings() -> Any:
    """The settings, or one red line naming the first invalid one."""
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

        config = settings()
        crypto = encryption_from_settings(config)
        p = await open_persistence(config.effective_database_url, crypto=crypto)
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


@dataclass(frozen=True)
class Target:
    """What the shared options of one command invocation say."""

    tenant_option: str | None
    api_url: str | None
    token: str | None
    json: bool

    @functools.cached_property
    def tenant(self) -> str:
        """``--tenant``, or the settings' ``AGENTMESH_TENANT``."""
        return self.tenant_option or settings().agentmesh_tenant

    def show(
        self, work: Callable[[Backend, str], Awaitable[Doc]], render: Callable[[Doc], None]
    ) -> None:
        """Run ``work(backend, tenant)``; print its answer as JSON or with ``render``."""
        tenant = self.tenant
        doc = _run(self.api_url, self.token, lambda backend: work(backend, tenant))
        if self.json:
            print_json(doc)
        else:
            render(doc)

    def page(
        self,
        kind: Kind,
        params: dict[str, Any],
        columns: list[str],
        row: Callable[[Doc], list[str]],
    ) -> None:
        """A page of ``kind`` objects, as a table of ``columns`` (one ``row`` each)."""

        def render(page: Doc) -> None:
            title = f"{kind}s of {self.tenant} ({_page_note(page['pagination'])})"
            _table(title, columns, [row(x) for x in page[f"{kind}s"]])
            if page.get("next_cursor"):
                console.print(f"next page: --cursor {page['next_cursor']}")

        self.show(lambda backend, tenant: backend.page(kind, tenant, params), render)

    def one(self, kind: Kind, object_id: str) -> None:
        """One object, as a table of its fields."""
        self.show(
            lambda backend, tenant: backend.get(kind, tenant, object_id),
            functools.partial(_details, f"{kind} {object_id}"),
        )

    def change(self, kind: Kind, object_id: str, action: str, reason: str = "") -> None:
        """Run ``action`` on an object; print its status afterwards."""
        self.show(
            lambda backend, tenant: backend.change(kind, tenant, object_id, action, reason),
            functools.partial(status_line, kind, object_id),
        )


def with_target(command: Callable[..., None]) -> Callable[..., None]:
    """Give a control command the shared options: ``--tenant`` in the place of its
    ``target: Target`` parameter, then ``--api-url``, ``--token`` and ``--json`` after its
    own. It is called with the :class:`Target` they make."""
    own = inspect.signature(command, eval_str=True).parameters.values()
    tenant = _keyword("tenant", TenantOpt, None)
    params = [tenant if p.name == "target" else p.replace(kind=p.KEYWORD_ONLY) for p in own]
    params += [
        _keyword("api_url", ApiUrlOpt, None),
        _keyword("token", TokenOpt, None),
        _keyword("json", JsonOpt, False),
    ]

    @functools.wraps(command)
    def run(
        *, tenant: str | None, api_url: str | None, token: str | None, json: bool, **own: Any
    ) -> None:
        command(**own, target=Target(tenant, api_url, token, json))

    # Typer reads the options from the signature
    run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return run


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


# -- rendering --------------------------------------------------------------------------
def status_line(kind: Kind, object_id: str, doc: Doc) -> None:
    """``<kind> <id>: <status>``."""
    console.print(f"{kind} {object_id}: {doc['status']}", markup=False, highlight=False)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def _details(title: str, doc: Doc) -> None:
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
