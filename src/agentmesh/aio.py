"""Small asyncio helpers shared by every layer that runs background tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger


async def stop_task(task: asyncio.Task[Any] | None, timeout: float = 5.0) -> None:
    """Cancel ``task`` (if any) and wait until it has ended, at most ``timeout`` seconds.

    Whatever the task raised is consumed (it was told to stop), but the caller's own
    cancellation is never swallowed: if the caller is cancelled while it waits, the
    ``CancelledError`` propagates. Some client libraries turn a cancellation inside their
    I/O into their own error, which a loop catching ``Exception`` would survive; loops
    therefore also check a stop flag, and this never waits forever.
    """
    if task is None:
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        logger.warning("background task {} did not stop within {:g}s", task.get_name(), timeout)
        return
    if not task.cancelled() and task.exception() is not None:
        logger.debug("background task {} ended with {!r}", task.get_name(), task.exception())
