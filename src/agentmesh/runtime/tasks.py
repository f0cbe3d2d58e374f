"""Stopping background tasks reliably."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from loguru import logger


async def stop_task(task: asyncio.Task[Any], timeout: float = 5.0) -> None:
    """Cancel ``task`` and wait for it, at most ``timeout`` seconds.

    Some client libraries turn a cancellation inside their I/O into their own error,
    which a loop catching ``Exception`` would survive; loops therefore also check a stop
    flag, and this never waits forever.
    """
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        logger.warning("background task {} did not stop within {:g}s", task.get_name(), timeout)
        return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
