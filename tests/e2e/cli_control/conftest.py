"""The CLI harness of the control-plane e2e tests: a live control plane on a SQLite store
and an environment in which the real ``agentmesh`` subprocess uses the same store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from agentmesh.api.options import ApiOptions
from agentmesh.config import Settings
from tests.e2e.api.conftest import LiveServer, start_server, stop_server

AGENTMESH = str(Path(sys.executable).parent / "agentmesh")
SECRET = "cli-e2e-secret-" + "c" * 49


class Env:
    def __init__(self, tmp: Path, live: LiveServer, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.live = live
        self.env = env

    def run(
        self, *args: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AGENTMESH, *args],
            capture_output=True,
            text=True,
            env={**self.env, **(extra or {})},
            timeout=60,
            cwd=self.tmp,
        )

    def json(self, *args: str, extra: dict[str, str] | None = None) -> Any:
        proc = self.run(*args, "--json", extra=extra)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'agentmesh.db'}"
    key = Fernet.generate_key().decode()
    settings = Settings(
        jwt_secret_key=SECRET,
        encryption_key=key,
        database_url=db,
        environment="testing",
        agentmesh_data_dir=tmp_path,
    )
    live = start_server(settings, ApiOptions(rate_limit_enabled=False))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "JWT_"))}
    base.update(
        {
            "JWT_SECRET_KEY": SECRET,
            "ENCRYPTION_KEY": key,
            "DATABASE_URL": db,
            "AGENTMESH_DATA_DIR": str(tmp_path),
            "AGENTMESH_TENANT": "acme",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    yield Env(tmp_path, live, base)
    stop_server(live)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """The CLI failed with one line on stderr containing every needle (no traceback)."""
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
