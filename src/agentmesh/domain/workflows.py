"""The workflow types a task submission may name (``workflow_type``), checked once here.

A workflow task is an ordinary task on the capability ``workflow-<type>``; the control
plane's workflow runner (:mod:`agentmesh.patterns.workflows`) takes it, runs the pattern
with the task's payload (``workflow_data``) and completes the task with the workflow's
result. The subtasks it submits carry the task as their ``parent_task_id``.

===================  ==========================================================  =============
type                 payload (``workflow_data``)                                 seed aliases
===================  ==========================================================  =============
orchestrator_worker  ``{"subtasks": [{"capability", "payload"}], "policy",        orchestrator
                     "retries", "deadline"}``
hierarchical         ``{"capability": <root node role>, "payload", "deadline"}``  hierarchy
market               ``{"capability", "payload", "max_price", "bid_window"}``      market_based
swarm                ``{"capability": <coordinator> (default coordination),      swarm_intelligence
                     "payload": <the job: {"tasks": [...]} or one task>}``
===================  ==========================================================  =============
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentmesh.errors import ValidationError

WORKFLOW_TYPES = ("orchestrator_worker", "hierarchical", "market", "swarm")
ALIASES = {
    "market_based": "market",
    "orchestrator": "orchestrator_worker",
    "hierarchy": "hierarchical",
    "swarm_intelligence": "swarm",
}
CAPABILITY_PREFIX = "workflow-"
POLICIES = ("retry", "fail_fast", "partial")


def parse_workflow_type(name: object) -> str:
    """The canonical workflow type of ``name`` (a seed alias is accepted);
    :class:`ValidationError` naming the allowed values otherwise."""
    if isinstance(name, str):
        canonical = ALIASES.get(name, name)
        if canonical in WORKFLOW_TYPES:
            return canonical
    allowed = ", ".join([*WORKFLOW_TYPES, *ALIASES])
    raise ValidationError(f"unknown workflow_type {name!r}: use one of {allowed}")


def workflow_capability(workflow_type: str) -> str:
    """The capability a workflow task of ``workflow_type`` is offered on."""
    return CAPABILITY_PREFIX + parse_workflow_type(workflow_type)


def workflow_of(capability: str | None) -> str | None:
    """The workflow type a capability stands for (None for ordinary capabilities)."""
    if capability and capability.startswith(CAPABILITY_PREFIX):
        name = capability[len(CAPABILITY_PREFIX) :]
        return name if name in WORKFLOW_TYPES else None
    return None


def _capability(data: Mapping[str, Any], where: str, default: str | None = None) -> str:
    from agentmesh.ids import CAPABILITY

    cap = data.get("capability", default)
    if not isinstance(cap, str) or not CAPABILITY.match(cap):
        raise ValidationError(f"{where} needs a capability (letters, digits, _ or -), got {cap!r}")
    return cap


def _object(value: object, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _positive(data: Mapping[str, Any], key: str, default: float, top: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= top:
        raise ValidationError(f"{key} must be a number in (0, {top:g}], got {value!r}")
    return float(value)


def check_workflow_data(workflow_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` checked for ``workflow_type`` and completed with defaults; raises
    :class:`ValidationError` naming what is wrong (REST answers 422)."""
    kind = parse_workflow_type(workflow_type)
    out: dict[str, Any] = dict(data)
    if kind == "orchestrator_worker":
        subtasks = data.get("subtasks")
        if not isinstance(subtasks, list) or not 1 <= len(subtasks) <= 1000:
            raise ValidationError("orchestrator_worker needs 'subtasks': a list of 1-1000")
        out["subtasks"] = [
            {
                "capability": _capability(_object(s, f"subtask {i}"), f"subtask {i}"),
                "payload": _object(_object(s, f"subtask {i}").get("payload"), f"subtask {i}"),
            }
            for i, s in enumerate(subtasks)
        ]
        policy = data.get("policy", "retry")
        if policy not in POLICIES:
            raise ValidationError(f"unknown policy {policy!r}: use one of {', '.join(POLICIES)}")
        retries = data.get("retries", 2)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 5:
            raise ValidationError(f"retries must be 0-5, got {retries!r}")
        out.update(policy=policy, retries=retries)
        out["deadline"] = _positive(data, "deadline", 300.0, 3600.0)
    elif kind in ("hierarchical", "swarm"):
        default = "coordination" if kind == "swarm" else None
        out["capability"] = _capability(data, kind, default)
        out["payload"] = _object(data.get("payload"), "payload")
        out["deadline"] = _positive(data, "deadline", 300.0, 3600.0)
    else:  # market
        out["capability"] = _capability(data, "market")
        out["payload"] = _object(data.get("payload"), "payload")
        out["bid_window"] = _positive(data, "bid_window", 0.5, 60.0)
        if data.get("max_price") is not None:
            out["max_price"] = _positive(data, "max_price", 1.0, 1e12)
    return out


__all__ = [
    "ALIASES",
    "CAPABILITY_PREFIX",
    "WORKFLOW_TYPES",
    "check_workflow_data",
    "parse_workflow_type",
    "workflow_capability",
    "workflow_of",
]
