"""Call a sync or async callable and await the result when it is awaitable."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")

Clock = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic`` by default; inject a fake in tests)."""


async def invoke(fn: Callable[..., Awaitable[T] | T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, awaited when it returns an awaitable."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return cast(T, await result)
    return result
