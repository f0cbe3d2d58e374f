"""Error mapping: every error leaves the API as the flat body ``{"error", "code"}``.

Domain errors (:mod:`agentmesh.errors`) map to their HTTP status; FastAPI's own 404,
405 and 422 are rewritten to the same body; anything unexpected becomes 500
``INTERNAL_ERROR`` without internals. A 401 carries ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import math
import re
import typing
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from agentmesh import errors as e


class ErrorBody(BaseModel):
    """The flat error body of every non-2xx answer."""

    model_config = ConfigDict(extra="forbid")

    error: str
    code: str
    details: dict[str, Any] | None = None


STATUS_BY_ERROR: tuple[tuple[type[e.AgentMeshError], int], ...] = (
    (e.PayloadTooLarge, 413),
    (e.QuotaExceeded, 429),
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
    headers = (
        {"Retry-After": str(math.ceil(exc.retry_after))}
        if isinstance(exc, e.QuotaExceeded)
        else None
    )
    return error_response(status, message, exc.code, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI document lists for this path (Starlette's own 405 names
    only the first matching route's)."""
    patterns = getattr(request.app.state, "allow_patterns", None)
    if patterns is None:
        patterns = [
            (
                re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"),
                sorted(m.upper() for m in item if m in {"get", "post", "put", "patch", "delete"}),
            )
            # literal segments win over parameters: /agents/live before /agents/{agent_id}
            for path, item in sorted(
                request.app.openapi().get("paths", {}).items(), key=lambda kv: kv[0].count("{")
            )
        ]
        request.app.state.allow_patterns = patterns
    for pattern, methods in patterns:
        if pattern.match(request.url.path):
            return list(methods)
    return []


_QUERY_NAMES: dict[int, tuple[frozenset[str], frozenset[str]]] = {}


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation) if arg is not type(None))


def _query_params(dependant: Any) -> list[Any]:
    params = list(dependant.query_params)
    for sub in dependant.dependencies:
        params += _query_params(sub)
    return params


async def reject_unexpected_body(request: HTTPConnection) -> None:
    """A request body sent to an operation that takes none is a 422, not silently ignored
    (so extra fields can never look accepted; mass assignment)."""
    if request.scope.get("type") != "http":
        return
    route = request.scope.get("route")
    if getattr(route, "dependant", None) is None or getattr(route, "body_field", None) is not None:
        return  # not an API route, or one that reads a body (its own or a dependency's)
    length = request.headers.get("content-length")
    has_body = (length is not None and length.strip() not in ("", "0")) or (
        "transfer-encoding" in request.headers
    )
    if has_body:
        raise e.ValidationError(
            "this operation takes no request body; send none", code="UNEXPECTED_BODY"
        )


async def reject_unknown_query(request: HTTPConnection) -> None:
    """A query parameter the operation does not declare is a 422, not silently ignored
    (``api_version`` is the versioning middleware's, accepted everywhere; WebSockets pass)."""
    if request.scope.get("type") != "http":
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    cached = _QUERY_NAMES.get(id(route))
    if cached is None:
        params = _query_params(dependant)
        known = frozenset({p.alias for p in params} | {"api_version"})
        lists = frozenset(p.alias for p in params if _is_list(p.field_info.annotation))
        cached = _QUERY_NAMES[id(route)] = (known, lists)
    known, lists = cached
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise e.ValidationError(
            f"unknown query parameter(s) {', '.join(unknown)[:200]}; this operation takes "
            f"{', '.join(sorted(known - {'api_version'})) or 'none'}",
            code="UNKNOWN_QUERY_PARAMETER",
        )
    repeated = sorted(
        k for k in set(request.query_params) - lists if len(request.query_params.getlist(k)) > 1
    )
    if repeated:
        raise e.ValidationError(
            f"query parameter(s) {', '.join(repeated)} take one value, not several",
            code="REPEATED_QUERY_PARAMETER",
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, f"HTTP_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else code.lower().replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        methods = allowed_methods(request)
        if methods:
            headers["Allow"] = ", ".join(methods)
    return error_response(exc.status_code, detail, code, headers=headers)


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
