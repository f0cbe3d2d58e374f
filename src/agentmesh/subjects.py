"""The one place where broker subject names are built and parsed.

Every name a broker sees starts with the tenant (``am.<tenant>.<kind>...``); transports map
these names onto their own naming (topics, queues, streams). Nothing else in AgentMesh
formats a subject by hand.
"""

from __future__ import annotations

import re

from agentmesh import ids
from agentmesh.errors import ValidationError

PREFIX = "am"
SYSTEM_TENANT = "_system"
"""Reserved tenant for mesh-wide admin subjects (registry snapshots)."""

_TOKEN = re.compile(r"^[A-Za-z0-9_\-*>]+$")


def _check(value: str, what: str) -> str:
    if what == "tenant":
        return ids.check_tenant_id(value)
    if what == "agent id":
        return ids.check_agent_id(value)
    if what == "capability":
        return ids.check_capability(value)
    return ids.check_segment(value, what)


def stream_name(tenant: str, kind: str) -> str:
    """The stream (JetStream) that stores the durable subjects ``am.<tenant>.<kind>.>``."""
    return f"AM_{_check(tenant, 'tenant')}_{_check(kind, 'subject kind')}"


def task(tenant: str, capability: str) -> str:
    """Durable work queue of a capability: ``am.<tenant>.task.<capability>``."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.task.{_check(capability, 'capability')}"


def capability_group(capability: str) -> str:
    """Durable consumer group of a capability's task queue, shared by its agents:
    ``cap-<capability>`` (also the queue group of its request/reply subject)."""
    return f"cap-{_check(capability, 'capability')}"


def inbox_group(agent_id: str) -> str:
    """Durable consumer group of one agent's inbox: ``inbox-<agent_id>``."""
    return f"inbox-{_check(agent_id, 'agent id')}"


def rpc(tenant: str, capability: str) -> str:
    """Request/reply endpoint of a capability (core, not durable)."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.rpc.{_check(capability, 'capability')}"


def agent(tenant: str, agent_id: str) -> str:
    """Direct inbox of one agent: ``am.<tenant>.agent.<agent_id>``."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.agent.{_check(agent_id, 'agent id')}"


def inbox(tenant: str, agent_id: str) -> str:
    """Durable inbox of one agent (routed dispatch): ``am.<tenant>.inbox.<agent_id>``."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.inbox.{_check(agent_id, 'agent id')}"


def event(tenant: str, event_type: str) -> str:
    """Domain/integration events: ``am.<tenant>.evt.<type>`` (type may contain dots)."""
    parts = event_type.split(".")
    for p in parts:
        _check(p, "event type")
    return f"{PREFIX}.{_check(tenant, 'tenant')}.evt.{event_type}"


TASK_OUTCOMES = ("task.completed", "task.failed", "task.cancelled", "task.rejected")


def events_of(event_type: str, tenant: str = "*") -> str:
    """One event type of a tenant, or of every tenant with ``*`` (admin paths)."""
    if tenant == "*":
        for p in event_type.split("."):
            _check(p, "event type")
        return f"{PREFIX}.*.evt.{event_type}"
    return event(tenant, event_type)


def task_outcome(tenant: str, outcome: str, task_id: str) -> str:
    """Where a task's outcome event lives: ``am.<tenant>.evt.task.<outcome>.<task_id>``.

    One subject per task makes the durable event its own record: the latest message on
    the subject answers "did task X complete?" without a second write.
    """
    if outcome not in TASK_OUTCOMES:
        raise ValidationError(f"unknown task outcome {outcome!r}; use one of {TASK_OUTCOMES}")
    return f"{event(tenant, outcome)}.{_check(task_id, 'task id')}"


def task_outcomes(tenant: str, task_id: str) -> str:
    """Every outcome event of one task: ``am.<tenant>.evt.task.*.<task_id>``."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.evt.task.*.{_check(task_id, 'task id')}"


TASK_PROGRESS = ("started", "retrying")


def task_progress(tenant: str, kind: str, task_id: str) -> str:
    """Where an agent's runtime says it started a task or will retry it after a failed
    attempt: ``am.<tenant>.run.<kind>.<task_id>`` (core, not stored: the control plane
    records it; outcomes stay on :func:`task_outcome`)."""
    if kind not in TASK_PROGRESS:
        raise ValueError(f"unknown task progress {kind!r}; use one of {TASK_PROGRESS}")
    return f"{PREFIX}.{_check(tenant, 'tenant')}.run.{kind}.{_check(task_id, 'task id')}"


def task_progress_all(tenant: str = "*") -> str:
    """Every task progress event of a tenant (``*`` = every tenant, admin only)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.run.*.*"


def task_offers(tenant: str = "*") -> str:
    """Every capability queue of a tenant: ``am.<tenant>.task.*`` (admin: ``*``)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.task.*"


