"""Small helpers shared by the test suites."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.transports import Message


def fast_settings(data_dir: Path, **kw: Any) -> Settings:
    """Settings for multi-process tests: 2 s ack wait, 0.2 s heartbeats, data in ``data_dir``."""
    base: dict[str, Any] = {
        "agentmesh_data_dir": data_dir,
        "agentmesh_ack_wait": 2.0,
        "agentmesh_heartbeat_interval": 0.2,
    }
    return Settings(**{**base, **kw})


def unique_tenant() -> str:
    return "t" + uuid.uuid4().hex[:10]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Collector:
    """A handler that records what it receives and lets a test wait for it."""

    def __init__(self, on_message: Callable[[Message], Any] | None = None) -> None:
        self.messages: list[Message] = []
        self._event = asyncio.Event()
        self._on_message = on_message

    async def __call__(self, msg: Message) -> None:
        self.messages.append(msg)
        self._event.set()
        if self._on_message is not None:
            result = self._on_message(msg)
            if asyncio.iscoroutine(result):
                await result

    @property
    def envelopes(self) -> list[Envelope]:
        return [m.envelope for m in self.messages]

    @property
    def ids(self) -> list[str]:
        return [m.envelope.id for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"expected {count} messages, got {len(self.messages)} in {timeout}s"
                )
            self._event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)
        return self.messages


async def eventually(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Wait (without blocking the loop) until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met in {timeout:g}s")
        await asyncio.sleep(interval)
    return value


async def until(
    check: Callable[[], Awaitable[Any]],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.05,
    not_yet: tuple[type[BaseException], ...] = (),
) -> Any:
    """Await ``check()`` until it returns something truthy and return that; an exception
    of ``not_yet`` (say ``NotFound`` while the read model has not caught up) counts as
    not yet. AssertionError with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except not_yet as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met in {timeout:g}s (last: {last!r})")
        await asyncio.sleep(interval)


async def quiet_period(seconds: float) -> None:
    """Let ``seconds`` pass before a negative check ("nothing more arrives", "nothing
    changes"), which no condition can end early: an absence has no event to wait on.

    Only for that; a test waiting for something to happen uses :func:`eventually` or
    :func:`until`. The period bounds what the check can see (a late arrival after it goes
    unnoticed), so choose it from the timers under test (an ack wait, a poll period)."""
    await asyncio.sleep(seconds)


WAIT_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError)


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Block until ``check()`` is truthy and return it; ``check`` may raise a transient
    error (connection refused, a half-written file) while the condition is not met."""
    import httpx

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, *WAIT_ERRORS):
            pass
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen in {timeout}s (last: {last!r})")


async def registry_knows(mesh: Any, *agent_ids: str, timeout: float = 10.0) -> None:
    """Wait until ``mesh``'s registry has heard a heartbeat of every one of ``agent_ids``."""
    wanted = set(agent_ids)
    await eventually(
        lambda: wanted <= {r.agent_id for r in mesh.registry.agents()},
        timeout,
        what=f"the registry knows {sorted(wanted)}",
    )


def cli_token(env: dict[str, str], tenant: str, role: str = "admin") -> str:
    """A JWT minted by ``agentmesh token create`` with the keys of ``env``'s data dir."""
    import subprocess
    import sys
    from pathlib import Path

    agentmesh = str(Path(sys.executable).parent / "agentmesh")
    return subprocess.run(
        [agentmesh, "token", "create", "-t", tenant, "-r", role],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str, module_name: str | None = None) -> ModuleType:
    """``examples/<name>.py`` imported as a fresh module (``example_<name>`` by default)."""
    spec = importlib.util.spec_from_file_location(
        module_name or f"example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
