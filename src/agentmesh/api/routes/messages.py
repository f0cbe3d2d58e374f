"""Messages: publish an envelope to a tenant's event bus; read one back, decrypted.

A published envelope is recorded (Fernet-encrypted, in the ``messages`` read model) and
queued for the broker in ONE store transaction (the outbox), on
``am.<tenant>.evt.<metadata.type>`` (type defaults to ``message``).

With ``routing.targets`` (``"<platform>:<topic>"``, split on the first colon) the envelope goes to every
target broker instead, through the bridge's router (see
:mod:`agentmesh.transports.targets`): the targets are checked first (a broker that is not
configured is a 422 naming it), the envelope is delivered to all of them, then recorded.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from agentmesh import ids, subjects
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import error_response, responses
from agentmesh.api.links import SAME_TENANT, link
from agentmesh.api.schemas import EnvelopeIn, MessageAccepted, MessageResponse
from agentmesh.commands import GetMessage, RecordMessage
from agentmesh.envelope import Envelope
from agentmesh.errors import Conflict, ValidationError
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.crypto import DecryptionError
from agentmesh.security.tenancy import Principal

router = APIRouter(prefix="/v1/tenants/{tenant_id}/messages", tags=["messages"])
TenantPath = Annotated[str, Path(pattern=ids.TENANT_ID.pattern)]
MessagePath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TYPE = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")


@router.post(
    "",
    status_code=202,
    response_model=MessageAccepted,
    operation_id="publish_message",
    responses={
        **responses(401, 403, 409, 422),
        **link(202, "get_message", message_id="$response.body#/message_id", tenant_id=SAME_TENANT),
    },
)
async def publish_message(
    tenant_id: TenantPath,
    body: EnvelopeIn,
    request: Request,
    principal: Principal = Depends(require("publish_message")),
    ctx: ApiContext = Depends(get_context),
) -> MessageAccepted:
    """Publish an envelope (its ``tenant_id``, if given, must be the path's) through the
    outbox."""
    if body.tenant_id is not None and body.tenant_id != tenant_id:
        raise ValidationError(
            f"envelope tenant_id {body.tenant_id!r} does not match the path",
            code="TENANT_MISMATCH",
        )
    metadata = dict(body.metadata)
    if "id" in metadata and not (isinstance(metadata["id"], str) and _ID.match(metadata["id"])):
        raise ValidationError("metadata.id must be 1-128 letters, digits, '-' or '_'")
    mtype = metadata.setdefault("type", "message")
    if not isinstance(mtype, str) or not _TYPE.match(mtype):
        raise ValidationError("metadata.type must be dotted words of letters, digits, '-', '_'")
    metadata.setdefault("source", f"api:{principal.subject}")
    env = Envelope.from_dict({**body.model_dump(), "metadata": metadata, "tenant_id": tenant_id})
    subject = subjects.event(tenant_id, mtype)
    if await ctx.persistence.read_models.get_message(env.id) is not None:
        raise Conflict(f"message {env.id} already exists", code="MESSAGE_EXISTS")
    targets: list[str] = []
    if "targets" in env.routing:  # delivered to every target broker, not the outbox
        if ctx.routes is None:
            raise ValidationError("routing.targets: no target brokers in this control plane")
        ctx.routes.check(env)  # before anything is written or sent
        targets = await ctx.routes.deliver(env)
    await ctx.bus.execute(RecordMessage(tenant_id, env, subject, mtype, delivered=bool(targets)))
    await ctx.caught_up()
    await ctx.record(
        AuditAction.MESSAGE_ROUTED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="message",
        resource_id=env.id,
        details={
            "subject": subject,
            "message_type": mtype,
            **({"targets": targets} if targets else {}),
        },
    )
    if targets:
        return MessageAccepted(
            message_id=env.id, subject=subject, status="delivered", targets=targets
        )
    return MessageAccepted(message_id=env.id, subject=subject)


@router.get(
    "/{message_id}",
    response_model=MessageResponse,
    operation_id="get_message",
    responses=responses(401, 403, 404, 422, 500),
)
async def get_message(
    tenant_id: TenantPath,
    message_id: MessagePath,
    request: Request,
    principal: Principal = Depends(require("get_message")),
    ctx: ApiContext = Depends(get_context),
) -> MessageResponse | JSONResponse:
    """A recorded message with its envelope decrypted (``secret_accessed`` is audited)."""
    msg = await ctx.bus.query(GetMessage(message_id, tenant_id))
    try:
        envelope = ctx.crypto.decrypt_json(msg.payload)
    except DecryptionError as exc:
        return error_response(500, exc.message, "DECRYPTION_FAILED")
    await ctx.record(
        AuditAction.SECRET_ACCESSED,
        AuditStatus.SUCCESS,
        tenant_id=tenant_id,
        request=request,
        principal=principal,
        resource_type="message",
        resource_id=message_id,
    )
    return MessageResponse(
        message_id=msg.id,
        tenant_id=msg.tenant_id,
        message_type=msg.message_type,
        subject=msg.subject,
        source=msg.source,
        priority=msg.priority,
        correlation_id=msg.correlation_id,
        persisted_at=msg.persisted_at,
        envelope=envelope,
    )
