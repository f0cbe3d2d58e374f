"""Swarm: a leader drives DAG jobs over worker agents; any coordinator takes over.

Roles: ``leader`` (the coordinator holding the lease), ``coordinator`` (a
standby :class:`SwarmOrchestrator`), ``worker`` and ``specialist`` (:class:`SwarmWorker`;
specialists are preferred for their capabilities) and ``observer`` (:class:`SwarmObserver`,
reads the collective metrics).

All swarm state is durable, in the key-value bucket ``AM_SWARM`` (keys
``<tenant>.<swarm>.*``): the leader lease, members, jobs (a DAG of tasks with the statuses
pending, in_progress, completed, failed, cancelled) and shared knowledge. So:

* **jobs**: a job submitted to a coordinator's capability (``mesh.submit``) is written to
  the store and the handler waits for it to finish; if that coordinator dies the durable
  task is redelivered to another one, which finds the job and waits for it;
* **leader failover**: the leader renews its lease every heartbeat interval; a lease not
  renewed for ``lease_ttl`` (the health-check timeout) is taken over by compare-and-set by
  another coordinator, which adopts the tasks in flight (their tries, agents and outcomes
  are in the store and the task ledger) so no task is lost;
* **scheduling**: ready tasks (dependencies completed) go to live members with the
  capability, ranked specialists first, then performance (default 0.8) desc, load asc; a
  member that goes silent has its tasks reassigned, a failed task is retried elsewhere
  (``retries``), and the dependents of a task that fails for good are cancelled;
* **collective metrics** on ``am.<t>.evt.swarm.<swarm>.metrics``; **knowledge sharing**
  (``share_knowledge`` / ``knowledge``) and **help requests** between workers
  (``request_help``: a peer with the capability runs the work and answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    ConcurrencyError,
    Conflict,
    SwarmJobFailed,
)
from agentmesh.kv import KeyValueStore, KvEntry, open_kv
from agentmesh.observability.process_metrics import collaboration
from agentmesh.patterns import names
from agentmesh.patterns.assignments import Assignment, Assignments
from agentmesh.patterns.swarm.jobs import (
    BUCKET,
    DEFAULT_PERFORMANCE,
    TERMINAL,
    cancel_blocked,
    parse_job,
    ready_tasks,
)
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh


class SwarmStore:
    """The durable state of one swarm (module docstring)."""

    def __init__(self, mesh: Mesh, swarm_id: str, kv: KeyValueStore | None = None) -> None:
        self.tenant = mesh.tenant
        self.swarm_id = swarm_id
        self.kv = kv or open_kv(mesh.transport, BUCKET)

    def key(self, *parts: str) -> str:
        return names.kv_key(self.tenant, self.swarm_id, *parts)

    async def get(self, *parts: str) -> tuple[Any, int] | None:
        entry = await self.kv.get(self.key(*parts))
        if entry is None or entry.value is None:
            return None
        return orjson.loads(entry.value), entry.revision

    async def members(self) -> dict[str, dict[str, Any]]:
        out = {}
        for k in await self.kv.keys(self.key("member") + ".*"):
            got = await self.kv.get(k)
            if got is not None and got.value is not None:
                out[k.rsplit(".", 1)[1]] = orjson.loads(got.value)
        return out

    async def job_ids(self) -> list[str]:
        return [k.rsplit(".", 1)[1] for k in await self.kv.keys(self.key("job") + ".*")]


class SwarmOrchestrator(AgentRuntime):
    """A coordinator of a swarm; the one holding the lease is the leader (module docstring).

    Its capabilities accept jobs: ``await mesh.submit("coordination", {"tasks": [...]})``.
    """

    def __init__(
        self,
        mesh: Mesh,
        agent_id: str,
        *,
        capabilities: Mapping[str, int] | Iterable[str] | str = "coordination",
        swarm_id: str | None = None,
        lease_ttl: float | None = None,
        retries: int = 2,
        max_concurrent: int = 64,
    ) -> None:
        super().__init__(
            mesh,
            agent_id,
            self._accept_job,
            capabilities=capabilities,
            max_concurrent=max_concurrent,
        )
        self.swarm_id = swarm_id or agent_id
        self.store = SwarmStore(mesh, self.swarm_id)
        self.lease_ttl = lease_ttl or mesh.settings.agentmesh_health_check_timeout
        self.interval = mesh.settings.agentmesh_heartbeat_interval
        self.retries = retries
        self.term = 0
        self.is_leader = False
        self.leader_since: float | None = None
        self.completed = 0
        self.failed = 0
        self.assignments = Assignments(
            mesh, source=f"swarm:{agent_id}", reconcile_interval=1.0, chooser=self._choose
        )
        self._members: dict[str, dict[str, Any]] = {}
        self._tracked: dict[str, tuple[str, str, Assignment]] = {}  # key -> (job, task, a)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_rev = 0
        self._metrics_at = 0.0

    @property
    def role(self) -> str:
        return "leader" if self.is_leader else "coordinator"

    def heartbeat_payload(self) -> dict[str, Any]:
        return {**super().heartbeat_payload(), "swarm_id": self.swarm_id, "role": self.role}

    async def start(self) -> None:
        await super().start()
        await self.assignments.start()
        self._loop_task = asyncio.create_task(self._lead_loop())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self.is_leader:  # hand over at once instead of waiting for the lease to lapse
            with contextlib.suppress(Exception):  # the lease lapses anyway if the delete fails
                await self.store.kv.delete(self.store.key("leader"))
            self.is_leader = False
        await super().stop()
        await self.assignments.stop()

    # -- jobs (any coordinator) ---------------------------------------------------------
    async def _accept_job(self, task: TaskContext) -> dict[str, Any]:
        job_id = task.task_id
        names.kv_key("x", job_id)
        if task.payload.get("tasks") is None and not task.payload.get("capability"):
            members = await self.store.members()
            caps = sorted({c for m in members.values() for c in m.get("capabilities", [])})
            default = caps[0] if caps else None
        else:
            default = None
        job = parse_job(task.payload, default)
        job["job_id"] = job_id
        with contextlib.suppress(Conflict):  # already there: a redelivery after a crash
            await self.store.kv.create(self.store.key("job", job_id), orjson.dumps(job))
        self._wake.set()
        return await self.wait_job(job_id, task)

    async def wait_job(self, job_id: str, task: TaskContext | None = None) -> dict[str, Any]:
        done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def on_change(entry: KvEntry) -> None:
            if entry.value is None or done.done():
                return
            job = orjson.loads(entry.value)
            if job.get("status") in ("completed", "failed"):
                done.set_result(job)

        watch = await self.store.kv.watch(self.store.key("job", job_id), on_change)
        try:
            job = await done
        finally:
            await watch.stop()
        results = {tid: t.get("result") for tid, t in job["tasks"].items()}
        if job["status"] == "failed":
            bad = {
                tid: t.get("error") for tid, t in job["tasks"].items() if t["status"] != "completed"
            }
            raise SwarmJobFailed(f"swarm job {job_id} failed: {bad}")
        return {"job_id": job_id, "swarm_id": self.swarm_id, "results": results}

    # -- leadership ---------------------------------------------------------------------
    async def _lead_loop(self) -> None:
        last_renew = 0.0
        while True:
            try:
                now = time.monotonic()
                if now - last_renew >= self.interval:
                    await self._hold_lease()
                    last_renew = now
                if self.is_leader:
                    await self._drive()
            except Exception:  # noqa: BLE001 - the leader loop survives a failed pass
                logger.exception("swarm {} leader loop failed on {}", self.swarm_id, self.agent_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(self.interval, 0.25))
            self._wake.clear()

    async def _hold_lease(self) -> None:
        kv, key = self.store.kv, self.store.key("leader")
        now = time.time()
        found = await self.store.get("leader")
        mine = {"leader": self.agent_id, "term": self.term, "renewed_at": now}
        try:
            if found is None:
                self.term = 1 + (self.term or 0)
                mine["term"] = self.term
                self._lease_rev = await kv.create(key, orjson.dumps(mine))
                return await self._became_leader()
            lease, rev = found
            if lease["leader"] == self.agent_id and self.is_leader:
                self._lease_rev = await kv.update(key, orjson.dumps(mine), rev)
                return None
            if now - float(lease["renewed_at"]) > self.lease_ttl:
                self.term = int(lease["term"]) + 1
                mine["term"] = self.term
                self._lease_rev = await kv.update(key, orjson.dumps(mine), rev)
                logger.warning(
                    "swarm {}: {} takes over from silent leader {} (term {})",
                    self.swarm_id,
                    self.agent_id,
                    lease["leader"],
                    self.term,
                )
                return await self._became_leader()
        except (Conflict, ConcurrencyError):
            pass  # someone else won the lease (or renewed it)
        if self.is_leader:
            logger.warning("swarm {}: {} lost the lease", self.swarm_id, self.agent_id)
            self.is_leader = False
            for key_, (_, _, a) in list(self._tracked.items()):
                self.assignments.forget(a)
                self._tracked.pop(key_, None)
        return None

    async def _became_leader(self) -> None:
        self.is_leader = True
        self.leader_since = time.monotonic()
        logger.info("swarm {}: {} is the leader (term {})", self.swarm_id, self.agent_id, self.term)
        await self._announce("leader_elected", {"leader": self.agent_id, "term": self.term})

    # -- driving jobs (the leader) ------------------------------------------------------
    def _choose(self, a: Assignment, excluded: set[str]) -> str | None:
        reg = self.mesh.registry
        best: tuple[Any, ...] | None = None
        choice = None
        for agent_id, m in self._members.items():
            rec = reg.get(self.tenant_id, agent_id)
            if (
                agent_id in excluded
                or rec is None
                or rec.status not in (AgentStatus.AVAILABLE, AgentStatus.BUSY)
            ):
                continue
            if a.capability not in m.get("capabilities", []):
                continue
            load = (rec.in_flight + self.assignments.pending_on(agent_id)) / max(
                rec.max_concurrent, 1
            )
            rank = (m.get("role") != "specialist", -float(m.get("performance", 0.8)), load)
            if best is None or rank < best:
                best, choice = rank, agent_id
        return choice

    async def _drive(self) -> None:
        self._members = await self.store.members()
        for job_id in await self.store.job_ids():
            for _ in range(5):
                found = await self.store.get("job", job_id)
                if found is None:
                    break
                job, rev = found
                if job.get("status") in ("completed", "failed"):
                    break
                if not await self._step(job_id, job):
                    break
                try:
                    await self.store.kv.update(
                        self.store.key("job", job_id), orjson.dumps(job), rev
                    )
                    break
                except ConcurrencyError:
                    continue
        await self._publish_metrics()

    async def _step(self, job_id: str, job: dict[str, Any]) -> bool:
        """Advance one job in place; True when it changed."""
        changed = False
        tasks = job["tasks"]
        for tid, t in tasks.items():
            if t["status"] != "in_progress":
                continue
            key = f"{job_id}-{tid}"
            tracked = self._tracked.get(key)
            if tracked is None:  # in flight under an earlier leader: adopt it
                a = self.assignments.adopt(
                    str(t.get("key") or key),
                    t["capability"],
                    t["payload"],
                    task_id=t["task_id"],
                    agent_id=t.get("agent"),
                    tries=int(t["tries"]),
                )
                self._tracked[key] = (job_id, tid, a)
                continue
            a = tracked[2]
            if not a.future.done():
                if a.task_id != t.get("task_id"):
                    t.update(task_id=a.task_id, agent=a.agent_id, tries=a.tries)
                    changed = True
                continue
            outcome = a.future.result()
            if outcome.ok:
                t.update(status="completed", result=outcome.result, agent=outcome.agent_id)
                self.completed += 1
            elif a.tries <= self.retries:
                await self.assignments.retry(a)
                t.update(task_id=a.task_id, agent=a.agent_id, tries=a.tries)
                changed = True
                continue
            else:
                t.update(status="failed", error=outcome.error, agent=outcome.agent_id)
                self.failed += 1
            self.assignments.forget(a)
            self._tracked.pop(key, None)
            changed = True
        changed = cancel_blocked(job) or changed
        for tid in ready_tasks(job):
            t = tasks[tid]
            cap = t["capability"]
            if cap is None:
                t.update(status="failed", error="no capability given and no member to infer it")
                changed = True
                continue
            key = f"{job_id}-{tid}-t{self.term}"
            a = await self.assignments.assign(
                key, cap, t["payload"], routed=True, parent_task_id=job_id
            )
            self._tracked[f"{job_id}-{tid}"] = (job_id, tid, a)
            t.update(
                status="in_progress", key=key, task_id=a.task_id, agent=a.agent_id, tries=a.tries
            )
            changed = True
        if all(t["status"] in TERMINAL for t in tasks.values()):
            ok = all(t["status"] == "completed" for t in tasks.values())
            job["status"] = "completed" if ok else "failed"
            changed = True
        elif job["status"] == "pending":
            job["status"] = "running"
            changed = True
        return changed

    async def _publish_metrics(self) -> None:
        now = time.monotonic()
        if now - self._metrics_at < self.interval:
            return
        self._metrics_at = now
        perf = [float(m.get("performance", DEFAULT_PERFORMANCE)) for m in self._members.values()]
        elapsed = max(now - (self.leader_since or now), 1e-6)
        await self._announce(
            "metrics",
            {
                "leader": self.agent_id,
                "term": self.term,
                "members": len(self._members),
                "in_progress": len(self._tracked),
                "tasks_completed": self.completed,
                "tasks_failed": self.failed,
                "throughput_per_s": round(self.completed / elapsed, 4),
                "mean_performance": round(sum(perf) / len(perf), 4) if perf else None,
            },
        )

    async def _announce(self, kind: str, payload: dict[str, Any]) -> None:
        env = Envelope.create(
            f"swarm.{kind}",
            {"swarm_id": self.swarm_id, **payload},
            tenant_id=self.tenant_id,
            source=self.agent_id,
        )
        collaboration(env)
        with contextlib.suppress(Exception):  # swarm notices are advisory
            await self.mesh.transport.publish(
                names.swarm(self.tenant_id, self.swarm_id, kind.replace("_", "-")), env
            )
