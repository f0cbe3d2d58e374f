"""Agent processes of the chaos scenarios: ``agentmesh agent start`` with a counted handler."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACK_WAIT = 2.0


def spawn(
    agent_id: str,
    tenant: str,
    url: str,
    work: Path,
    capability: str = "work",
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """An agent process on ``url`` running :func:`tests.chaos.handlers.counted`, with
    ``extra_env`` on top of its environment (e.g. libfaketime's ``LD_PRELOAD``)."""
    env = dict(
        os.environ,
        AGENTMESH_TRANSPORT=url,
        AGENTMESH_DATA_DIR=str(work),
        AGENTMESH_ACK_WAIT=str(ACK_WAIT),
        AGENTMESH_HEARTBEAT_INTERVAL="0.2",
        AGENTMESH_MAX_IN_FLIGHT="512",
        CHAOS_LOG=str(work / "runs.log"),
        LOG_LEVEL="WARNING",
        **(extra_env or {}),
    )
    with (work / f"{agent_id}.log").open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentmesh.cli.main",
                "agent",
                "start",
                agent_id,
                "-c",
                capability,
                "--tenant",
                tenant,
                "--handler",
                "tests.chaos.handlers:counted",
                "--max-concurrent",
                "400",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM what still runs, then wait for every process (by its own PID)."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        if proc is not None:
            proc.wait(30)


async def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until truthy (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout:g}s")
        await asyncio.sleep(0.05)
