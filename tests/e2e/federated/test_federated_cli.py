"""The federated example and the CLI's bad input, as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[3]


def run(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp), "DATABASE_URL": f"sqlite:///{tmp}/a.db"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )


def test_example_prints_federated_next_to_centralized(tmp_path: Path) -> None:
    proc = run("examples/federated.py", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^(IID|non-IID \(alpha 0\.5\))\s+([\d.]+)\s+([\d.]+)\s+(-?[\d.]+)pt$",
                      proc.stdout, flags=re.M)  # fmt: skip
    assert [r[0] for r in rows] == ["IID", "non-IID (alpha 0.5)"], proc.stdout
    for _, federated, central, gap in rows:
        assert float(federated) >= float(central) - 0.02
        assert float(gap) <= 2.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "boss"], "unknown role 'boss'"),
        (["--data", "mnist"], "unknown data set 'mnist'"),
        (["--data", "digits:shard=7/5"], "shard 7/5"),
        ([], "a participant needs --data digits:shard=i/n"),
        (["--role", "coordinator", "--aggregation", "median"], "unknown aggregation 'median'"),
    ],
)
def test_bad_input_is_one_red_line(args: list[str], message: str, tmp_path: Path) -> None:
    cli = ["-m", "agentmesh.cli.main", "agent", "start-federated-agent", "fl-x", "-c", "f"]
    proc = run(*cli, *args, tmp=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {proc.stderr.split('error: ')[1].strip()}"]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rounds_of_an_empty_tenant(tmp_path: Path) -> None:
    proc = run("-m", "agentmesh.cli.main", "federated", "rounds", "-t", "nobody", "--json",
               tmp=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"rounds": []' in proc.stdout
