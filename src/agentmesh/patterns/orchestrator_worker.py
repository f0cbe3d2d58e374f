"""Orchestrator-worker: decompose a task, fan the subtasks out by capability, aggregate.

::

    orch = Orchestrator(mesh, policy="retry", retries=2, deadline=30)
    out = await orch.run([Subtask("count", {"text": t}) for t in chunks], aggregate=merge)
    out.value, out.complete, out.results[0].agent_id

Subtasks are durable tasks (see :mod:`agentmesh.patterns.assignments`): a worker that dies
mid-task loses nothing (its delivery returns to the queue after ``ack_wait``, or, for
routed work, the orchestrator reassigns it as soon as the registry marks the worker
UNHEALTHY). Partial-failure policies:

* ``retry`` (default): a failed subtask is sent again to *another* worker, up to
  ``retries`` times; still failing -> :class:`OrchestrationFailed` (with the partial result);
* ``fail_fast``: the first failure cancels the rest and raises;
* ``partial``: failures are recorded; the aggregate runs over what completed.

The overall ``deadline`` (seconds) cancels what is still running; ``partial`` then returns
what completed (``timed_out=True``), the other policies raise :class:`OrchestrationTimeout`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agentmesh.errors import (
    OrchestrationFailed,
    OrchestrationTimeout,
    ValidationError,
)
from agentmesh.patterns.assignments import Assignment, Assignments, Outcome

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh

Policy = Literal["retry", "fail_fast", "partial"]
POLICIES = ("retry", "fail_fast", "partial")
SEND_BATCH = 250


@dataclass(frozen=True, slots=True)
class Subtask:
    """One unit of work for a worker with ``capability``."""

    capability: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SubtaskResult:
    index: int
    capability: str
    status: str  # completed, failed, cancelled, timed_out
    result: Any = None
    error: str | None = None
    agent_id: str | None = None
    tries: int = 0


@dataclass(slots=True)
class OrchestrationResult:
    """Every subtask's outcome plus the aggregate ``value``."""

    run_id: str
    results: list[SubtaskResult]
    value: Any = None
    timed_out: bool = False
    reassigned: int = 0
    elapsed: float = 0.0

    @property
    def complete(self) -> bool:
        return all(r.status == "completed" for r in self.results)

    @property
    def completed(self) -> list[Any]:
        """Results of the completed subtasks, in subtask order."""
        return [r.result for r in self.results if r.status == "completed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "value": self.value,
            "complete": self.complete,
            "timed_out": self.timed_out,
            "reassigned": self.reassigned,
            "elapsed": round(self.elapsed, 4),
            "subtasks": [
                {"index": r.index, "status": r.status, "agent_id": r.agent_id, "tries": r.tries}
                for r in self.results
            ],
        }


Aggregate = Callable[[list[Any]], Any]


