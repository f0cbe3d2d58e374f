"""OpenAPI links: what a client (or schemathesis' stateful phase) can call next with the
ids an operation's response (or request) carries.

Each helper returns a ``responses=`` entry for FastAPI; merge several with ``**``.
"""

from __future__ import annotations

from typing import Any

SAME_TENANT = "$request.path.tenant_id"


def _title(operation_id: str) -> str:
    return "".join(part.title() for part in operation_id.split("_"))


def link(status: int, *operations: str, **parameters: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry: after ``status``, each of ``operations`` may be called with
    ``parameters`` (runtime expressions such as ``$response.body#/id``)."""
    return {
        status: {
            "links": {
                _title(op): {"operationId": op, "parameters": dict(parameters)} for op in operations
            }
        }
    }


def created(
    *operations: str, id_field: str, body_field: str | None = None, tenant_from_path: bool = True
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry linking a 201 to ``operations`` whose ``id_field`` parameter
    takes the new object's ``body_field`` (default: the same name)."""
    params: dict[str, str] = {id_field: f"$response.body#/{body_field or id_field}"}
    if tenant_from_path:
        params["tenant_id"] = SAME_TENANT
    return link(201, *operations, **params)


def same_object(status: int, *operations: str, id_field: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry: after ``status``, ``operations`` on the same object (its id
    and tenant taken from this request's path), e.g. pause → resume."""
    return link(
        status, *operations, **{id_field: f"$request.path.{id_field}", "tenant_id": SAME_TENANT}
    )
