"""Application layer: commands, queries, their handlers and the ``CqrsBus``.

>>> p = await open_persistence("memory://")                        # doctest: +SKIP
>>> bus = build_bus(p.store, p.read_models, crypto)                 # doctest: +SKIP
>>> await bus.execute(SubmitTask("acme", "summarize", {"text": "hi"}))   # doctest: +SKIP
>>> await p.projector.catch_up()                                    # doctest: +SKIP
>>> page = await bus.query(ListTasks("acme"))                       # doctest: +SKIP
"""

from __future__ import annotations

from agentmesh.commands.bus import CqrsBus
from agentmesh.commands.facts import FactHandlers
from agentmesh.commands.handlers import CommandHandlers
from agentmesh.commands.messages import (
    ActivateAgent,
    AssignTask,
    CancelTask,
    CommandResult,
    CompleteTask,
    CreateAgent,
    CreateTenant,
    FailTask,
    GetAgent,
    GetMessage,
    GetTask,
    GetTenant,
    GrantQuota,
    ListAgents,
    ListTasks,
    ListTenants,
    MarkAgentHealthy,
    MarkAgentUnhealthy,
    PauseAgent,
    QuotaGrant,
    RecordHeartbeat,
    RecordTask,
    RegisterAgent,
    ResumeAgent,
    RetryTask,
    RunTask,
    StartTask,
    SubmitTask,
    SyncAgentCapabilities,
    TerminateAgent,
    TimeOutTask,
)
from agentmesh.commands.queries import QueryHandlers
from agentmesh.commands.safety import register_safety
from agentmesh.commands.tenant_state import (
    DeactivateTenant,
    ReactivateTenant,
    register_tenant_state,
)
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.base import EventStore
from agentmesh.store.queries import ReadModels


def build_bus(
    store: EventStore,
    read_models: ReadModels | None = None,
    crypto: EncryptionService | None = None,
) -> CqrsBus:
    """A bus with every command handler (and every query handler when read models exist)."""
    bus = CqrsBus()
    h = CommandHandlers(store, read_models, crypto)
    f = FactHandlers(h)
    for command_type, handler in (
        (CreateTenant, h.create_tenant),
        (RegisterAgent, h.register_agent),
        (ActivateAgent, h.activate_agent),
        (PauseAgent, h.pause_agent),
        (ResumeAgent, h.resume_agent),
        (TerminateAgent, h.terminate_agent),
        (RecordHeartbeat, h.record_heartbeat),
        (MarkAgentUnhealthy, h.mark_unhealthy),
        (MarkAgentHealthy, h.mark_healthy),
        (SyncAgentCapabilities, f.sync_capabilities),
        (SubmitTask, h.submit_task),
        (RecordTask, f.record_task),
        (RunTask, f.run_task),
        (AssignTask, h.assign_task),
        (StartTask, h.start_task),
        (CompleteTask, h.complete_task),
        (FailTask, h.fail_task),
        (TimeOutTask, h.time_out_task),
        (CancelTask, h.cancel_task),
        (RetryTask, h.retry_task),
    ):
        bus.register_command(command_type, handler)
    if h.quota is not None:
        bus.register_command(GrantQuota, h.quota.grant)
    register_safety(bus, h)
    register_tenant_state(bus, h)
    if read_models is not None:
        q = QueryHandlers(read_models)
        for query_type, qh in (
            (GetAgent, q.get_agent),
            (ListAgents, q.list_agents),
            (GetTask, q.get_task),
            (ListTasks, q.list_tasks),
            (ListTenants, q.list_tenants),
            (GetTenant, q.get_tenant),
            (GetMessage, q.get_message),
        ):
            bus.register_query(query_type, qh)
    return bus


__all__ = [
    "ActivateAgent",
    "AssignTask",
    "CancelTask",
    "CommandHandlers",
    "CommandResult",
    "CompleteTask",
    "CqrsBus",
    "CreateAgent",
    "CreateTenant",
    "DeactivateTenant",
    "FailTask",
    "GetAgent",
    "GetMessage",
    "GetTask",
    "GetTenant",
    "GrantQuota",
    "ListAgents",
    "ListTasks",
    "ListTenants",
    "MarkAgentHealthy",
    "MarkAgentUnhealthy",
    "PauseAgent",
    "QueryHandlers",
    "QuotaGrant",
    "ReactivateTenant",
    "RecordHeartbeat",
    "RecordTask",
    "RegisterAgent",
    "ResumeAgent",
    "RetryTask",
    "RunTask",
    "StartTask",
    "SubmitTask",
    "SyncAgentCapabilities",
    "TerminateAgent",
    "TimeOutTask",
    "build_bus",
]
