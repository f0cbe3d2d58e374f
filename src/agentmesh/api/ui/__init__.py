"""The operator web UI, served by the control plane at ``/ui/``.

A single page without a build step: ``index.html``, ``app.js`` (an ES module, vanilla
JS) and ``app.css`` ship in this package. The page talks to the REST API with the
bearer token the operator signed in with and follows ``/ws`` for live updates; it loads
nothing from another origin and runs under the API's CSP at every ``ENVIRONMENT`` level
(no inline script, style or handler).

``/ui/config.json`` gives the page the server's facts it must not duplicate: the role
and operation permission tables of :mod:`agentmesh.security.rbac` (to show only the
buttons a token may use) and the names of statuses and audit actions (for filters).

:func:`mount_ui` adds the routes; they are not part of the OpenAPI document, and an
unknown asset is a 404 with the flat error body (the app's error handlers answer it).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any, get_args

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agentmesh.domain.task import TERMINAL
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.rbac import (
    OPERATION_PERMISSIONS,
    PLATFORM_OPERATIONS,
    PLATFORM_TENANT,
    ROLE_PERMISSIONS,
)

PREFIX = "/ui"
STATIC: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "approvals.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The files of this package the UI serves, with their content types."""


def ui_config() -> dict[str, Any]:
    """What the page reads from ``/ui/config.json`` (no secrets: the same facts as the
    README and the OpenAPI document)."""
    from agentmesh.api.schemas import AgentStatusName, PriorityName, TaskStatusName

    return {
        "roles": {
            role.value: sorted(p.value for p in perms) for role, perms in ROLE_PERMISSIONS.items()
        },
        "operations": {op: perm.value for op, perm in OPERATION_PERMISSIONS.items()},
        "platform_tenant": PLATFORM_TENANT,
        "platform_operations": sorted(PLATFORM_OPERATIONS),
        "agent_statuses": list(get_args(AgentStatusName)),
        "task_statuses": list(get_args(TaskStatusName)),
        "task_terminal": sorted(s.value for s in TERMINAL),
        "priorities": list(get_args(PriorityName)),
        "audit_actions": [a.value for a in AuditAction],
        "audit_statuses": [s.value for s in AuditStatus],
    }


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """The UI's files (read once) and its generated ``config.json``."""
    package = resources.files(__name__)
    assets = {
        name: Asset(package.joinpath(name).read_bytes(), content_type)
        for name, content_type in STATIC.items()
    }
    assets["config.json"] = Asset(orjson.dumps(ui_config()), "application/json")
    return assets


def mount_ui(app: FastAPI) -> None:
    """Serve the UI at ``/ui/`` and redirect ``/ui`` there (outside the OpenAPI schema)."""
    assets = load_assets()

    async def redirect(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    async def asset(request: Request) -> Response:
        name = str(request.path_params["asset"]) or "index.html"
        found = assets.get(name)
        if found is None:
            raise HTTPException(404, "no such UI asset")
        return Response(found.body, media_type=found.content_type)

    app.add_route(PREFIX, redirect, methods=["GET"], name="ui_root", include_in_schema=False)
    app.add_route(
        f"{PREFIX}/{{asset:path}}", asset, methods=["GET"], name="ui_asset", include_in_schema=False
    )
