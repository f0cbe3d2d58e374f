"""Deactivate and reactivate a tenant (its agents lose the bus: see security/nats_callout.py).

Registered on the bus by :func:`agentmesh.commands.build_bus`; the handlers reuse the
load -> decide -> append plumbing of :class:`~agentmesh.commands.handlers.CommandHandlers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.commands.bus import CqrsBus
from agentmesh.commands.handlers import CommandHandlers
from agentmesh.commands.messages import Command, CommandResult
from agentmesh.commands.streams import TENANT_STREAM
from agentmesh.domain.tenant import TenantAggregate
from agentmesh.errors import NotFound


@dataclass(frozen=True)
class DeactivateTenant(Command[CommandResult]):
    """The tenant stops: its tokens are refused on the bus and its connections closed."""

    tenant_id: str
    reason: str = ""


@dataclass(frozen=True)
class ReactivateTenant(Command[CommandResult]):
    tenant_id: str


async def _load(h: CommandHandlers, tenant_id: str) -> tuple[TenantAggregate, int]:
    stored = await h.store.load(tenant_id, TENANT_STREAM)
    if not stored:
        raise NotFound(f"tenant {tenant_id} not found", code="TENANT_NOT_FOUND")
    return TenantAggregate.replay(s.decode() for s in stored), stored[-1].version


def register_tenant_state(bus: CqrsBus, h: CommandHandlers) -> None:
    """Register the tenant state commands on ``bus``."""

    async def deactivate(cmd: DeactivateTenant) -> CommandResult:
        tenant, version = await _load(h, cmd.tenant_id)
        _, events = tenant.deactivate(cmd.reason)
        return await h._append(cmd.tenant_id, TENANT_STREAM, version, events)

    async def reactivate(cmd: ReactivateTenant) -> CommandResult:
        tenant, version = await _load(h, cmd.tenant_id)
        _, events = tenant.reactivate()
        return await h._append(cmd.tenant_id, TENANT_STREAM, version, events)

    bus.register_command(DeactivateTenant, deactivate)
    bus.register_command(ReactivateTenant, reactivate)
