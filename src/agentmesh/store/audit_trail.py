"""The domain's half of the audit trail: significant events become audit entries.

:class:`AuditTrail` is an :class:`~agentmesh.store.projections.EventSink`: attached to
the :class:`~agentmesh.store.projections.Projector`, it appends one
:class:`~agentmesh.security.audit.AuditEntry` per event of :data:`AUDIT_ACTIONS` to the
same :class:`~agentmesh.security.audit.AuditStore` (same table, same hash chain) as the
API's own entries. Each entry carries the event's global position, and a store keeps
one entry per position, so a replay or a rebuild appends nothing twice::

    trail = AuditTrail(audit_store)
    persistence.projector.attach(trail)
    await persistence.projector.catch_up()

The actor of such an entry is the agent the event names, else ``system``; its details
are the event's fields without the bulky or secret ones (:data:`NOISY_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from agentmesh.domain import AgentEvent, DomainEvent, TaskEvent, TenantEvent
from agentmesh.domain.approval_events import TaskApprovalEvent
from agentmesh.security.audit import AuditEntry, AuditStore
from agentmesh.store.base import StoredEvent

SYSTEM_ACTOR = "system"
NOISY_FIELDS = ("ciphertext", "payload", "result", "conversation")
"""Event fields never copied into an entry's details."""

AUDIT_ACTIONS: dict[str, tuple[str, str]] = {
    "AgentCreated": ("agent_created", "success"),
    "AgentTerminated": ("agent_terminated", "success"),
    "AgentActivated": ("agent_restarted", "success"),
    "AgentPaused": ("agent_updated", "success"),
    "AgentResumed": ("agent_updated", "success"),
    "AgentCapabilityAdded": ("agent_updated", "success"),
    "AgentCapabilityUpgraded": ("agent_updated", "success"),
    "AgentMetadataUpdated": ("agent_updated", "success"),
    "AgentHealthCheckFailed": ("agent_updated", "failure"),
    "TaskSubmitted": ("task_submitted", "success"),
    "TaskAssigned": ("task_assigned", "success"),
    "TaskCompleted": ("task_completed", "success"),
    "TaskFailed": ("task_failed", "failure"),
    "TaskTimedOut": ("task_failed", "timeout"),
    "TaskRetrying": ("task_retried", "success"),
    "TaskDeadLettered": ("task_failed", "failure"),
    "TaskCancelled": ("task_cancelled", "success"),
    "TaskRejected": ("task_failed", "denied"),
    "AgentQuarantined": ("agent_updated", "denied"),
    "AgentReleased": ("admin_action", "success"),
    "SafetyPolicySet": ("policy_updated", "success"),
    "MessageRecorded": ("message_routed", "success"),
    "TenantCreated": ("admin_action", "success"),
    "TenantLimitsChanged": ("config_changed", "success"),
    "TenantDeactivated": ("admin_action", "success"),
    "TenantReactivated": ("admin_action", "success"),
    "FederatedUpdateRejected": ("message_failed", "failure"),
}
"""Event type -> (audit action, audit status); other events (heartbeats ...) are not audited."""


def resource_type_of(event: DomainEvent) -> str:
    """``agent``, ``task``, ``tenant`` or ``message``."""
    if isinstance(event, AgentEvent):
        return "agent"
    if isinstance(event, TaskEvent):
        return "task"
    if isinstance(event, TenantEvent):
        return "tenant"
    return "message"


def actor_of(event: DomainEvent) -> str:
    """The agent the event is about or acting in it, else ``system``."""
    if isinstance(event, AgentEvent):
        return event.aggregate_id
    if isinstance(event, TaskApprovalEvent):
        return event.audit_actor
    agent = getattr(event, "agent_id", None)
    return agent if isinstance(agent, str) and agent else SYSTEM_ACTOR


def audit_entry(stored: StoredEvent, event: DomainEvent) -> AuditEntry | None:
    """The (unchained) entry of an event, or None when the event is not audited."""
    mapped = AUDIT_ACTIONS.get(event.event_type)
    if isinstance(event, TaskApprovalEvent):  # request, decision, edit, timeout, escalation
        mapped = event.audit_action
    if mapped is None:
        return None
    action, status = mapped
    details = event.to_dict()
    for noisy in NOISY_FIELDS:
        details.pop(noisy, None)
    return AuditEntry.new(
        action,
        status,
        tenant_id=event.tenant_id,
        actor=actor_of(event),
        resource_type=resource_type_of(event),
        resource_id=event.aggregate_id,
        details=details,
        timestamp=stored.occurred_at,
        event_position=stored.position,
    )


class AuditTrail:
    """Appends the audit entries of events to an audit store (an event sink)."""

    name = "audit"

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def apply(self, batch: Sequence[tuple[StoredEvent, DomainEvent]]) -> None:
        entries = [e for stored, event in batch if (e := audit_entry(stored, event)) is not None]
        if entries:
            await self.store.append_many(entries)


__all__ = [
    "AUDIT_ACTIONS",
    "NOISY_FIELDS",
    "SYSTEM_ACTOR",
    "AuditTrail",
    "actor_of",
    "audit_entry",
    "resource_type_of",
]
