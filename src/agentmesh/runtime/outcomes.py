"""Task outcomes: their deterministic ids, and the completed ones an agent could not write.

An agent whose broker link fails after a handler finished (a partition, a node that
died) cannot write the outcome, so the delivery is not acked and comes back. When it
comes back to the same agent, :class:`KeptOutcomes` still holds the result: the agent
writes it then instead of running the handler a second time. Another agent, or this one
after a restart, runs the task again (handler side effects are at-least-once).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from agentmesh.envelope import Envelope

RESULT_NAMESPACE = uuid.UUID("6f1c3a1e-5b7e-4c55-9a0e-2d6b1f3c9e11")


def result_id(tenant: str, task_id: str, outcome: str) -> str:
    """Deterministic envelope id of a task's outcome, so re-announcing it is deduped."""
    return str(uuid.uuid5(RESULT_NAMESPACE, f"{tenant}/{task_id}/{outcome}"))


class KeptOutcomes:
    """``task.completed`` envelopes not yet written, by task id (the oldest go first past
    ``limit``: such a task runs again if it comes back, as it would without this)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._kept: OrderedDict[str, Envelope] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, task_id: str, outcome: Envelope) -> None:
        """Hold ``outcome`` until the task's delivery comes back."""
        self._kept[task_id] = outcome
        self._kept.move_to_end(task_id)
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def take(self, task_id: str) -> Envelope | None:
        """The held outcome of ``task_id`` (forgotten here), or None."""
        return self._kept.pop(task_id, None)
