"""Domain events of a tenant's safety policy (one stream per tenant, versioned)."""

from __future__ import annotations

import dataclasses
from typing import Any

from agentmesh.domain.events import DomainEvent


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SafetyPolicySetEvent(DomainEvent):
    """An admin put a new safety policy in force for the tenant (``aggregate_id`` is
    ``safety-policy``); ``policy`` is its data form, ``policy_version`` its version."""

    topic = "safety.policy_set"
    policy: dict[str, Any] = dataclasses.field(default_factory=dict)
    policy_version: int
    set_by: str
