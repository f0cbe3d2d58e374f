"""The control plane's composition: store, projections, audit trail, outbox relay and
task tracker.

``agentmesh up`` builds one next to its :class:`~agentmesh.mesh.Mesh`; the REST/WebSocket
API reads and commands through it::

    plane = ControlPlane(settings, mesh)
    await plane.start()          # migrations, relay, projector + audit trail, tracker
    await plane.bus.execute(SubmitTask("acme", "summarize", {"text": "..."}))
    await plane.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger

from agentmesh.agents.llm_audit import ToolCallAudit
from agentmesh.commands import CqrsBus, build_bus
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError
from agentmesh.mesh import Mesh
from agentmesh.patterns.workflows import WorkflowHost
from agentmesh.runtime.approvals import ApprovalService
from agentmesh.runtime.leader import Leadership, leader_for
from agentmesh.runtime.ledger import ledger_for
from agentmesh.runtime.quota_responder import QuotaResponder
from agentmesh.runtime.recorder import TaskRecorder
from agentmesh.runtime.safety_plane import SafetyPlane
from agentmesh.runtime.tracker import TaskTracker
from agentmesh.security.audit import AuditAction, AuditEntry, AuditStatus, AuditStore
from agentmesh.security.crypto import EncryptionService
from agentmesh.store.audit_log import audit_store_for
from agentmesh.store.audit_trail import AuditTrail
from agentmesh.store.outbox import OutboxRelay
from agentmesh.store.persistence import Persistence, open_persistence


class ControlPlane:
    """Everything ``agentmesh up`` runs besides agents and the HTTP server.

    Several replicas may share one PostgreSQL store and one broker: the outbox relay and
    the tracker's sweep run on the :attr:`leader` only; the recorder, the tracker's agent
    commands, the projector and the safety plane run everywhere (idempotent; see the
    README's *Cluster mode*)."""

    def __init__(
        self,
        settings: Settings,
        mesh: Mesh,
        *,
        projection_interval: float = 0.2,
        sweep_interval: float = 5.0,
    ) -> None:
        self.settings = settings.with_secrets()
        self.mesh = mesh
        self.projection_interval = projection_interval
        self.sweep_interval = sweep_interval
        self.persistence: Persistence | None = None
        self.audit: AuditStore | None = None
        self.crypto = EncryptionService(self.settings.encryption_key or "")
        self._bus: CqrsBus | None = None
        self.tracker: TaskTracker | None = None
        self.recorder: TaskRecorder | None = None
        self.quota: QuotaResponder | None = None
        self.workflows: WorkflowHost | None = None
        self._tool_audit: ToolCallAudit | None = None
        self.safety: SafetyPlane | None = None
        self.approvals: ApprovalService | None = None
        self.relay: OutboxRelay | None = None
        self.leader: Leadership = leader_for(self.settings.effective_database_url)
        """Held by one replica of a shared store: it runs the relay and the tracker's sweep."""
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def bus(self) -> CqrsBus:
        if self._bus is None:
            raise RuntimeError("the control plane is not started")
        return self._bus

    async def start(self) -> None:
        """Open (and migrate) the store, then run relay, projector (feeding the audit
        trail of :attr:`audit`) and tracker."""
        url = self.settings.effective_database_url
        p = self.persistence = await open_persistence(url, crypto=self.crypto)
        self.audit = audit_store_for(url, db=p.db)
        await self.audit.connect()
        p.projector.attach(AuditTrail(self.audit))
        self._bus = build_bus(p.store, p.read_models, self.crypto)
        await self.leader.start()
        self.tracker = TaskTracker(
            self.mesh.transport,
            self._bus,
            self.mesh.registry,
            ledger_for(self.mesh.transport),
            sweep_interval=self.sweep_interval,
            leading=lambda: self.leader.is_leader,
        )
        await self.tracker.start()
        self.recorder = TaskRecorder(
            self.mesh.transport,
            self._bus,
            default_attempts=self.settings.agentmesh_max_deliver,
            on_rejected=self._audit_rejected,
        )
        await self.recorder.start()
        self.quota = QuotaResponder(self.mesh.transport, self._bus)
        await self.quota.start()
        self.workflows = WorkflowHost(self.mesh, self._bus)  # runs submitted workflow types
        await self.workflows.start()
        self._tool_audit = ToolCallAudit(self.mesh.transport, self.audit)
        await self._tool_audit.start()
        self.safety = SafetyPlane(self.mesh.transport, self._bus, self.mesh.registry)
        await self.safety.start()
        self.approvals = ApprovalService(
            self.mesh.transport,
            self._bus,
            p.read_models,
            webhook_secret=self.settings.jwt_secret_key or "",
        )
        await self.approvals.start()  # approval requests over the bus, deadlines
        relay = self.relay = OutboxRelay(p.store, self.mesh.transport)
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(
                self._supervise(
                    "outbox relay",
                    lambda: relay.run(self._stop, leading=lambda: self.leader.is_leader),
                )
            ),
            asyncio.create_task(self._project()),
        ]

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop until stop; an unexpected error restarts it (logged)."""
        while not self._stop.is_set():
            try:
                await loop()
            except Exception as exc:  # noqa: BLE001 - a background loop must outlive any one failure
                logger.error("{} failed ({}: {}); restarting", name, type(exc).__name__, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)

    async def _audit_rejected(self, env: Envelope, subject: str, reason: str) -> None:
        """An offer the recorder could not record: dead-lettered, and audited here."""
        if self.audit is None:
            return
        entry = AuditEntry.new(
            AuditAction.TASK_FAILED,
            AuditStatus.FAILURE,
            tenant_id=env.tenant_id,
            actor=str(env.metadata.get("source") or "bus"),
            resource_type="task",
            resource_id=env.id,
            details={"operation": "record_offer", "subject": subject, "reason": reason},
        )
        try:
            await self.audit.append(entry)
        except AgentMeshError as exc:
            logger.warning("audit of rejected offer {} failed: {}", env.id, exc)

    async def _project(self) -> None:
        assert self.persistence is not None
        while not self._stop.is_set():
            try:
                await self.persistence.projector.catch_up()
            except Exception as exc:  # noqa: BLE001 - a corrupted row stops projecting, loudly, until fixed
                logger.error("projections stopped: {}", exc)
                await asyncio.sleep(5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.projection_interval)

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(
                Exception
            ):  # stopping: a loop's error was logged where it happened
                await asyncio.wait_for(task, 10)
        self._tasks.clear()
        if self.workflows is not None:
            await self.workflows.stop()
        if self.quota is not None:
            await self.quota.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        if self.tracker is not None:
            await self.tracker.stop()
        if self._tool_audit is not None:
            await self._tool_audit.stop()
        if self.safety is not None:
            await self.safety.stop()
        if self.approvals is not None:
            await self.approvals.stop()
        await self.leader.stop()
        if self.audit is not None:
            await self.audit.close()
            self.audit = None
        if self.persistence is not None:
            await self.persistence.close()
            self.persistence = None
