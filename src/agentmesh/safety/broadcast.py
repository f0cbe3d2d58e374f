"""Admin decisions every process of a tenant honours, on ``am.<tenant>.sys.safety``
(:class:`~agentmesh.safety.guard.SafetyGuard` listens): a new policy, a release, feedback."""

from __future__ import annotations

from typing import Any

from agentmesh.envelope import Envelope
from agentmesh.safety.guard import channel
from agentmesh.transports import Transport


async def broadcast(transport: Transport, tenant: str, kind: str, payload: dict[str, Any]) -> None:
    env = Envelope.create(kind, payload, tenant_id=tenant, source="agentmesh.controlplane")
    await transport.publish(channel(tenant), env)


async def publish_policy(transport: Transport, tenant: str, policy: dict[str, Any]) -> None:
    """Put ``policy`` (data form, validated) in force in every process of the tenant."""
    await broadcast(transport, tenant, "safety.policy", {"policy": policy})


async def quarantine(transport: Transport, tenant: str, agent_id: str, reason: str) -> None:
    """Quarantine an agent wherever it runs (e.g. a quarantined agent that restarted)."""
    await broadcast(
        transport, tenant, "safety.quarantine", {"agent_id": agent_id, "reason": reason}
    )


async def release(transport: Transport, tenant: str, agent_id: str, by: str, reason: str) -> None:
    """Lift an agent's quarantine wherever it runs."""
    await broadcast(
        transport, tenant, "safety.release", {"agent_id": agent_id, "by": by, "reason": reason}
    )


async def feedback(
    transport: Transport,
    tenant: str,
    agent_id: str,
    rating: float,
    targets: list[str],
    by: str,
    comment: str = "",
) -> None:
    """A human's rating of an agent, folded into its alignment score where it runs."""
    await broadcast(
        transport,
        tenant,
        "safety.feedback",
        {"agent_id": agent_id, "rating": rating, "targets": targets, "by": by, "comment": comment},
    )
