"""Settings: every environment variable of the seed README, with its documented default.

Only this module and the composition root (:mod:`agentmesh.mesh`) read the environment.

Two deliberate deviations from the seed's documented defaults, both so that ``make run``
works on a fresh machine with nothing else running:

* ``DATABASE_URL`` unset means SQLite at ``<data dir>/agentmesh.db`` (the seed's
  ``postgresql://user:password@postgres/agentmesh_db`` names a docker-compose host).
* ``NATS_URL`` unset means: the embedded server recorded in the data directory by
  ``agentmesh up`` if one is running, else the documented ``nats://localhost:4222``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentmesh.errors import ConfigError

DEFAULT_NATS_URL = "nats://localhost:4222"
Environment = Literal["development", "testing", "staging", "production"]


class Settings(BaseSettings):
    """Configuration from environment variables (names are the upper-case field names)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    encryption_key: str | None = Field(default=None, repr=False)
    jwt_secret_key: str | None = Field(default=None, repr=False)
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256"] = "HS256"
    jwt_expiration_hours: float = Field(default=24, gt=0)
    jwt_private_key_file: Path | None = None  # RS256 signing key (PEM)
    jwt_public_key_file: Path | None = None  # RS256 verification key (PEM)
    jwt_audience: str | None = None  # verified when set
    jwt_issuer: str | None = None  # verified when set
    jwt_leeway_seconds: float = Field(default=60, ge=0, le=300)  # clock skew on exp/iat/nbf
    redis_url: str | None = None  # shared rate-limit windows across API replicas
    database_url: str | None = None
    nats_url: str | None = None
    kafka_brokers: str = "localhost:9092"
    gcp_project_id: str | None = None
    google_application_credentials: str | None = None
    vertex_ai_model: str = "gemini-1.5-pro"
    google_cloud_location: str = "us-central1"  # Vertex AI region
    gemini_api_key: str | None = Field(default=None, repr=False)  # Gemini (Google AI) key
    google_api_key: str | None = Field(default=None, repr=False)  # its alternative name
    openai_api_key: str | None = Field(default=None, repr=False)  # OpenAI(-compatible) key
    openai_base_url: str | None = None  # an OpenAI-compatible server (vLLM, Ollama ...)
    pubsub_emulator_host: str | None = None
    environment: Environment = "development"
    log_level: str = "INFO"
    api_host: str = "0.0.0.0"
    api_port: int = Field(default=8000, ge=1, le=65535)
    prometheus_enabled: bool = True
    prometheus_port: int = Field(default=9090, ge=0, le=65535)  # 0: a free port

    # AgentMesh's own settings (prefixed so they never clash with other software).
    agentmesh_data_dir: Path = Path(".agentmesh")
    agentmesh_tenant: str = "default_tenant"
    agentmesh_transport: str | None = Field(
        default=None, description="transport URL overriding NATS_URL, e.g. memory://"
    )
    agentmesh_token: str | None = Field(
        default=None,
        repr=False,
        description="token an agent presents to the API and the bus (agentmesh token create)",
    )
    agentmesh_nats_auth_file: Path | None = Field(
        default=None,
        description="bus auth file (issuer seed, callout and system users) of an external "
        "NATS server with auth_callout; the control plane then serves the callout",
    )
    agentmesh_tls_ca_file: str | None = Field(
        default=None,
        description="CA file that verifies the NATS server's certificate (tls:// URLs); "
        "rediss:// and amqps:// take theirs in the URL (?ssl_ca_certs= / ?cafile=)",
    )
    agentmesh_heartbeat_interval: float = Field(default=5.0, gt=0)
    agentmesh_health_check_timeout: float = Field(default=30.0, gt=0)
    agentmesh_ack_wait: float = Field(default=30.0, gt=0)
    agentmesh_max_deliver: int = Field(default=5, ge=1)
    agentmesh_max_in_flight: int = Field(default=64, ge=1)
    agentmesh_connect_timeout: float = Field(default=4.0, gt=0)
    agentmesh_nats_sync_interval: str = Field(
        default="2m",
        pattern=r"^(always|\d+(ms|s|m|h))$",
        description="JetStream fsync interval of the embedded NATS of 'agentmesh up' "
        "('always': every write; see runtime/embedded.py)",
    )
    agentmesh_llm_timeout: float = Field(default=60.0, gt=0, description="seconds per model call")
    agentmesh_llm_prices: str | None = Field(
        default=None,
        description='USD per million tokens, JSON: {"model": [input, output]} (see llm/resilient.py)',
    )
    agentmesh_safety_policy: Path | None = Field(
        default=None, description="safety policy file (YAML/JSON/TOML); unset: the built-in default"
    )
    agentmesh_safety: bool = Field(
        default=True, description="check tasks and results against the safety policy"
    )
    agentmesh_route_targets: str | None = Field(
        default=None,
        description="brokers routing.targets of POST /messages may name, besides the mesh's "
        "own: '<platform>=<url>,...' (see transports/targets.py)",
    )
    task_ledger_url: str | None = Field(
        default=None,
        description="where brokers without key-value storage keep the task ledger: "
        "redis://, sqlite:///path, postgresql://... or 'local' (see runtime/ledger.py)",
    )

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        v = v.upper()
        if v not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown LOG_LEVEL {v!r}")
        return v

    # -- derived values -----------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.agentmesh_data_dir

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'agentmesh.db').resolve()}"

    def effective_transport_url(self) -> str:
        """The broker to use: explicit setting, then a running ``agentmesh up``, then default."""
        if self.agentmesh_transport:
            return self.agentmesh_transport
        if self.nats_url:
            return self.nats_url
        from agentmesh.runtime.embedded import read_runtime_record

        record = read_runtime_record(self.data_dir)
        if record is not None:
            return record.nats_url
        return DEFAULT_NATS_URL

    def with_secrets(self) -> Settings:
        """Return settings with both secrets present.

        Production without them raises :class:`ConfigError` (one clear line); development
        generates them once into ``<data dir>/secrets`` (mode 0600) and reuses them.
        """
        if self.jwt_secret_key and self.encryption_key:
            _check_fernet(self.encryption_key)
            return self
        missing = [
            n
            for n, v in (
                ("JWT_SECRET_KEY", self.jwt_secret_key),
                ("ENCRYPTION_KEY", self.encryption_key),
            )
            if not v
        ]
        if self.environment in ("production", "staging"):
            raise ConfigError(
                f"ENVIRONMENT={self.environment} refuses to start without "
                f"{' and '.join(missing)}; set them (see README, Configuration)"
            )
        stored = load_or_create_dev_secrets(self.data_dir)
        return self.model_copy(
            update={
                "jwt_secret_key": self.jwt_secret_key or stored["JWT_SECRET_KEY"],
                "encryption_key": self.encryption_key or stored["ENCRYPTION_KEY"],
            }
        )


def _check_fernet(key: str) -> None:
    try:
        Fernet(key.split(",")[0].strip().encode())
    except (ValueError, TypeError):
        raise ConfigError(
            "ENCRYPTION_KEY must be a 44-character URL-safe base64 Fernet key; generate one with "
            'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        ) from None


def load_or_create_dev_secrets(data_dir: Path) -> dict[str, str]:
    """Read ``<data_dir>/secrets`` or create it (mode 0600) with fresh development keys."""
    from loguru import logger

    path = data_dir / "secrets"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                values[k.strip()] = v.strip()
    if values.get("JWT_SECRET_KEY") and values.get("ENCRYPTION_KEY"):
        return values
    values = {
        "JWT_SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# development keys generated by agentmesh; never use in production\n")
        for k, v in values.items():
            fh.write(f"{k}={v}\n")
    os.chmod(path, 0o600)
    logger.warning("generated development JWT_SECRET_KEY and ENCRYPTION_KEY into {}", path)
    return values


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with keyword overrides (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
