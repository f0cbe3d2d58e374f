"""Nothing keeps a process alive by accident: a red test run ends, and the product's
processes exit within 10 s of SIGTERM even with a leaked connection or a hung close."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentmesh.mesh import Mesh
from tests.e2e.test_product import AGENTMESH, ROOT
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

LEAKY_TEST = """
import asyncio

import aiosqlite

_keep = []


def test_leaks_a_connection_and_fails(tmp_path):
    async def leak():
        _keep.append(await aiosqlite.connect(str(tmp_path / "leak.db")))

    asyncio.run(leak())
    assert False, "deliberately red"
"""


def _run_red_suite(
    tmp_path: Path, *plugin: str, wait_after_summary: float
) -> tuple[int | None, float]:
    """Run a throw-away red pytest session; (status or None if still running, seconds
    from the summary line to the exit)."""
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *plugin,
            "-p",
            "no:cacheprovider",
            "-q",
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_leaky.py"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, AGENTMESH_TEST_DEADLINE="120"),
    )
    assert proc.stdout is not None
    summary_at = None
    try:
        for line in proc.stdout:
            if re.search(r"\b1 failed\b", line):
                summary_at = time.monotonic()
                break
        assert summary_at is not None, "no summary line"
        try:
            status: int | None = proc.wait(timeout=wait_after_summary)
        except subprocess.TimeoutExpired:
            status = None
        return status, time.monotonic() - summary_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_a_red_run_that_leaks_a_connection_ends_with_status_1(tmp_path: Path) -> None:
    status, after = _run_red_suite(tmp_path, "-p", "tests.exit_guard", wait_after_summary=30)
    assert status == 1
    assert after < 30


def test_without_the_guard_the_same_run_would_hang(tmp_path: Path) -> None:
    # the control experiment: the leak is real, the guard is what ends the run
    status, _ = _run_red_suite(tmp_path, wait_after_summary=3)
    assert status is None


def _stop_and_time(proc: subprocess.Popen[bytes]) -> float:
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - sent


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_agent_with_a_leaked_connection_exits_within_10s_of_sigterm(
    tmp_path: Path, nats_url: str
) -> None:
    env = dict(os.environ, NATS_URL=nats_url, LEAK_DIR=str(tmp_path), LOG_LEVEL="INFO")
    env["AGENTMESH_DATA_DIR"] = str(tmp_path)
    proc = _start(
        [
            AGENTMESH,
            "agent",
            "start",
            "leaky-1",
            "-c",
            "leak",
            "--tenant",
            "exit-test",
            "--handler",
            "tests.integration.agent_handlers:leak_connection",
        ],
        env,
        tmp_path / "agent.log",
    )
    try:
        async with Mesh(nats_url, tenant="exit-test") as mesh:
            assert await mesh.run("leak", {}, timeout=30) == {"leaked": 1}
        took = _stop_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "agent.log").read_text()
    assert took < 10, out
    assert "still running" in out


SITE_LEAK = """
import threading
threading.Thread(target=threading.Event().wait, name="leaked-by-test", daemon=False).start()
"""

SITE_HANG = """
import asyncio
import agentmesh.controlplane as cp

async def _hang(self):
    await asyncio.Event().wait()

cp.ControlPlane.stop = _hang
"""


@pytest.mark.parametrize(
    ("site", "expect"),
    [(SITE_LEAK, "leaked-by-test"), (SITE_HANG, "did not finish")],
    ids=["leaked-thread", "hung-close"],
)
def test_up_exits_within_10s_of_sigterm(tmp_path: Path, site: str, expect: str) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(textwrap.dedent(site))
    env = dict(os.environ, AGENTMESH_DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="INFO")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env.get("PYTHONPATH", "")])
    env.pop("NATS_URL", None)
    with (tmp_path / "up.log").open("wb") as log:
        proc = subprocess.Popen(
            [AGENTMESH, "up", "--no-api"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: "mesh up" in (tmp_path / "up.log").read_text(), 30, "the mesh up")
        took = _stop_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "up.log").read_text()
    assert took < 10, out
    assert expect in out
