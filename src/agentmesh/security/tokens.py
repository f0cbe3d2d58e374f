"""JWT access tokens (PyJWT).

Algorithms: HS256 (default), HS384, HS512 with ``JWT_SECRET_KEY``, and RS256 with a PEM
key pair read from files. Verification pins the configured algorithm (``alg: none`` and
algorithm confusion are refused), requires ``exp``, ``iat``, ``sub`` and ``tenant_id``,
and checks ``aud``/``iss`` when configured. There is never a fallback secret: a missing
key is a :class:`~agentmesh.errors.ConfigError`.

>>> svc = TokenService(TokenConfig(algorithm="HS256", secret="s" * 32))
>>> claims = svc.verify(svc.create("alice", "acme", ["observer"]))
>>> (claims.subject, claims.tenant_id, claims.roles)
('alice', 'acme', ('observer',))
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt

from agentmesh import ids
from agentmesh.errors import ConfigError, Unauthorized, ValidationError

Algorithm = Literal["HS256", "HS384", "HS512", "RS256"]
HMAC_ALGORITHMS: frozenset[str] = frozenset({"HS256", "HS384", "HS512"})
DEFAULT_EXPIRATION_HOURS = 24.0
MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
"""RFC 7518 3.2: an HMAC key at least as long as the hash output."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TENANT = ids.TENANT_ID
VERIFIED_CACHE_SIZE = 4096
"""Tokens whose signature was verified, kept so a client's next request skips the
signature check; each hit still checks the expiry."""


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"2w"`` (a bare number is seconds)."""
    m = _DURATION.match(text)
    if m is None:
        raise ValidationError(f"invalid duration {text!r}: use e.g. 90s, 15m, 1h, 7d")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise ValidationError(f"duration must be positive, got {text!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class TokenConfig:
    """How tokens are signed and verified.

    ``secret`` signs and verifies HS* tokens. RS256 signs with ``private_key`` (PEM) and
    verifies with ``public_key`` (PEM); a verifier needs only the public key.
    """

    algorithm: Algorithm = "HS256"
    secret: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    public_key: str | None = None
    expiration_hours: float = DEFAULT_EXPIRATION_HOURS
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.algorithm in HMAC_ALGORITHMS:
            if not self.secret:
                raise ConfigError(f"JWT_SECRET_KEY is required for {self.algorithm} tokens")
            need = MIN_SECRET_BYTES[self.algorithm]
            if len(self.secret.encode()) < need:
                raise ConfigError(
                    f"JWT_SECRET_KEY must be at least {need} bytes for {self.algorithm}"
                )
        elif self.algorithm == "RS256":
            if not self.public_key and not self.private_key:
                raise ConfigError("RS256 needs JWT_PUBLIC_KEY_FILE (and a private key to sign)")
        else:
            raise ConfigError(f"unsupported JWT_ALGORITHM {self.algorithm!r}")
        if self.expiration_hours <= 0:
            raise ConfigError("JWT_EXPIRATION_HOURS must be positive")

    @classmethod
    def from_settings(cls, settings: Any) -> TokenConfig:
        """Build from :class:`~agentmesh.config.Settings` (secrets resolved by the caller).

        RS256 key files, audience and issuer come from the optional settings
        ``jwt_private_key_file``, ``jwt_public_key_file``, ``jwt_audience``, ``jwt_issuer``.
        """
        algorithm = str(settings.jwt_algorithm)
        private_file = getattr(settings, "jwt_private_key_file", None)
        public_file = getattr(settings, "jwt_public_key_file", None)
        return cls(
            algorithm=algorithm,  # type: ignore[arg-type]
            secret=settings.jwt_secret_key if algorithm in HMAC_ALGORITHMS else None,
            private_key=_read_key(private_file) if private_file else None,
            public_key=_read_key(public_file) if public_file else None,
            expiration_hours=float(settings.jwt_expiration_hours),
            audience=getattr(settings, "jwt_audience", None),
            issuer=getattr(settings, "jwt_issuer", None),
        )

    @classmethod
    def rs256_from_files(
        cls, private_key_file: str | Path | None, public_key_file: str | Path | None, **kw: Any
    ) -> TokenConfig:
        """An RS256 config from PEM key files (either may be None)."""
        return cls(
            algorithm="RS256",
            private_key=_read_key(private_key_file) if private_key_file else None,
            public_key=_read_key(public_key_file) if public_key_file else None,
            **kw,
        )


def _read_key(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read JWT key file {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Claims:
    """The verified claims of a token."""

    subject: str
    tenant_id: str
    roles: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    token_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


class TokenService:
    """Creates and verifies tokens for one :class:`TokenConfig`."""

    def __init__(self, config: TokenConfig) -> None:
        self.config = config
        self._verified: OrderedDict[str, tuple[float, Claims]] = OrderedDict()
        if config.algorithm in HMAC_ALGORITHMS:
            self._sign_key: Any = config.secret
            self._verify_key: Any = config.secret
        else:
            from cryptography.hazmat.primitives import serialization

            try:
                self._sign_key = (
                    serialization.load_pem_private_key(config.private_key.encode(), None)
                    if config.private_key
                    else None
                )
                if config.public_key:
                    self._verify_key = serialization.load_pem_public_key(config.public_key.encode())
                else:
                    self._verify_key = self._sign_key.public_key()
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"invalid RS256 PEM key: {exc}") from None

    def create(
        self,
        subject: str,
        tenant_id: str,
        roles: Iterable[str],
        *,
        expires_in: timedelta | None = None,
        extra: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> str:
        """A signed token for ``subject`` in ``tenant_id`` with ``roles``."""
        from agentmesh.security.rbac import parse_roles

        if not subject:
            raise ValidationError("a token needs a subject")
        if not _TENANT.match(tenant_id):
            raise ValidationError(
                f"invalid tenant id {tenant_id!r}: 1-64 letters, digits, '-' or '_'"
            )
        role_list = [r.value for r in parse_roles(roles)]
        if self._sign_key is None:
            raise ConfigError("RS256 signing needs JWT_PRIVATE_KEY_FILE")
        issued = now or datetime.now(UTC)
        lifetime = expires_in or timedelta(hours=self.config.expiration_hours)
        claims: dict[str, Any] = {
            **(extra or {}),
            "sub": subject,
            "tenant_id": tenant_id,
            "roles": role_list,
            "iat": int(issued.timestamp()),
            "exp": int((issued + lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        if self.config.audience:
            claims["aud"] = self.config.audience
        if self.config.issuer:
            claims["iss"] = self.config.issuer
        return jwt.encode(claims, self._sign_key, algorithm=self.config.algorithm)

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; anything else raises :class:`Unauthorized`.

        A token verified before is answered from a bounded cache until it expires
        (the claims of a signed token cannot change; only time can invalidate it)."""
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[0]:
                return hit[1]
            del self._verified[token]
        claims = self._verify(token)
        self._verified[token] = (claims.expires_at.timestamp() + self.config.leeway_seconds, claims)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> Claims:
        from agentmesh.security.rbac import parse_roles

        if not token or token.count(".") != 2:
            raise Unauthorized("malformed token", code="AUTH_INVALID")
        required = ["exp", "iat", "sub"]
        if self.config.audience:
            required.append("aud")
        if self.config.issuer:
            required.append("iss")
        options: Any = {"require": required}
        try:
            data = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.config.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options=options,
                leeway=self.config.leeway_seconds,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired", code="AUTH_INVALID") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="AUTH_INVALID") from None
        tenant = data.get("tenant_id")
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            raise Unauthorized("token has no valid tenant_id claim", code="AUTH_INVALID")
        subject = data.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthorized("token has no valid sub claim", code="AUTH_INVALID")
        raw_roles = data.get("roles", [])
        if isinstance(raw_roles, str):
            raw_roles = [raw_roles]
        if not isinstance(raw_roles, list):
            raise Unauthorized("token roles must be a list", code="AUTH_INVALID")
        try:
            roles = tuple(r.value for r in parse_roles(raw_roles))
        except ValidationError as exc:
            raise Unauthorized(f"invalid token: {exc.message}", code="AUTH_INVALID") from None
        return Claims(
            subject=subject,
            tenant_id=tenant,
            roles=roles,
            issued_at=datetime.fromtimestamp(int(data["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
            token_id=data.get("jti") if isinstance(data.get("jti"), str) else None,
            raw=data,
        )


def token_service_from_settings(settings: Any) -> TokenService:
    """A :class:`TokenService` for ``settings`` (development secrets are generated)."""
    resolved = settings.with_secrets() if hasattr(settings, "with_secrets") else settings
    return TokenService(TokenConfig.from_settings(resolved))