def capability_offers(capability: str, tenant: str = "*") -> str:
    """One capability's queue in every tenant: ``am.*.task.<capability>`` (admin)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.task.{_check(capability, 'capability')}"


def inbox_offers(tenant: str = "*") -> str:
    """Every agent inbox of a tenant: ``am.<tenant>.inbox.*`` (admin: ``*``)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.inbox.*"


def task_outcomes_all(tenant: str = "*") -> str:
    """Every task outcome event: ``am.<tenant>.evt.task.*.*`` (admin: ``*``)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.evt.task.*.*"


def event_pattern(tenant: str, event_type: str) -> str:
    """The subscription pattern of an event type (task outcomes carry the task id last)."""
    return (
        f"{event(tenant, event_type)}.*"
        if event_type in TASK_OUTCOMES
        else event(tenant, event_type)
    )


VETTING_CAPABILITY = "safety-vetting"
"""The queue of tasks submitted with ``require_vetting``: the safety agent takes them
there and forwards each approved one to its capability's queue (or rejects it)."""


def vetting(tenant: str) -> str:
    """Where tasks wait for the safety agent: ``am.<tenant>.task.safety-vetting``."""
    return task(tenant, VETTING_CAPABILITY)


def heartbeat(tenant: str, agent_id: str) -> str:
    return f"{PREFIX}.{_check(tenant, 'tenant')}.hb.{_check(agent_id, 'agent id')}"


def heartbeats(tenant: str = "*") -> str:
    """Wildcard for every heartbeat of a tenant (``*`` = every tenant, admin only)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.hb.*"


def blackboard(tenant: str, domain: str) -> str:
    return f"{PREFIX}.{_check(tenant, 'tenant')}.bb.{_check(domain, 'domain')}"


def market(tenant: str, *parts: str) -> str:
    for p in parts:
        _check(p, "market subject part")
    return ".".join([PREFIX, _check(tenant, "tenant"), "mkt", *parts])


def system(tenant: str, name: str) -> str:
    """Control subjects of a tenant: ``am.<tenant>.sys.<name>`` (ping, control ...)."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.sys.{_check(name, 'name')}"


def quota(tenant: str = "*") -> str:
    """Quota requests of submitters that have only the broker (``Mesh.submit``), answered
    by the control plane: ``am.<tenant>.sys.quota`` (the plane listens on ``*``)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.sys.quota"


def decentralized(tenant: str, name: str) -> str:
    """Requests to every decentralized agent of a tenant (``am.<tenant>.dc.<name>``, e.g.
    ``status``) and the reply subjects of their scatter-gather (``reply-<uuid>``)."""
    return f"{PREFIX}.{_check(tenant, 'tenant')}.dc.{_check(name, 'name')}"


def registry_snapshot() -> str:
    """Mesh-wide registry snapshot served by ``agentmesh up`` (admin path)."""
    return f"{PREFIX}.{SYSTEM_TENANT}.sys.registry"


def dead_letter(subject: str) -> str:
    """Dead-letter subject for a subject: ``am.<t>.dlq.<rest>`` (tenant kept first)."""
    parts = subject.split(".")
    if len(parts) >= 3 and parts[0] == PREFIX:
        if parts[2] == "dlq":
            return subject
        return ".".join([PREFIX, parts[1], "dlq", *parts[2:]])
    return f"{PREFIX}.{SYSTEM_TENANT}.dlq.{subject}"


def safety_events(tenant: str = "*") -> str:
    """Every safety event of a tenant (``*`` = every tenant, admin only):
    ``am.<tenant>.evt.safety.>`` (violation, quarantined, alignment)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.evt.safety.>"


def safety_policy_requests(tenant: str = "*") -> str:
    """Where a process asks the control plane for its tenant's safety policy (request/reply):
    ``am.<tenant>.sys.safety-policy`` (``*`` = every tenant, the control plane's side)."""
    t = tenant if tenant == "*" else _check(tenant, "tenant")
    return f"{PREFIX}.{t}.sys.safety-policy"


def dead_letters(tenant: str = "*") -> str:
    return f"{PREFIX}.{tenant}.dlq.>"


def tenant_of(subject: str) -> str | None:
    """The tenant a subject belongs to, or None for a foreign subject."""
    parts = subject.split(".")
    if len(parts) >= 2 and parts[0] == PREFIX and parts[1] not in ("*", ">"):
        return parts[1]
    return None


def kind_of(subject: str) -> str | None:
    parts = subject.split(".")
    if len(parts) >= 3 and parts[0] == PREFIX:
        return parts[2]
    return None


def matches(pattern: str, subject: str) -> bool:
    """NATS-style match: ``*`` is one token, a final ``>`` is one or more tokens."""
    p = pattern.split(".")
    s = subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s):
            return False
        if tok != "*" and tok != s[i]:
            return False
    return len(p) == len(s)


def is_valid(subject: str) -> bool:
    parts = subject.split(".")
    if not all(parts):
        return False
    for i, tok in enumerate(parts):
        if not _TOKEN.match(tok):
            return False
        if (">" in tok and (tok != ">" or i != len(parts) - 1)) or ("*" in tok and tok != "*"):
            return False
    return True
