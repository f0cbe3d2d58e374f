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
    RecordMessage,
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
from agentmesh.commands.published import MessageHandlers
from agentmesh.commands.queries import QueryHandlers
from agentmesh.commands.safety import register_safety
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
    bus.register_command(CreateTenant, h.create_tenant)
    bus.register_command(RegisterAgent, h.register_agent)
    bus.register_command(ActivateAgent, h.activate_agent)
    bus.register_command(PauseAgent, h.pause_agent)
    bus.register_command(ResumeAgent, h.resume_agent)
    bus.register_command(TerminateAgent, h.terminate_agent)
    bus.register_command(RecordHeartbeat, h.record_heartbeat)
    bus.register_command(MarkAgentUnhealthy, h.mark_unhealthy)
    bus.register_command(MarkAgentHealthy, h.mark_healthy)
    bus.register_command(SyncAgentCapabilities, f.sync_capabilities)
    bus.register_command(SubmitTask, h.submit_task)
    bus.register_command(RecordTask, f.record_task)
    bus.register_command(RunTask, f.run_task)
    bus.register_command(AssignTask, h.assign_task)
    bus.register_command(StartTask, h.start_task)
    bus.register_command(CompleteTask, h.complete_task)
    bus.register_command(FailTask, h.fail_task)
    bus.register_command(TimeOutTask, h.time_out_task)
    bus.register_command(CancelTask, h.cancel_task)
    bus.register_command(RetryTask, h.retry_task)
    if h.quota is not None:
        bus.register_command(GrantQuota, h.quota.grant)
    bus.register_command(RecordMessage, MessageHandlers(store, crypto).record_message)
    register_safety(bus, h)
    if read_models is not None:
        q = QueryHandlers(read_models)
        bus.register_query(GetAgent, q.get_agent)
        bus.register_query(ListAgents, q.list_agents)
        bus.register_query(GetTask, q.get_task)
        bus.register_query(ListTasks, q.list_tasks)
        bus.register_query(ListTenants, q.list_tenants)
        bus.register_query(GetTenant, q.get_tenant)
        bus.register_query(GetMessage, q.get_message)
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
    "RecordHeartbeat",
    "RecordMessage",
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
