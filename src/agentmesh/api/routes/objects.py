"""Routes over one kind of a tenant's objects (agents, tasks), built from a few facts about
the kind: read one, answer a create, and change its state with an audit record."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from agentmesh import ids
from agentmesh.api.auth import require
from agentmesh.api.context import ApiContext, get_context
from agentmesh.api.errors import responses
from agentmesh.api.links import same_object
from agentmesh.commands.messages import Command, Query
from agentmesh.security.audit import AuditAction, AuditStatus
from agentmesh.security.tenancy import Principal

TenantPath = Annotated[str, Path(pattern=ids.TENANT_ID.pattern)]
IdPath = Annotated[str, Path(pattern=ids.SEGMENT.pattern)]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Ref:
    """One object named by a request path: its tenant and its id."""

    tenant_id: str
    object_id: str


Hook = Callable[[ApiContext, Ref], Awaitable[None]]
CommandOf = Callable[[Ref, str], Command[Any]]


async def no_reason() -> str:
    """The reason of a change whose route takes no body."""
    return ""


@dataclass(frozen=True)
class Kind(Generic[M]):
    """One kind of object and the router its routes go on."""

    router: APIRouter
    resource_type: str
    """Audit records' ``resource_type`` and the operation ids' suffix, e.g. ``agent``."""
    get: Callable[[str, str], Query[dict[str, Any]]]
    """The query reading one object from its tenant and id, e.g. ``GetAgent``."""
    model: type[M]
    """The response model of one object."""
    ref: Callable[..., Awaitable[Ref]]
    """The dependency reading ``tenant_id`` and the object's id from the path; its
    parameter ``<resource_type>_id`` is the path parameter."""

    @property
    def id_field(self) -> str:
        return f"{self.resource_type}_id"

    async def load(self, ctx: ApiContext, ref: Ref) -> dict[str, Any]:
        """The object as the read model has it (its NotFound is the 404)."""
        return await ctx.bus.query(self.get(ref.tenant_id, ref.object_id))

    async def created(
        self,
        ctx: ApiContext,
        ref: Ref,
        *,
        action: AuditAction,
        request: Request,
        principal: Principal,
        details: dict[str, Any] | None = None,
    ) -> M:
        """The answer to a create: the new object once projected, its creation audited."""
        await ctx.caught_up()
        doc = await self.load(ctx, ref)
        await ctx.record(
            action,
            AuditStatus.SUCCESS,
            tenant_id=ref.tenant_id,
            request=request,
            principal=principal,
            resource_type=self.resource_type,
            resource_id=ref.object_id,
            details=details,
        )
        return self.model(**doc)

    def add_get(self, description: str) -> None:
        """``GET /{id}`` (operation ``get_<kind>``): one object; unknown is 404."""
        operation_id = f"get_{self.resource_type}"

        async def endpoint(
            ref: Ref = Depends(self.ref),
            principal: Principal = Depends(require(operation_id)),
            ctx: ApiContext = Depends(get_context),
        ) -> BaseModel:
            return self.model(**await self.load(ctx, ref))

        self._route("GET", "", endpoint, operation_id, description, responses(401, 403, 404, 422))

    def change(
        self,
        operation: str,
        action: AuditAction,
        *,
        links: tuple[str, ...],
        reason: Callable[..., Awaitable[str]] = no_reason,
        after: Hook | None = None,
    ) -> Callable[[CommandOf], CommandOf]:
        """Decorate the function making a change's command from the object and the reason:
        it becomes ``POST /{id}/{operation}`` (operation ``<operation>_<kind>``, described
        by the function's docstring), which runs the command on an existing object and
        audits it as ``action`` (404 unknown, 409 not allowed in its state).

        ``reason`` is the dependency reading the optional body, ``after`` runs once the
        command succeeded, ``links`` are the operations the answer links to."""
        operation_id = f"{operation}_{self.resource_type}"

        def decorate(command: CommandOf) -> CommandOf:
            async def endpoint(
                request: Request,
                ref: Ref = Depends(self.ref),
                why: str = Depends(reason),
                principal: Principal = Depends(require(operation_id)),
                ctx: ApiContext = Depends(get_context),
            ) -> BaseModel:
                doc = await ctx.audited_change(
                    command(ref, why),
                    partial(self.load, ctx, ref),
                    action=action,
                    operation=operation,
                    tenant_id=ref.tenant_id,
                    request=request,
                    principal=principal,
                    resource_type=self.resource_type,
                    resource_id=ref.object_id,
                    after=partial(after, ctx, ref) if after is not None else None,
                )
                return self.model(**doc)

            self._route(
                "POST",
                f"/{operation}",
                endpoint,
                operation_id,
                inspect.cleandoc(command.__doc__ or ""),
                {
                    **responses(401, 403, 404, 409, 422),
                    **same_object(200, *links, id_field=self.id_field),
                },
            )
            return command

        return decorate

    def _route(
        self,
        method: str,
        under_id: str,
        endpoint: Callable[..., Awaitable[BaseModel]],
        operation_id: str,
        description: str,
        documented: dict[int | str, dict[str, Any]],
    ) -> None:
        self.router.add_api_route(
            f"/{{{self.id_field}}}{under_id}",
            endpoint,
            methods=[method],
            response_model=self.model,
            operation_id=operation_id,
            name=operation_id,
            description=description,
            responses=documented,
        )
