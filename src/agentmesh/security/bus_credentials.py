"""Which token a process presents to the bus (NATS ``auth_token``).

* An agent process presents ``AGENTMESH_TOKEN`` (``--token``): a token of its tenant,
  e.g. ``agentmesh token create --tenant acme --role agent``.
* Without one, in development and testing, it mints its own from the signing key it can
  read (``JWT_SECRET_KEY`` or the data directory's dev secrets): zero configuration on one
  machine, where whoever reads ``<data dir>/secrets`` could mint any token anyway.
* ``ENVIRONMENT=production`` (or staging) refuses an agent without ``AGENTMESH_TOKEN``.
* The control plane (and local admin tools) present a platform token (``admin`` of
  ``_system``) signed with the key they hold.

Tokens stay out of URLs, logs and ``status`` output.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from agentmesh.config import Settings, load_or_create_dev_secrets
from agentmesh.errors import AgentMeshError, ConfigError
from agentmesh.security.bus_permissions import token_tenant
from agentmesh.security.rbac import PLATFORM_TENANT
from agentmesh.security.tokens import TokenConfig, TokenService

PLATFORM_SUBJECT = "control-plane"
BUS_TOKEN_LIFETIME = timedelta(days=30)
"""Self-minted bus tokens live long: the server disconnects a client when its token expires."""
_SECURE = ("production", "staging")


def _signer(settings: Settings) -> TokenService | None:
    """A token service able to sign, or None (no key readable here)."""
    resolved = settings
    if not settings.jwt_secret_key and settings.jwt_algorithm != "RS256":
        if settings.environment in _SECURE:
            return None
        if not (settings.data_dir / "secrets").exists():
            return None
        stored = load_or_create_dev_secrets(settings.data_dir)
        resolved = settings.model_copy(update={"jwt_secret_key": stored["JWT_SECRET_KEY"]})
    if settings.jwt_algorithm == "RS256" and not settings.jwt_private_key_file:
        return None  # a verifier only: nothing to sign with
    try:
        return TokenService(TokenConfig.from_settings(resolved))
    except AgentMeshError:
        return None


def mint(settings: Settings, subject: str, tenant: str, roles: Sequence[str]) -> str | None:
    """A bus token signed with the key readable here, or None when there is none."""
    service = _signer(settings)
    if service is None:
        return None
    return service.create(subject, tenant, roles, expires_in=BUS_TOKEN_LIFETIME)


def agent_token(settings: Settings, tenant: str, *, role: str = "agent") -> str | None:
    """The token of a process serving ``tenant`` (see module docstring).

    Raises :class:`ConfigError` in production without ``AGENTMESH_TOKEN``.
    """
    if settings.agentmesh_token:
        claimed = token_tenant(settings.agentmesh_token)
        if claimed not in (tenant, PLATFORM_TENANT):
            raise ConfigError(
                f"AGENTMESH_TOKEN is a token of tenant {claimed!r}, not of {tenant!r}: "
                f"mint one with `agentmesh token create --tenant {tenant} --role agent`"
            )
        return settings.agentmesh_token
    if settings.environment in _SECURE:
        raise ConfigError(
            f"ENVIRONMENT={settings.environment} refuses to start an agent without "
            "credentials: set AGENTMESH_TOKEN (or --token) to a token of its tenant, "
            f"e.g. `agentmesh token create --tenant {tenant} --role agent`"
        )
    return mint(settings, f"{role}@{tenant}", tenant, [role])


def platform_token(settings: Settings) -> str | None:
    """The control plane's token (``admin`` of ``_system``), else ``AGENTMESH_TOKEN``."""
    return mint(settings, PLATFORM_SUBJECT, PLATFORM_TENANT, ["admin"]) or settings.agentmesh_token
