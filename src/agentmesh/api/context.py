"""The control plane's dependencies, built once per app in the lifespan."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from loguru import logger

from agentmesh.api.middleware import RequestStats
from agentmesh.api.options import ApiOptions, SecurityLevel
from agentmesh.api.ws import WebSocketHub
from agentmesh.commands import CqrsBus
from agentmesh.commands.messages import Command
from agentmesh.config import Settings
from agentmesh.errors import AgentMeshError, BrokerUnavailable
from agentmesh.mesh import Mesh
from agentmesh.security.audit import AuditAction, AuditEntry, AuditStatus, AuditStore
from agentmesh.security.crypto import EncryptionService
from agentmesh.security.tenancy import Principal
from agentmesh.security.tokens import TokenService
from agentmesh.store.persistence import Persistence
from agentmesh.transports.targets import RouteTargets


@dataclass
class ApiContext:
    """Everything a route needs: settings, tokens, the CQRS bus, read models, audit, hub."""

    settings: Settings
    options: ApiOptions
    level: SecurityLevel
    tokens: TokenService
    persistence: Persistence
    bus: CqrsBus
    crypto: EncryptionService
    audit: AuditStore
    hub: WebSocketHub
    stats: RequestStats
    mesh: Mesh | None = None
    routes: RouteTargets | None = None
    """The brokers ``routing.targets`` may name (POST /messages)."""
    started_at: float = field(default_factory=time.time)

    async def caught_up(self) -> None:
        """Bring the read models up to date (read-your-writes after a command)."""
        await self.persistence.projector.catch_up()

    async def audited_change(
        self,
        command: Command[Any],
        load: Callable[[], Awaitable[dict[str, Any]]],
        *,
        action: AuditAction,
        operation: str,
        tenant_id: str,
        request: Request,
        principal: Principal,
        resource_type: str,
        resource_id: str,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Run a state-changing command on an existing object and audit the outcome.

        ``load`` reads the object (its NotFound is the 404, before any write); ``after``
        runs once the command succeeded. Returns the object as it is afterwards.
        """
        await self.caught_up()  # decide on the latest state, including other writers
        await load()
        try:
            await self.bus.execute(command)
        except Exception as exc:
            await self.record(
                action,
                AuditStatus.FAILURE,
                tenant_id=tenant_id,
                request=request,
                principal=principal,
                resource_type=resource_type,
                resource_id=resource_id,
                details={"operation": operation, "error": str(exc)[:200]},
            )
            raise
        if after is not None:
            await after()
        await self.caught_up()
        doc = await load()
        await self.record(
            action,
            AuditStatus.SUCCESS,
            tenant_id=tenant_id,
            request=request,
            principal=principal,
            resource_type=resource_type,
            resource_id=resource_id,
            details={"operation": operation},
        )
        return doc

    async def record(
        self,
        action: AuditAction,
        status: AuditStatus,
        *,
        tenant_id: str,
        request: Request | None = None,
        principal: Principal | None = None,
        resource_type: str = "",
        resource_id: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit entry; an audit failure is logged, never hides the answer."""
        entry = AuditEntry.new(
            action,
            status,
            tenant_id=tenant_id,
            actor=principal.subject if principal else "",
            resource_type=resource_type,
            resource_id=resource_id,
            request_id=request_id_of(request),
            client_ip=(request.client.host if request and request.client else ""),
            details={
                **({"actor_tenant": principal.tenant_id} if principal else {}),
                **({"path": request.url.path, "method": request.method} if request else {}),
                **(details or {}),
            },
        )
        try:
            await self.audit.append(entry)
        except Exception as exc:  # noqa: BLE001 - audit storage trouble must not turn into a 500
            logger.error("audit append failed ({}): {}", type(exc).__name__, entry.action.value)


def request_id_of(request: Request | None) -> str:
    if request is None:
        return ""
    return str(request.scope.get("state", {}).get("request_id", ""))


def get_context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext` (503 until the lifespan has started)."""
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is None:
        raise BrokerUnavailable("control plane is starting", code="NOT_READY")
    assert isinstance(ctx, ApiContext)
    return ctx


__all__ = ["AgentMeshError", "ApiContext", "get_context", "request_id_of"]
