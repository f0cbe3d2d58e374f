"""Error mapping: every error leaves the API as the flat body ``{"error", "code"}``.

Domain errors (:mod:`agentmesh.errors`) map to their HTTP status; FastAPI's own 404,
405 and 422 are rewritten to the same body; anything unexpected becomes 500
``INTERNAL_ERROR`` without internals. A 401 carries ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentmesh import errors as e


class ErrorBody(BaseModel):
    """The flat error body of every non-2xx answer."""

    model_config = ConfigDict(extra="forbid")

    error: str
    code: str
    details: dict[str, Any] | None = None


STATUS_BY_ERROR: tuple[tuple[type[e.AgentMeshError], int], ...] = (
    (e.PayloadTooLarge, 413),
    (e.ValidationError, 422),
    (e.InvalidTransition, 409),
    (e.Conflict, 409),
    (e.NotFound, 404),
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.RequestTimeout, 504),
    (e.NoResponders, 503),
    (e.BrokerUnavailable, 503),
    (e.NotSupported, 501),
    (e.ConfigError, 500),
)

HTTP_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "AUTH_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

DESCRIPTIONS: dict[int, str] = {
    400: "Bad request (e.g. UNSUPPORTED_VERSION)",
    401: "Missing (AUTH_REQUIRED) or invalid/expired (AUTH_INVALID) bearer token",
    403: "The token's roles or tenant do not allow this",
    404: "Not found (or another tenant's object)",
    405: "Method not allowed",
    409: "Conflict: already exists or an invalid state transition",
    413: "Request body over the limit",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Rate limit exceeded (see Retry-After)",
    500: "Internal error",
    501: "Not supported by this deployment",
    503: "A dependency (broker or store) is unavailable",
    504: "Timed out waiting for a dependency",
}


def status_of(exc: e.AgentMeshError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(
    status: int,
    message: str,
    code: str,
    *,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A flat error response."""
    body: dict[str, Any] = {"error": message, "code": code}
    if details is not None:
        body["details"] = details
    hdrs = dict(headers or {})
    if status == 401:
        hdrs.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=hdrs)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the given error statuses (all with :class:`ErrorBody`)."""
    return {s: {"model": ErrorBody, "description": DESCRIPTIONS.get(s, "Error")} for s in statuses}


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, e.AgentMeshError)
    status = status_of(exc)
    message = "internal error" if status == 500 else exc.message
    return error_response(status, message, exc.code)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else code.lower().replace("_", " ")
    return error_response(exc.status_code, detail, code, headers=dict(exc.headers or {}))


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
    return f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid"))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    message = "; ".join(_describe(x) for x in errs[:5]) or "invalid request"
    fields = [
        {"field": ".".join(str(p) for p in x.get("loc", ())), "message": str(x.get("msg", ""))}
        for x in errs[:20]
    ]
    return error_response(422, message, "VALIDATION_ERROR", details={"errors": fields})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the flat body."""
    app.add_exception_handler(e.AgentMeshError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
