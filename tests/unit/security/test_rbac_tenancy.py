"""The permission table, role semantics and tenant scoping."""

from __future__ import annotations

import pytest

from agentmesh.errors import Forbidden, NotFound, TenantForbidden, ValidationError
from agentmesh.security.rbac import (
    OPERATION_PERMISSIONS,
    PLATFORM_TENANT,
    ROLE_PERMISSIONS,
    Permission,
    Role,
    allowed,
    authorize,
    has_role,
    parse_roles,
    permissions_of,
)
from agentmesh.security.tenancy import Principal, check_operation, check_tenant

WRITES = {op for op, p in OPERATION_PERMISSIONS.items() if not p.value.endswith(":read")}


def test_every_role_is_in_the_table_and_admin_has_everything() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)


def test_observer_only_reads() -> None:
    for op in OPERATION_PERMISSIONS:
        if op in WRITES:
            assert not allowed(["observer"], op), op
    assert allowed(["observer"], "list_agents")
    assert allowed(["observer"], "ws:metrics")


@pytest.mark.parametrize(
    ("role", "op", "expected"),
    [
        ("orchestrator", "terminate_agent", True),
        ("orchestrator", "list_audit", False),
        ("orchestrator", "create_tenant", False),
        ("agent", "publish_message", True),
        ("agent", "submit_task", False),
        ("task_executor", "submit_task", True),
        ("task_executor", "cancel_task", False),
        ("observer", "get_message", False),
    ],
)
def test_table_examples(role: str, op: str, expected: bool) -> None:
    assert allowed([role], op) is expected


def test_permissions_union_and_has_role() -> None:
    assert permissions_of(["agent", "task_executor"]) >= {
        Permission.TASKS_WRITE,
        Permission.MESSAGES_WRITE,
    }
    assert permissions_of(["unknown"]) == frozenset()
    assert has_role(["observer"], [])
    assert has_role(["observer", "agent"], ["agent", "admin"])
    assert not has_role(["observer"], ["admin"])


def test_parse_roles() -> None:
    assert parse_roles(["Admin", "admin", " observer "]) == [Role.ADMIN, Role.OBSERVER]
    with pytest.raises(ValidationError):
        parse_roles(["superuser"])


def test_authorize_and_unknown_operation() -> None:
    with pytest.raises(Forbidden):
        authorize(["observer"], "create_agent")
    with pytest.raises(KeyError):
        allowed(["admin"], "no_such_operation")


def test_tenant_scope() -> None:
    b = Principal("bob", "tenant-b", ("admin",))
    check_tenant(b, "tenant-b")
    with pytest.raises(TenantForbidden):
        check_tenant(b, "tenant-a", "collection")
    missing = NotFound("Agent x not found", code="AGENT_NOT_FOUND")
    with pytest.raises(NotFound) as info:
        check_tenant(b, "tenant-a", "object", missing)
    assert info.value is missing
    root = Principal("root", PLATFORM_TENANT, ("admin",))
    check_tenant(root, "tenant-a")
    assert root.is_platform_admin
    assert not b.is_platform_admin
    assert not Principal("o", PLATFORM_TENANT, ("observer",)).is_platform_admin


def test_platform_operations_need_platform_admin() -> None:
    check_operation(Principal("root", PLATFORM_TENANT, ("admin",)), "create_tenant")
    with pytest.raises(Forbidden):
        check_operation(Principal("bob", "tenant-b", ("admin",)), "create_tenant")
    with pytest.raises(Forbidden):
        check_operation(Principal("bob", "tenant-b", ("observer",)), "create_agent")
