"""``agentmesh agent start-decentralized-agent`` refuses bad input with one clear line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
AGENTMESH = str(Path(sys.executable).parent / "agentmesh")


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTMESH, "agent", "start-decentralized-agent", "node-1", "-c", "consensus", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **(env or {})),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cluster-nodes", "127.0.0.1:7001,node-2", "--address", "127.0.0.1:7001"],
            "error: cluster node 'node-2' is not host:port",
        ),
        (
            ["--cluster-nodes", "127.0.0.1:7002,127.0.0.1:7002", "--address", "127.0.0.1:7001"],
            "error: cluster node 127.0.0.1:7002 is listed twice",
        ),
        (
            ["--cluster-nodes", "127.0.0.1:7002,127.0.0.1:7003"],
            "error: own address missing: pass --address host:port",
        ),
        (
            ["--cluster-nodes", "127.0.0.1:7002", "--address", "127.0.0.1:7001", "--fanout", "0"],
            "error: gossip fan-out must be 1-10, got 0",
        ),
        (
            ["--cluster-nodes", "127.0.0.1:7002", "--address", "127.0.0.1:7001", "--group", "a b"],
            "error: invalid group 'a b': use 1-64 letters, digits, '-' or '_'",
        ),
        (
            ["--cluster-nodes", "127.0.0.1:7002", "--address", "127.0.0.1:7001", "--tenant", "a b"],
            "error: invalid tenant id 'a b': use 1-64 letters, digits, '-' or '_'",
        ),
    ],
)
def test_bad_cluster_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = start(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == message
    assert "Traceback" not in proc.stderr


def test_a_taken_port_is_one_clear_line(nats_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        proc = start(
            "--cluster-nodes",
            f"{address},127.0.0.1:9",
            "--address",
            address,
            env={"NATS_URL": nats_url, "AGENTMESH_DATA_DIR": str(tmp_path), "LOG_LEVEL": "ERROR"},
        )
    assert proc.returncode == 1
    assert f"error: raft cannot bind TCP {address}" in proc.stderr
    assert "Traceback" not in proc.stderr
