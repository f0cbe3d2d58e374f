"""Authentication and authorization dependencies: bearer JWT -> :class:`Principal`.

Every protected route declares ``Depends(require("<operationId>"))``; the permission it
needs comes from :data:`agentmesh.security.rbac.OPERATION_PERMISSIONS`. Failures are
audited (``auth_failure`` / ``unauthorized_access``) under the tenant of the path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agentmesh.api.context import ApiContext, get_context
from agentmesh.errors import Forbidden, NotFound, Unauthorized
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.rbac import PLATFORM_TENANT
from agentmesh.security.tenancy import Principal, Scope, check_operation, check_tenant

bearer = HTTPBearer(auto_error=False, description="JWT from `agentmesh token create`")


def _path_tenant(request: Request) -> str:
    value = request.path_params.get("tenant_id")
    return str(value) if value else PLATFORM_TENANT


async def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ctx: ApiContext = Depends(get_context),
) -> Principal:
    """The caller of a bearer token (401 AUTH_REQUIRED / AUTH_INVALID otherwise)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        await ctx.record(
            AuditAction.AUTH_FAILURE,
            AuditStatus.FAILURE,
            tenant_id=_path_tenant(request),
            request=request,
            details={"reason": "missing bearer token"},
        )
        raise Unauthorized("Authentication required", code="AUTH_REQUIRED")
    try:
        claims = ctx.tokens.verify(credentials.credentials)
    except Unauthorized as exc:
        await ctx.record(
            AuditAction.AUTH_FAILURE,
            AuditStatus.FAILURE,
            tenant_id=_path_tenant(request),
            request=request,
            details={"reason": exc.message},
        )
        raise
    principal = Principal.from_claims(claims)
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


def require(operation: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: authenticated, allowed to call ``operation``, and (for routes with
    a ``tenant_id`` path parameter) acting inside that tenant's collection scope.

    An object of another tenant is 404 for every role (checked before the role), a
    collection of another tenant 403; both audited."""

    async def dependency(
        request: Request,
        principal: Principal = Depends(authenticate),
        ctx: ApiContext = Depends(get_context),
    ) -> Principal:
        tenant = request.path_params.get("tenant_id")
        object_route = tenant is not None and _is_object_route(request)
        if object_route and not principal.can_access_tenant(str(tenant)):
            # another tenant's object is absent for every role: 404 before the role check,
            # so a 403 never tells a caller that the object exists (BOLA)
            await ensure_tenant(
                ctx, request, principal, str(tenant), "object", operation, _missing(request)
            )
        try:
            check_operation(principal, operation)
        except Forbidden:
            await ctx.record(
                AuditAction.UNAUTHORIZED_ACCESS,
                AuditStatus.DENIED,
                tenant_id=str(tenant) if tenant else principal.tenant_id,
                request=request,
                principal=principal,
                details={"operation": operation, "reason": "role"},
            )
            raise
        if tenant is not None:
            scope: Scope = "object" if _is_object_route(request) else "collection"
            await ensure_tenant(
                ctx, request, principal, str(tenant), scope, operation, _missing(request)
            )
        return principal

    dependency.__name__ = f"require_{operation}"
    return dependency


def _missing(request: Request) -> NotFound | None:
    """The exact error a genuinely absent object of this route raises."""
    p = request.path_params
    if "agent_id" in p:
        return NotFound(f"Agent {p['agent_id']} not found", code="AGENT_NOT_FOUND")
    if "task_id" in p:
        return NotFound(f"Task {p['task_id']} not found", code="TASK_NOT_FOUND")
    if "approval_id" in p:
        return NotFound(f"approval {p['approval_id']} not found", code="APPROVAL_NOT_FOUND")
    if "message_id" in p:
        return NotFound(f"Message with ID: {p['message_id']} not found.", code="MESSAGE_NOT_FOUND")
    return None


def _is_object_route(request: Request) -> bool:
    return any(k != "tenant_id" for k in request.path_params)


async def ensure_tenant(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    tenant_id: str,
    scope: Scope,
    operation: str,
    missing: NotFound | None = None,
) -> None:
    """Refuse (and audit) a call into another tenant: 403 collection / 404 object."""
    try:
        check_tenant(principal, tenant_id, scope, missing)
    except (Forbidden, NotFound):
        await ctx.record(
            AuditAction.UNAUTHORIZED_ACCESS,
            AuditStatus.DENIED,
            tenant_id=tenant_id,
            request=request,
            principal=principal,
            details={"operation": operation, "reason": "cross-tenant"},
        )
        raise
