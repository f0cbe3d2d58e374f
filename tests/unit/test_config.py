"""Settings: documented defaults, production refuses without secrets, dev generates them."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.config import DEFAULT_NATS_URL, Settings
from agentmesh.errors import ConfigError

ENV_VARS = [
    "ENCRYPTION_KEY",
    "JWT_SECRET_KEY",
    "JWT_ALGORITHM",
    "JWT_EXPIRATION_HOURS",
    "DATABASE_URL",
    "NATS_URL",
    "KAFKA_BROKERS",
    "GCP_PROJECT_ID",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "VERTEX_AI_MODEL",
    "PUBSUB_EMULATOR_HOST",
    "ENVIRONMENT",
    "LOG_LEVEL",
    "API_HOST",
    "API_PORT",
    "PROMETHEUS_ENABLED",
    "PROMETHEUS_PORT",
    "AGENTMESH_TRANSPORT",
    "AGENTMESH_DATA_DIR",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENTMESH_DATA_DIR", str(tmp_path / "data"))


def test_documented_defaults() -> None:
    s = Settings()
    assert s.jwt_algorithm == "HS256"
    assert s.jwt_expiration_hours == 24
    assert s.kafka_brokers == "localhost:9092"
    assert s.vertex_ai_model == "gemini-1.5-pro"
    assert s.environment == "development"
    assert s.log_level == "INFO"
    assert (s.api_host, s.api_port) == ("0.0.0.0", 8000)
    assert s.prometheus_enabled is True
    assert s.prometheus_port == 9090
    assert s.agentmesh_health_check_timeout == 30
    assert s.effective_transport_url() == DEFAULT_NATS_URL
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith("/data/agentmesh.db")


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://10.0.0.1:4222")
    monkeypatch.setenv("API_PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@h/db")
    s = Settings()
    assert s.effective_transport_url() == "nats://10.0.0.1:4222"
    assert s.api_port == 9000
    assert s.log_level == "DEBUG"
    assert s.effective_database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize("env", ["production", "staging"])
def test_production_refuses_without_secrets(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", env)
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY and ENCRYPTION_KEY"):
        Settings().with_secrets()
    monkeypatch.setenv("JWT_SECRET_KEY", "x" * 32)
    with pytest.raises(ConfigError, match="without ENCRYPTION_KEY;"):
        Settings().with_secrets()


def test_bad_encryption_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET_KEY", "x" * 32)
    monkeypatch.setenv("ENCRYPTION_KEY", "too-short")
    with pytest.raises(ConfigError, match="44-character URL-safe base64 Fernet key"):
        Settings().with_secrets()


def test_development_generates_secrets_once_with_mode_0600(tmp_path: Path) -> None:
    s = Settings().with_secrets()
    path = tmp_path / "data" / "secrets"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert s.jwt_secret_key
    assert s.encryption_key
    assert len(s.encryption_key) == 44
    again = Settings().with_secrets()
    assert (again.jwt_secret_key, again.encryption_key) == (s.jwt_secret_key, s.encryption_key)
    assert s.jwt_secret_key not in repr(s)


def test_production_start_prints_one_clear_line(tmp_path: Path) -> None:
    env = {
        "ENVIRONMENT": "production",
        "AGENTMESH_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "agentmesh.cli.main", "up", "--no-api"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "refuses to start without JWT_SECRET_KEY and ENCRYPTION_KEY" in lines[0]
    assert "Traceback" not in proc.stderr
