"""An agent handler whose side effect is counted outside the mesh (``--handler``): each
run appends the task id to the file named by ``SIDE_EFFECTS`` (fsynced), so a test can
tell how often a task really ran, whatever the store or the broker say."""

from __future__ import annotations

import os
from typing import Any

from agentmesh import TaskContext


async def count(task: TaskContext) -> dict[str, Any]:
    """Record one run of the task, then answer with its payload."""
    fd = os.open(os.environ["SIDE_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{task.task_id}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"paid": task.payload}
