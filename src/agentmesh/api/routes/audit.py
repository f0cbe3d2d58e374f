"""``GET /v1/tenants/{tenant_id}/audit``: the tenant's audit trail (admins).

One trail holds what the API saw (actor: the token's subject) and what the domain did
(actor: the agent, or ``system``; ``event_position`` set), newest first.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from agentmesh import ids
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.schemas import AuditEntryOut, AuditListResponse, Pagination
from agentmesh.errors import ValidationError
from agentmesh.security.audit import AuditAction, AuditFilter, AuditStatus, iso_timestamp
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/audit", tags=["audit"])
TenantPath = Annotated[str, Path(pattern=ids.TENANT_ID.pattern)]
Instant = Annotated[
    str | None,
    Query(
        max_length=40,
        description="RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z",
        json_schema_extra={"format": "date-time"},
    ),
]
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


@router.get(
    "",
    response_model=AuditListResponse,
    operation_id="list_audit",
    responses=responses(401, 403, 422, 503),
)
async def list_audit(
    tenant_id: TenantPath,
    action: AuditAction | None = None,
    status: AuditStatus | None = None,
    actor: Annotated[str | None, Query(max_length=256)] = None,
    resource_type: Annotated[str | None, Query(max_length=64)] = None,
    resource_id: Annotated[str | None, Query(max_length=256)] = None,
    request_id: Annotated[str | None, Query(max_length=128)] = None,
    since: Instant = None,
    until: Instant = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100000)] = 0,
    principal: Principal = Depends(require("list_audit")),
    ctx: ApiContext = Depends(get_context),
) -> AuditListResponse:
    """Audit entries of the tenant, newest first, with filters (``since`` inclusive,
    ``until`` exclusive)."""
    start, end = _instant(since, "since"), _instant(until, "until")
    if start is not None and end is not None and start >= end:
        raise ValidationError("since must be before until")
    flt = AuditFilter(
        tenant_id=tenant_id,
        action=action.value if action else None,
        status=status.value if status else None,
        actor=actor,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=request_id,
        since=start,
        until=end,
    )
    entries, total = await ctx.audit.query(flt, limit=limit, offset=offset)
    has_more = offset + len(entries) < total
    return AuditListResponse(
        entries=[
            AuditEntryOut(**{k: v for k, v in e.to_dict().items() if k != "prev_hash"})
            for e in entries
        ],
        pagination=Pagination(
            total=total,
            limit=limit,
            offset=offset,
            has_more=has_more,
            next_offset=offset + len(entries) if has_more else None,
        ),
    )


def _instant(value: str | None, name: str) -> str | None:
    """An RFC 3339 date-time in the entries' timestamp form (422 when it is not one)."""
    if value is None:
        return None
    m = _RFC3339.match(value)
    if m is None:
        raise ValidationError(f"{name} must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
    minute, second, fraction, offset = m.groups()
    if second == "60":  # a leap second sorts with the last instant of its minute
        second, fraction = "59", ".999999"
    offset = "+00:00" if offset in ("Z", "z") else offset
    fraction = (fraction or "")[:7]  # microseconds
    try:
        return iso_timestamp(datetime.fromisoformat(f"{minute.upper()}:{second}{fraction}{offset}"))
    except (ValueError, OverflowError):  # 2026-02-30, or before year 1 once in UTC
        raise ValidationError(f"{name} is not a valid date-time") from None
