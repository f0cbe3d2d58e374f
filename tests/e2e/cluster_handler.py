"""An agent handler for the cluster tests (``--handler``): records every run it finishes."""

from __future__ import annotations

import os
from typing import Any

from agentmesh import TaskContext


async def count(task: TaskContext) -> dict[str, Any]:
    """Append the task id to ``CLUSTER_RUNS_FILE`` (one line per finished run) and echo."""
    fd = os.open(os.environ["CLUSTER_RUNS_FILE"], os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"{task.task_id}\n".encode())  # one append: whole lines across processes
    finally:
        os.close(fd)
    return {"n": task.payload.get("n")}
