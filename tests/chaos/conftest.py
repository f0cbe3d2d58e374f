"""The fault and abuse battery: sizes, the result table and a real control plane.

``CHAOS_SCALE=full`` (``make chaos``) runs every scenario at its target numbers; the
default (``ci``) runs the same code at reduced sizes inside ``make test``. Each scenario
appends one row per claim to ``CHAOS_REPORT`` (a JSON-lines file, when set), which
``python -m bench.chaos`` prints as the table: scenario, target, measured, pass.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from agentmesh.api.options import ApiOptions, WsLimits
from agentmesh.config import Settings
from tests.e2e.api.conftest import LiveServer, start_server, stop_server

FULL = os.environ.get("CHAOS_SCALE", "ci") == "full"
SECRET = "chaos-secret-" + "c" * 51
ISSUER = "agentmesh-chaos"


def size(full: int, ci: int) -> int:
    """``full`` under ``make chaos``, ``ci`` in the test suite."""
    return full if FULL else ci


def brokers(ci: tuple[str, ...] = ("nats_url",)) -> list[str]:
    """The broker fixtures a scenario runs on: NATS, Redis and RabbitMQ under ``make
    chaos``; ``ci`` in the test suite (the transport contract covers every broker)."""
    return ["nats_url", "redis_url", "rabbitmq_url"] if FULL else list(ci)


Report = Callable[[str, str, str, bool], None]


@pytest.fixture
def report() -> Report:
    """``report(scenario, target, measured, passed)``: one row of the chaos table."""

    def add(scenario: str, target: str, measured: str, passed: bool) -> None:
        path = os.environ.get("CHAOS_REPORT")
        if path:
            row = {
                "scenario": scenario,
                "target": target,
                "measured": measured,
                "pass": passed,
                "scale": "full" if FULL else "ci",
            }
            with open(path, "a") as fh:
                fh.write(json.dumps(row) + "\n")

    return add


@dataclass
class Plane:
    """A live control plane (uvicorn, SQLite) and the environment its CLI needs."""

    live: LiveServer
    settings: Settings
    env: dict[str, str]


def chaos_settings(tmp_path: Path) -> Settings:
    return Settings(
        jwt_secret_key=SECRET,
        encryption_key=Fernet.generate_key().decode(),
        jwt_issuer=ISSUER,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'agentmesh.db'}",
        environment="testing",
        agentmesh_data_dir=tmp_path,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "AGENTMESH_"))}
    env.update(
        {
            "JWT_SECRET_KEY": str(settings.jwt_secret_key),
            "JWT_ISSUER": str(settings.jwt_issuer or ""),
            "ENCRYPTION_KEY": str(settings.encryption_key),
            "DATABASE_URL": str(settings.database_url),
            "ENVIRONMENT": "testing",
            "AGENTMESH_DATA_DIR": str(settings.agentmesh_data_dir),
            "AGENTMESH_TRANSPORT": "memory://",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    """A control plane at its real default limits (rate limiting on: ``testing`` level)."""
    settings = chaos_settings(tmp_path)
    # the suite re-checks revocations every second; make chaos keeps the 5 s default
    ws = WsLimits() if FULL else WsLimits(token_check_interval=1.0)
    live = start_server(settings, ApiOptions(revocation_interval=1.0, ws=ws))
    try:
        yield Plane(live, settings, cli_env(settings))
    finally:
        stop_server(live)


# the in-process API of the unit tests (memory store), for scenarios that need no server
from tests.unit.api.conftest import api  # noqa: E402

__all__ = ["api"]
