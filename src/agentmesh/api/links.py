"""OpenAPI links: what a client (or schemathesis' stateful phase) can call next with the
ids a create operation returns."""

from __future__ import annotations

from typing import Any


def created(
    *operations: str, id_field: str, body_field: str | None = None, tenant_from_path: bool = True
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry linking a 201 to ``operations`` whose ``id_field`` parameter
    takes the new object's ``body_field`` (default: the same name)."""
    params: dict[str, str] = {id_field: f"$response.body#/{body_field or id_field}"}
    if tenant_from_path:
        params["tenant_id"] = "$request.path.tenant_id"
    return {
        201: {
            "links": {
                "".join(part.title() for part in op.split("_")): {
                    "operationId": op,
                    "parameters": params,
                }
                for op in operations
            }
        }
    }
