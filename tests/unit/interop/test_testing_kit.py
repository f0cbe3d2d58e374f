"""The testing kit's example (examples/testing_kit) runs as a user runs it: its own pytest
session, the plugin enabled by its conftest.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.errors import NotFound, ValidationError
from agentmesh.mesh import Mesh
from agentmesh.testing import Chaos

EXAMPLE = Path(__file__).parents[3] / "examples" / "testing_kit"


def test_the_example_test_runs_green() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert re.search(r"^7 passed", out.stdout, re.M), out.stdout[-1000:]


async def test_chaos_needs_its_transport_and_known_agents(tmp_path: Path) -> None:
    plain = Mesh("memory://plain-chaos", tenant="t1")
    with pytest.raises(ValidationError, match="ChaosTransport"):
        Chaos(plain)
    from agentmesh.testing import ChaosTransport

    mesh = Mesh(ChaosTransport("memory://chaos-unknown"), tenant="t1")
    async with mesh:
        with pytest.raises(NotFound):
            await Chaos(mesh).kill("nobody")
