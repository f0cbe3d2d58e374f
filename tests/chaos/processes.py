"""Agent processes of the chaos scenarios: ``agentmesh agent start`` with a counted handler."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.processes import start_agent_process

ACK_WAIT = 2.0


def spawn(
    agent_id: str, tenant: str, url: str, work: Path, capability: str = "work"
) -> subprocess.Popen[bytes]:
    """An agent process on ``url`` running :func:`tests.chaos.handlers.counted`."""
    return start_agent_process(
        agent_id,
        tenant,
        capability=capability,
        handler="tests.chaos.handlers:counted",
        max_concurrent=400,
        data_dir=work,
        env={
            "AGENTMESH_TRANSPORT": url,
            "AGENTMESH_ACK_WAIT": str(ACK_WAIT),
            "AGENTMESH_MAX_IN_FLIGHT": "512",
            "CHAOS_LOG": str(work / "runs.log"),
        },
    )


def stop(*procs: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM what still runs, then wait for every process (by its own PID)."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        if proc is not None:
            proc.wait(30)