class Orchestrator:
    """Fans subtasks out over a mesh and aggregates their results (module docstring)."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        policy: Policy = "retry",
        retries: int = 2,
        deadline: float = 300.0,
        routed: bool = False,
        subtask_timeout: float | None = None,
        assignments: Assignments | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValidationError(f"unknown policy {policy!r}: use one of {', '.join(POLICIES)}")
        if retries < 0 or deadline <= 0:
            raise ValidationError("retries must be >= 0 and deadline > 0")
        self.mesh = mesh
        self.policy = policy
        self.retries = retries
        self.deadline = deadline
        self.routed = routed
        self.subtask_timeout = subtask_timeout
        self.assignments = assignments or Assignments(mesh, source="orchestrator")
        self._own_tracker = assignments is None

    async def run(
        self,
        subtasks: Iterable[Subtask],
        *,
        aggregate: Aggregate | None = None,
        run_id: str | None = None,
    ) -> OrchestrationResult:
        """Fan out, wait under the policy and the deadline, aggregate the completed results.

        ``run_id`` makes a run resumable: the same id gives the same subtask task ids, so a
        restarted orchestrator picks up outcomes that already exist instead of redoing them.
        """
        items = list(subtasks)
        run_id = run_id or uuid.uuid4().hex[:16]
        started = time.monotonic()
        if self._own_tracker:
            await self.assignments.start()
        tracker = self.assignments
        results = [SubtaskResult(i, s.capability, "pending") for i, s in enumerate(items)]
        pending: dict[asyncio.Future[Outcome], tuple[int, Assignment]] = {}
        reassigned_before = tracker.reassigned
        try:
            for first in range(0, len(items), SEND_BATCH):  # pipelined durable publishes
                batch = items[first : first + SEND_BATCH]
                sent = await asyncio.gather(
                    *(
                        tracker.assign(
                            f"{run_id}-{first + j}",
                            sub.capability,
                            sub.payload,
                            routed=self.routed,
                            timeout_seconds=self.subtask_timeout,
                        )
                        for j, sub in enumerate(batch)
                    )
                )
                for j, a in enumerate(sent):
                    pending[a.future] = (first + j, a)
            failure = await self._collect(pending, results, started)
            timed_out = failure == "timeout"
            for i, a in pending.values():
                await self._cancel(a)
                if results[i].status == "pending":
                    results[i].status = "timed_out" if timed_out else "cancelled"
                    results[i].tries = a.tries
            out = OrchestrationResult(
                run_id,
                results,
                timed_out=timed_out,
                reassigned=tracker.reassigned - reassigned_before,
                elapsed=time.monotonic() - started,
            )
            if failure == "timeout" and self.policy != "partial":
                raise OrchestrationTimeout(
                    f"run {run_id}: {len(out.completed)}/{len(items)} subtasks completed "
                    f"within the deadline of {self.deadline:g}s",
                    out,
                )
            if failure == "failed":
                bad = next(r for r in results if r.status == "failed")
                raise OrchestrationFailed(
                    f"run {run_id}: subtask {bad.index} failed after {bad.tries} "
                    f"tr{'y' if bad.tries == 1 else 'ies'}: {bad.error}",
                    out,
                )
            collected = out.completed
            out.value = aggregate(collected) if aggregate is not None else collected
            return out
        finally:
            for i in range(len(items)):
                found = tracker.get(f"{run_id}-{i}")
                if found is not None:
                    tracker.forget(found)
            if self._own_tracker:
                await tracker.stop()

    async def _collect(
        self,
        pending: dict[asyncio.Future[Outcome], tuple[int, Assignment]],
        results: list[SubtaskResult],
        started: float,
    ) -> str | None:
        """Wait for outcomes; returns None (all done), "failed" or "timeout"."""
        while pending:
            remaining = self.deadline - (time.monotonic() - started)
            if remaining <= 0:
                return "timeout"
            done, _ = await asyncio.wait(
                list(pending), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return "timeout"
            for fut in done:
                i, a = pending.pop(fut)
                outcome = fut.result()
                r = results[i]
                r.tries, r.agent_id = outcome.tries, outcome.agent_id
                if outcome.ok:
                    r.status, r.result = "completed", outcome.result
                    continue
                r.error = outcome.error
                if self.policy == "retry" and a.tries <= self.retries:
                    await self.assignments.retry(a)
                    pending[a.future] = (i, a)
                    continue
                r.status = "failed"
                if self.policy != "partial":
                    return "failed"
        return None

    async def _cancel(self, a: Assignment) -> None:
        if not a.future.done():
            try:
                await self.mesh.cancel(a.task_id)
            except Exception:  # noqa: BLE001 - best effort: the deadline already decided the result
                return

    async def fan_out(
        self,
        capability: str,
        payloads: Sequence[dict[str, Any]],
        *,
        aggregate: Aggregate | None = None,
    ) -> OrchestrationResult:
        """:meth:`run` with one capability for every payload."""
        return await self.run([Subtask(capability, p) for p in payloads], aggregate=aggregate)

    async def execute(
        self,
        payload: dict[str, Any],
        plan: Callable[[dict[str, Any]], Iterable[Subtask]],
        aggregate: Aggregate | None = None,
        *,
        run_id: str | None = None,
    ) -> OrchestrationResult:
        """Decompose ``payload`` with ``plan`` and run the subtasks."""
        return await self.run(plan(payload), aggregate=aggregate, run_id=run_id)
