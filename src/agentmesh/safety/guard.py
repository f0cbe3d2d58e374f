"""Safety on the task path of one process: the policy in force, checks, quarantine.

A :class:`SafetyGuard` belongs to a :class:`~agentmesh.mesh.Mesh` (one per process). The
runtime asks it about every task offer before the handler runs and about every result
before the outcome is published (:mod:`agentmesh.runtime.execution`). It keeps an
:class:`~agentmesh.safety.monitor.AgentMonitor` per local agent; when an agent's output
violates the policy ``max_violations`` times within the window, or its alignment score
falls below 0.49, the agent is quarantined *here at once* (it stops taking work, its
running tasks go back to the queue) and the decision is broadcast on
``am.<tenant>.sys.safety``, which every process of the tenant honours, and recorded as a
durable ``safety.quarantined`` event for the control plane. Only an admin's
``safety.release`` (REST or CLI, through the control plane) lifts it.

The same subject carries new policies (``safety.policy``, applied when their version is
newer) and human feedback (``safety.feedback``). ``SIGHUP`` rereads
``AGENTMESH_SAFETY_POLICY``; a bad file is refused and the last good policy stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh import subjects
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, SafetyRejected
from agentmesh.observability import metrics
from agentmesh.safety.engine import Finding, SafetyChecker, Verdict
from agentmesh.safety.loader import load_policy_file
from agentmesh.safety.monitor import AgentMonitor
from agentmesh.safety.policy import DEFAULT_POLICY, Policy, policy_from_data
from agentmesh.transports import Message, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.agent import AgentRuntime
    from agentmesh.runtime.context import TaskContext

CHANNEL = "safety"
"""``am.<tenant>.sys.safety``: policy, quarantine, release and feedback broadcasts."""


def channel(tenant: str) -> str:
    return subjects.system(tenant, CHANNEL)


class SafetyGuard:
    """The policy in force in this process and the safety state of its agents."""

    def __init__(self, mesh: Mesh, policy: Policy | None = None, path: Path | None = None) -> None:
        self.mesh = mesh
        self.path = path
        self.checker = SafetyChecker(policy or (load_policy_file(path) if path else DEFAULT_POLICY))
        self.monitors: dict[tuple[str, str], AgentMonitor] = {}
        self.reasons: dict[tuple[str, str], str] = {}  # why a local agent is quarantined
        self._subs: dict[str, Subscription] = {}
        self._hup = False
        self._fetches: set[asyncio.Task[None]] = set()
        self.reloads = 0
        self.refusals = 0  # policies refused whole (a bad file on reload, a bad broadcast)

    @classmethod
    def from_settings(cls, mesh: Mesh) -> SafetyGuard | None:
        s = mesh.settings
        if not s.agentmesh_safety:
            return None
        return cls(mesh, path=s.agentmesh_safety_policy)

    @property
    def policy(self) -> Policy:
        return self.checker.policy

    @property
    def fetching(self) -> bool:
        """Whether a tenant's policy is still being asked of the control plane."""
        return bool(self._fetches)

    # -- policy -------------------------------------------------------------------------
    def set_policy(self, policy: Policy) -> None:
        """Put a (validated) policy in force; compiling it first, so a bad one changes nothing."""
        checker = SafetyChecker(policy)
        self.checker = checker
        self.reloads += 1
        logger.info("safety policy {!r} version {} in force", policy.name, policy.version)

    def reload(self) -> bool:
        """Reread the policy file; on error log it and keep the last good policy."""
        if self.path is None:
            return False
        try:
            self.set_policy(load_policy_file(self.path))
        except AgentMeshError as exc:
            self.refusals += 1
            logger.error(
                "safety policy reload refused, keeping version {}: {}", self.policy.version, exc
            )
            return False
        return True

    # -- lifecycle ----------------------------------------------------------------------
    async def watch(self, tenant: str) -> None:
        """Listen to the tenant's safety channel (once per tenant)."""
        if tenant in self._subs:
            return
        self._subs[tenant] = await self.mesh.transport.subscribe(channel(tenant), self._on_channel)
        if self.mesh.transport.capabilities.request_reply:  # the policy an admin put, if any
            fetch = asyncio.get_running_loop().create_task(self._fetch_policy(tenant))
            self._fetches.add(fetch)
            fetch.add_done_callback(self._fetches.discard)
        if not self._hup and self.path is not None:
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                # only the main thread's loop can own a signal (not in tests' threads)
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
                self._hup = True

    async def _fetch_policy(self, tenant: str) -> None:
        """Ask the control plane for the tenant's policy (a process started after a PUT);
        without a control plane the file's (or the built-in) policy stays."""
        ask = Envelope.create("safety.policy.get", {}, tenant_id=tenant, source="agentmesh.safety")
        try:
            reply = await self.mesh.transport.request(
                subjects.safety_policy_requests(tenant), ask, timeout=2.0
            )
        except (AgentMeshError, TimeoutError) as exc:
            logger.debug("no safety policy from a control plane for {}: {}", tenant, exc)
            return
        if isinstance(reply.payload.get("policy"), dict):
            await self._on_policy(reply.payload)

    async def stop(self) -> None:
        for fetch in list(self._fetches):
            fetch.cancel()
        subs, self._subs = list(self._subs.values()), {}
        for sub in subs:
            with contextlib.suppress(Exception):  # stopping: the broker may already be gone
                await sub.unsubscribe()
        if self._hup:
            with contextlib.suppress(Exception):  # stopping: the loop may already be closed
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._hup = False

    def monitor(self, runtime: AgentRuntime) -> AgentMonitor:
        key = (runtime.tenant_id, runtime.agent_id)
        found = self.monitors.get(key)
        if found is None:
            found = self.monitors[key] = AgentMonitor()
            metrics.alignment_score.labels(runtime.agent_id).set(found.alignment.score)
        return found

    def heartbeat_fields(self, runtime: AgentRuntime) -> dict[str, Any]:
        """What an agent's heartbeat tells about its safety (registry, UI)."""
        key = (runtime.tenant_id, runtime.agent_id)
        mon = self.monitors.get(key)
        fields: dict[str, Any] = (
            {"alignment_score": 1.0, "alignment": "aligned"}
            if mon is None
            else {"alignment_score": mon.alignment.score, "alignment": mon.alignment.status}
        )
        if runtime.status == AgentStatus.QUARANTINED and key in self.reasons:
            fields["quarantine_reason"] = self.reasons[key]
        return fields

    # -- checks -------------------------------------------------------------------------
    def check_offer(self, runtime: AgentRuntime, ctx: TaskContext) -> Verdict:
        """The verdict on a task before its handler runs (rate limit included)."""
        env = ctx.envelope
        if env.routing.get("vetting") == "required":  # separation of duties
            finding = Finding(
                "vetting", "deny", "high", "the task must be vetted by a safety agent first"
            )
            metrics.safety_violations.labels(finding.rule, finding.severity).inc()
            return Verdict("deny", (finding,), env.payload)
        verdict = self.checker.check_offer(
            env.payload, env.context, capability=ctx.capability, agent_type=runtime.agent_type
        )
        for f in verdict.violations:
            metrics.safety_violations.labels(f.rule, f.severity).inc()
        return verdict

    def over_rate(self, runtime: AgentRuntime) -> bool:
        rate = self.policy.rate_limit
        return rate is not None and not self.monitor(runtime).allow_request(rate, time.monotonic())

    async def check_result(self, runtime: AgentRuntime, ctx: TaskContext, result: Any) -> Verdict:
        """The verdict on a result (``value`` is what to publish); violations count
        against the agent and may quarantine it."""
        verdict = self.checker.check_result(result, agent_type=runtime.agent_type)
        mon = self.monitor(runtime)
        violations = verdict.violations
        if not violations:
            if mon.alignment.score < 1.0:  # a clean outcome earns trust back (slowly)
                mon.alignment = mon.alignment.outcome(True)
                metrics.alignment_score.labels(runtime.agent_id).set(mon.alignment.score)
            return verdict
        for f in violations:
            metrics.safety_violations.labels(f.rule, f.severity).inc()
        count = mon.record(violations, self.policy.quarantine, time.monotonic())
        metrics.alignment_score.labels(runtime.agent_id).set(mon.alignment.score)
        main = verdict.main
        assert main is not None
        logger.warning(
            "agent {} violated {} on task {} ({}/{} in window): {}",
            runtime.agent_id,
            main.rule,
            ctx.task_id,
            count,
            self.policy.quarantine.max_violations,
            main.reason,
        )
        await self._publish_event(
            runtime.tenant_id,
            "safety.violation",
            {
                "agent_id": runtime.agent_id,
                "task_id": ctx.task_id,
                "findings": [f.to_dict() for f in violations],
                "in_window": count,
                "alignment": mon.alignment.to_dict(),
            },
        )
        why = mon.must_quarantine(self.policy.quarantine)
        if why is not None:
            await self.quarantine(runtime, why, rule=main.rule)
        return verdict

    def runner(self, runtime: AgentRuntime) -> Callable[[TaskContext], Awaitable[dict[str, Any]]]:
        """``runtime.invoke`` under the policy (see :meth:`run_request`)."""
        return functools.partial(self.run_request, runtime)

    async def run_request(self, runtime: AgentRuntime, ctx: TaskContext) -> dict[str, Any]:
        """Run a request (or direct message) under the policy: checked before the handler
        and after it; a denial raises :class:`~agentmesh.errors.SafetyRejected`."""
        verdict = self.check_offer(runtime, ctx)
        if verdict.allowed:
            verdict = await self.check_result(runtime, ctx, await runtime.invoke(ctx))
            if verdict.allowed:
                return dict(verdict.value)
        raise SafetyRejected(f"rejected by safety rule {verdict.rule}: {verdict.reason}")

    # -- quarantine ---------------------------------------------------------------------
    async def quarantine(self, runtime: AgentRuntime, reason: str, *, rule: str = "") -> None:
        """Quarantine a local agent now and tell every process and the control plane."""
        if not runtime.quarantine():
            return
        self.reasons[(runtime.tenant_id, runtime.agent_id)] = reason
        mon = self.monitor(runtime)
        payload = {
            "agent_id": runtime.agent_id,
            "reason": reason,
            "rule": rule,
            "violations": len(mon.violations),
            "alignment": mon.alignment.to_dict(),
        }
        logger.warning("agent {} quarantined: {}", runtime.agent_id, reason)
        env = Envelope.create(
            "safety.quarantine", payload, tenant_id=runtime.tenant_id, source=runtime.agent_id
        )
        await self.mesh.transport.publish(channel(runtime.tenant_id), env)
        await self._publish_event(runtime.tenant_id, "safety.quarantined", payload, durable=True)

    async def _publish_event(
        self, tenant: str, kind: str, payload: dict[str, Any], *, durable: bool = False
    ) -> None:
        env = Envelope.create(kind, payload, tenant_id=tenant, source="agentmesh.safety")
        try:
            await self.mesh.transport.publish(subjects.event(tenant, kind), env, durable=durable)
        except AgentMeshError as exc:
            logger.warning("safety event {} not published: {}", kind, exc)

    async def _on_channel(self, msg: Message) -> None:
        env = msg.envelope
        p = env.payload
        if env.type == "safety.policy":
            await self._on_policy(p)
            return
        agent_id = p.get("agent_id")
        runtime = self.mesh.agents.get(agent_id) if isinstance(agent_id, str) else None
        if runtime is None or runtime.tenant_id != env.tenant_id:
            return
        if env.type == "safety.quarantine":
            if runtime.quarantine():
                self.reasons[(runtime.tenant_id, runtime.agent_id)] = str(p.get("reason", ""))
                logger.warning("agent {} quarantined by the mesh: {}", agent_id, p.get("reason"))
        elif env.type == "safety.release":
            self.monitor(runtime).reset()
            self.reasons.pop((runtime.tenant_id, runtime.agent_id), None)
            metrics.alignment_score.labels(runtime.agent_id).set(1.0)
            if await runtime.release():
                logger.info("agent {} released by {}: {}", agent_id, p.get("by"), p.get("reason"))
        elif env.type == "safety.feedback":
            mon = self.monitor(runtime)
            try:
                mon.alignment = mon.alignment.feedback(p.get("rating"), p.get("targets") or ())  # type: ignore[arg-type]
            except AgentMeshError as exc:
                logger.warning("feedback for {} ignored: {}", agent_id, exc)
                return
            metrics.alignment_score.labels(runtime.agent_id).set(mon.alignment.score)
            await self._publish_event(
                runtime.tenant_id,
                "safety.alignment",
                {"agent_id": runtime.agent_id, "alignment": mon.alignment.to_dict()},
            )
            why = mon.must_quarantine(self.policy.quarantine)
            if why is not None:
                await self.quarantine(runtime, why, rule="alignment")

    async def _on_policy(self, p: dict[str, Any]) -> None:
        try:
            policy = policy_from_data(p.get("policy"))
            if policy.version <= self.policy.version and p.get("force") is not True:
                return
            self.set_policy(policy)
        except AgentMeshError as exc:
            self.refusals += 1
            logger.error(
                "broadcast safety policy refused, keeping version {}: {}", self.policy.version, exc
            )
