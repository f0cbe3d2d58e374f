"""Tenant isolation: who a caller is and which tenant it may touch.

A :class:`Principal` comes from a verified token. It acts inside its own tenant only;
the one exception is an ``admin`` of the platform tenant (:data:`PLATFORM_TENANT`), who
administers every tenant. A caller of tenant B asking for tenant A's data gets:

* 403 ``TENANT_FORBIDDEN`` for one of A's collections (``/v1/tenants/A/agents``),
* 404 for one of A's objects (``/v1/tenants/A/agents/x``), so ids do not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentmesh.errors import Forbidden, NotFound, TenantForbidden
from agentmesh.security.rbac import (
    PLATFORM_OPERATIONS,
    PLATFORM_TENANT,
    Permission,
    Role,
    authorize,
    permissions_of,
)
from agentmesh.security.tokens import Claims

Scope = Literal["collection", "object"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    tenant_id: str
    roles: tuple[str, ...]

    @classmethod
    def from_claims(cls, claims: Claims) -> Principal:
        return cls(claims.subject, claims.tenant_id, claims.roles)

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of(self.roles)

    @property
    def is_platform_admin(self) -> bool:
        return self.tenant_id == PLATFORM_TENANT and Role.ADMIN.value in self.roles

    def can_access_tenant(self, tenant_id: str) -> bool:
        return self.is_platform_admin or tenant_id == self.tenant_id


def check_operation(principal: Principal, operation: str) -> None:
    """Role check (403 ``FORBIDDEN``) plus the platform restriction of tenant admin ops."""
    authorize(principal.roles, operation)
    if operation in PLATFORM_OPERATIONS and not principal.is_platform_admin:
        raise Forbidden(
            f"operation {operation} needs an admin token of the platform tenant "
            f"{PLATFORM_TENANT!r}",
            code="FORBIDDEN",
        )


def check_tenant(
    principal: Principal,
    tenant_id: str,
    scope: Scope = "collection",
    missing: NotFound | None = None,
) -> None:
    """Refuse access to another tenant: 403 for a collection, 404 for an object.

    ``missing`` is the error a genuinely absent object raises, so that the two answers
    cannot be told apart.
    """
    if principal.can_access_tenant(tenant_id):
        return
    if scope == "object":
        raise missing or NotFound("not found", code="NOT_FOUND")
    raise TenantForbidden(f"token of tenant {principal.tenant_id!r} cannot access this tenant")
