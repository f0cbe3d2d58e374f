"""Credentials of the bus itself: the auth callout's keys and the NATS server config block.

AgentMesh authenticates NATS clients with the server's **auth callout** (nats-server >=
2.10): the server hands every connection's token to the control plane's callout service
(:mod:`agentmesh.security.nats_callout`), which verifies it as an AgentMesh JWT and answers
with a user whose permissions cover that token's tenant only
(:mod:`agentmesh.security.bus_permissions`). Three accounts:

* ``AUTH``: the callout service's own user (``am-auth``), which bypasses the callout;
* ``MESH``: every authenticated client (JetStream enabled), placed there by the callout;
* ``SYS``: the system account, whose user (``am-sys``) lets the control plane disconnect
  (kick) a revoked token's connections.

:class:`BusAuthConfig` keeps the issuer seed and the two passwords in one JSON file
(mode 0600); ``agentmesh up`` creates ``<data dir>/nats/auth.json`` and writes
:meth:`BusAuthConfig.server_block` into the embedded server's config. For an external
server, write the same block into its config and point ``AGENTMESH_NATS_AUTH_FILE`` at the
JSON file (see README, "Tenant isolation on the bus").
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentmesh.errors import ConfigError
from agentmesh.security.nkeys import PREFIX_ACCOUNT, KeyPair

AUTH_ACCOUNT = "AUTH"
MESH_ACCOUNT = "MESH"
SYSTEM_ACCOUNT = "SYS"
AUTH_USER = "am-auth"
SYSTEM_USER = "am-sys"
AUTH_FILE = "auth.json"
"""Its name under ``<data dir>/nats`` for the embedded server."""


@dataclass(frozen=True)
class BusAuthConfig:
    """The callout's signing seed and the passwords of its two service users."""

    issuer_seed: str = field(repr=False)
    auth_password: str = field(repr=False)
    system_password: str = field(repr=False)
    auth_user: str = AUTH_USER
    system_user: str = SYSTEM_USER
    account: str = MESH_ACCOUNT

    @classmethod
    def generate(cls) -> BusAuthConfig:
        return cls(
            issuer_seed=KeyPair.create(PREFIX_ACCOUNT).seed,
            auth_password=secrets.token_urlsafe(24),
            system_password=secrets.token_urlsafe(24),
        )

    @classmethod
    def load(cls, path: Path) -> BusAuthConfig:
        try:
            data = json.loads(Path(path).read_text())
            config = cls(**data)
            KeyPair.from_seed(config.issuer_seed)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"cannot read the bus auth file {path}: {exc}") from None
        return config

    @classmethod
    def load_or_create(cls, path: Path) -> BusAuthConfig:
        """Read ``path`` or create it (mode 0600) with fresh keys."""
        path = Path(path)
        if path.exists():
            return cls.load(path)
        config = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(config), fh)
        return config

    @property
    def issuer(self) -> KeyPair:
        return KeyPair.from_seed(self.issuer_seed)

    def server_block(self) -> str:
        """The accounts + ``auth_callout`` part of a nats-server config."""
        return (
            "accounts {\n"
            f'  {AUTH_ACCOUNT} {{ users: [ {{ user: "{self.auth_user}", '
            f'password: "{self.auth_password}" }} ] }}\n'
            f"  {self.account} {{ jetstream: enabled }}\n"
            f'  {SYSTEM_ACCOUNT} {{ users: [ {{ user: "{self.system_user}", '
            f'password: "{self.system_password}" }} ] }}\n'
            "}\n"
            f"system_account: {SYSTEM_ACCOUNT}\n"
            "authorization {\n"
            "  auth_callout {\n"
            f'    issuer: "{self.issuer.public_key}"\n'
            f'    auth_users: [ "{self.auth_user}", "{self.system_user}" ]\n'
            f"    account: {AUTH_ACCOUNT}\n"
            "  }\n"
            "}\n"
        )
