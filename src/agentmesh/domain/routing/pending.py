"""A priority queue of pending tasks for a routed dispatcher. Pure."""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any

from agentmesh.errors import ValidationError

if TYPE_CHECKING:
    pass


# ---------------------------------------------------------------------------------------
# a priority queue of pending tasks (for a routed dispatcher)
# ---------------------------------------------------------------------------------------
class TaskPriorityQueue:
    """Pending task ids, highest priority first, FIFO within a priority."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._seq = itertools.count()
        self._live: dict[str, int] = {}  # task id -> sequence number of its live entry

    def push(self, task_id: str, priority: int = 3) -> None:
        if task_id in self._live:
            raise ValidationError(f"task {task_id} is already queued")
        seq = next(self._seq)
        self._live[task_id] = seq
        heapq.heappush(self._heap, (-priority, seq, task_id))

    def pop(self) -> str | None:
        """The next task id, or None when empty."""
        while self._heap:
            _, seq, task_id = heapq.heappop(self._heap)
            if self._live.get(task_id) == seq:
                del self._live[task_id]
                return task_id
        return None

    def remove(self, task_id: str) -> bool:
        """Drop a queued task (e.g. cancelled); False if it was not queued."""
        return self._live.pop(task_id, None) is not None

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._live

    def snapshot(self) -> list[dict[str, Any]]:
        """Queued tasks in pop order."""
        live = sorted(e for e in self._heap if self._live.get(e[2]) == e[1])
        return [{"task_id": t, "priority": -p} for p, _, t in live]
