"""Roles, permissions and the ONE permission table every route and channel uses.

Roles: ``admin``, ``orchestrator``, ``agent``, ``task_executor``,
``observer``. A role grants permissions (:data:`ROLE_PERMISSIONS`); an operation of the
control plane requires exactly one permission (:data:`OPERATION_PERMISSIONS`, keyed by
the OpenAPI ``operationId`` / WebSocket channel). Nothing else decides access.

>>> allowed(["observer"], "list_agents")
True
>>> allowed(["observer"], "create_agent")
False
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from agentmesh.errors import Forbidden, ValidationError


class Role(StrEnum):
    ADMIN = "admin"
    ORCHESTRATOR = "orchestrator"
    AGENT = "agent"
    TASK_EXECUTOR = "task_executor"
    OBSERVER = "observer"


class Permission(StrEnum):
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    AGENTS_CONTROL = "agents:control"
    TASKS_READ = "tasks:read"
    TASKS_WRITE = "tasks:write"
    TASKS_CONTROL = "tasks:control"
    MESSAGES_READ = "messages:read"
    MESSAGES_WRITE = "messages:write"
    TENANT_READ = "tenant:read"
    TENANTS_MANAGE = "tenants:manage"
    AUDIT_READ = "audit:read"
    SYSTEM_READ = "system:read"
    METRICS_READ = "metrics:read"
    SAFETY_ADMIN = "safety:admin"  # put policies, release quarantined agents (admins only)


P = Permission

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.ORCHESTRATOR: frozenset(
        {
            P.AGENTS_READ,
            P.AGENTS_WRITE,
            P.AGENTS_CONTROL,
            P.TASKS_READ,
            P.TASKS_WRITE,
            P.TASKS_CONTROL,
            P.MESSAGES_READ,
            P.MESSAGES_WRITE,
            P.TENANT_READ,
            P.SYSTEM_READ,
            P.METRICS_READ,
        }
    ),
    Role.AGENT: frozenset(
        {P.AGENTS_READ, P.TASKS_READ, P.MESSAGES_READ, P.MESSAGES_WRITE, P.TENANT_READ}
    ),
    Role.TASK_EXECUTOR: frozenset({P.AGENTS_READ, P.TASKS_READ, P.TASKS_WRITE, P.TENANT_READ}),
    Role.OBSERVER: frozenset(
        {P.AGENTS_READ, P.TASKS_READ, P.TENANT_READ, P.SYSTEM_READ, P.METRICS_READ}
    ),
}
"""Which permissions each role grants (the permission table)."""

OPERATION_PERMISSIONS: dict[str, Permission] = {
    # tenants (``create``/``list`` are platform operations, see PLATFORM_OPERATIONS)
    "create_tenant": P.TENANTS_MANAGE,
    "list_tenants": P.TENANTS_MANAGE,
    "get_tenant": P.TENANT_READ,
    # agents
    "list_agents": P.AGENTS_READ,
    "create_agent": P.AGENTS_WRITE,
    "get_agent": P.AGENTS_READ,
    "list_live_agents": P.AGENTS_READ,
    "list_clusters": P.AGENTS_READ,
    "pause_agent": P.AGENTS_CONTROL,
    "resume_agent": P.AGENTS_CONTROL,
    "terminate_agent": P.AGENTS_CONTROL,
    # tasks
    "submit_task": P.TASKS_WRITE,
    "list_tasks": P.TASKS_READ,
    "get_task": P.TASKS_READ,
    "cancel_task": P.TASKS_CONTROL,
    "retry_task": P.TASKS_CONTROL,
    "get_metrics_history": P.TASKS_READ,  # the overview charts (api/anomalies.py)
    # messages
    "publish_message": P.MESSAGES_WRITE,
    "get_message": P.MESSAGES_READ,
    # audit
    "list_audit": P.AUDIT_READ,
    # federated learning
    "list_federated_rounds": P.TASKS_READ,
    # safety
    "get_safety_policy": P.AGENTS_READ,
    "put_safety_policy": P.SAFETY_ADMIN,
    "release_agent": P.SAFETY_ADMIN,
    "agent_feedback": P.AGENTS_CONTROL,
    # interop (AsyncAPI, A2A)
    "get_tenant_asyncapi": P.AGENTS_READ,
    # WebSocket channels
    "ws:agents": P.AGENTS_READ,
    "ws:tasks": P.TASKS_READ,
    "ws:system": P.SYSTEM_READ,
    "ws:metrics": P.METRICS_READ,
}
"""The permission each operation (REST operationId or ``ws:<channel>``) requires."""

PLATFORM_OPERATIONS: frozenset[str] = frozenset({"create_tenant", "list_tenants"})
"""Operations across tenants: only an admin of the platform tenant may call them."""

PLATFORM_TENANT = "_system"
"""The tenant whose admins administer the platform (every tenant)."""


def parse_roles(values: Iterable[str]) -> list[Role]:
    """Roles from their names (any case); an unknown name raises ValidationError."""
    out: list[Role] = []
    for v in values:
        try:
            role = Role(str(v).strip().lower())
        except ValueError:
            raise ValidationError(
                f"unknown role {v!r}: use one of {', '.join(r.value for r in Role)}"
            ) from None
        if role not in out:
            out.append(role)
    return out


def permissions_of(roles: Iterable[str | Role]) -> frozenset[Permission]:
    """The union of the permissions of ``roles`` (unknown names grant nothing)."""
    granted: set[Permission] = set()
    for r in roles:
        try:
            granted |= ROLE_PERMISSIONS[Role(r)]
        except ValueError:
            continue
    return frozenset(granted)


def has_role(roles: Iterable[str | Role], required: Iterable[str | Role]) -> bool:
    """Any-of: true when ``required`` is empty or shares a role with ``roles``."""
    need = {Role(r) for r in required}
    return not need or bool(need & {Role(r) for r in roles})


def required_permission(operation: str) -> Permission:
    """The permission ``operation`` requires (KeyError for an unknown operation)."""
    return OPERATION_PERMISSIONS[operation]


def allowed(roles: Iterable[str | Role], operation: str) -> bool:
    """Whether ``roles`` may call ``operation`` (tenant scope is checked separately)."""
    return required_permission(operation) in permissions_of(roles)


def authorize(roles: Iterable[str | Role], operation: str) -> None:
    """Raise :class:`Forbidden` unless ``roles`` may call ``operation``."""
    if not allowed(roles, operation):
        raise Forbidden(
            f"operation {operation} requires permission {required_permission(operation).value}",
            code="FORBIDDEN",
        )
