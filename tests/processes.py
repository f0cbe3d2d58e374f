"""Agent worker processes for the multi-process tests: one ``agentmesh agent start`` spawner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_agent_process(
    agent_id: str,
    tenant: str,
    *,
    capability: str,
    handler: str,
    max_concurrent: int,
    data_dir: Path,
    env: dict[str, str],
) -> subprocess.Popen[bytes]:
    """``agentmesh agent start`` in a child process running ``handler`` (``module:function``).

    The child gets this process's environment, ``data_dir`` as its data directory, a 2 s ack
    wait, 0.2 s heartbeats and WARNING logs; ``env`` adds to or overrides that (the broker
    URL, the handler's own settings). Its stderr goes to ``data_dir/<agent_id>.log``; the
    caller stops it by its PID.
    """
    child_env = {
        **os.environ,
        "AGENTMESH_DATA_DIR": str(data_dir),
        "AGENTMESH_ACK_WAIT": "2",
        "AGENTMESH_HEARTBEAT_INTERVAL": "0.2",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    command = [
        sys.executable, "-m", "agentmesh.cli.main", "agent", "start", agent_id,
        "--capabilities", capability, "--tenant", tenant, "--handler", handler,
        "--max-concurrent", str(max_concurrent),
    ]  # fmt: skip
    with (data_dir / f"{agent_id}.log").open("wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=child_env, stdout=subprocess.DEVNULL, stderr=log
        )


def stop_processes(procs: list[subprocess.Popen[bytes]], sig: int = signal.SIGINT) -> None:
    """Signal every process still running (newest first), wait up to 30 s for each, and
    kill one that does not exit by then (each by its own PID)."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(sig)
    for p in reversed(procs):
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
