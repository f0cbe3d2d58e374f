"""JWT access tokens (PyJWT).

Algorithms: HS256 (default), HS384, HS512 with ``JWT_SECRET_KEY``, and RS256 with a PEM
key pair read from files. Verification pins the configured algorithm (``alg: none`` and
algorithm confusion are refused), requires ``exp``, ``iat``, ``sub`` and ``tenant_id``,
and checks ``aud``/``iss`` when configured. There is never a fallback secret: a missing
key is a :class:`~agentmesh.errors.ConfigError`.

Every token names its signing key in the ``kid`` header (:attr:`TokenService.key_id`, a
digest of the key); a token naming any other key, or a malformed one, is refused. A
:class:`~agentmesh.security.revocation.DenyList` refuses revoked tokens (``jti``) and
revoked keys. Time checks allow ``leeway_seconds`` of clock skew (``JWT_LEEWAY_SECONDS``,
default 60): a token expired 59 s ago is still accepted, one expired 61 s ago is not;
the clock is injectable (``TokenService(config, clock=...)``).

>>> svc = TokenService(TokenConfig(algorithm="HS256", secret="s" * 32))
>>> claims = svc.verify(svc.create("alice", "acme", ["observer"]))
>>> (claims.subject, claims.tenant_id, claims.roles)
('alice', 'acme', ('observer',))
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt

from agentmesh import ids
from agentmesh.errors import ConfigError, Unauthorized, ValidationError
from agentmesh.security.revocation import DenyList

Algorithm = Literal["HS256", "HS384", "HS512", "RS256"]
HMAC_ALGORITHMS: frozenset[str] = frozenset({"HS256", "HS384", "HS512"})
DEFAULT_EXPIRATION_HOURS = 24.0
DEFAULT_LEEWAY_SECONDS = 60.0
"""Clock skew allowed on ``exp``/``iat``/``nbf`` (RFC 8725 recommends a small one)."""
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
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
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS

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
        if not 0 <= self.leeway_seconds <= 300:
            raise ConfigError("JWT_LEEWAY_SECONDS must be between 0 and 300")

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
            leeway_seconds=float(getattr(settings, "jwt_leeway_seconds", DEFAULT_LEEWAY_SECONDS)),
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


Clock = Callable[[], float]
"""Seconds since the epoch (``time.time`` unless a test injects another)."""


class TokenService:
    """Creates and verifies tokens for one :class:`TokenConfig`."""

    def __init__(
        self, config: TokenConfig, *, deny: DenyList | None = None, clock: Clock = time.time
    ) -> None:
        self.config = config
        self._verified: OrderedDict[str, tuple[float, float, Claims]] = OrderedDict()
        self.deny = deny if deny is not None else DenyList()
        self.clock = clock
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
        self.key_id = _key_id(self._verify_key)

    def now(self) -> datetime:
        """The service's clock as an aware UTC datetime."""
        return datetime.fromtimestamp(self.clock(), UTC)

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
        issued = now or self.now()
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
        return jwt.encode(
            claims, self._sign_key, algorithm=self.config.algorithm, headers={"kid": self.key_id}
        )

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; anything else raises :class:`Unauthorized`.

        A token verified before is answered from a bounded cache until it expires (the
        claims of a signed token cannot change) or the deny list revokes it or its key."""
        hit = self._verified.get(token)
        if hit is not None:
            claims = hit[2]
            if (
                hit[0] <= self.clock() < hit[1]
                and not self.deny.token_revoked(claims.token_id)
                and not self.deny.key_revoked(self.key_id)
            ):
                return claims
            del self._verified[token]
        claims = self._verify(token)
        leeway = self.config.leeway_seconds
        nbf = claims.raw.get("nbf")
        start = max(claims.issued_at.timestamp(), float(nbf) if isinstance(nbf, int | float) else 0)
        self._verified[token] = (start - leeway, claims.expires_at.timestamp() + leeway, claims)
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
        # time claims are checked below against the injectable clock, not PyJWT's
        options: Any = {
            "require": required,
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
        }
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            if kid is not None and (not isinstance(kid, str) or not _KID.match(kid)):
                raise Unauthorized("invalid token: malformed kid", code="AUTH_INVALID")
            if kid is not None and kid != self.key_id:
                raise Unauthorized("invalid token: unknown signing key", code="AUTH_INVALID")
            data = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.config.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options=options,
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}", code="AUTH_INVALID") from None
        self._check_times(data)
        # the signature verified with this service's key, so that key signed it
        if self.deny.key_revoked(self.key_id):
            raise Unauthorized("signing key revoked", code="AUTH_INVALID")
        jti = data.get("jti") if isinstance(data.get("jti"), str) else None
        if self.deny.token_revoked(jti):
            raise Unauthorized("token revoked", code="AUTH_INVALID")
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
            token_id=jti,
            raw=data,
        )

    def _check_times(self, data: Mapping[str, Any]) -> None:
        now, leeway = self.clock(), self.config.leeway_seconds
        try:
            exp, iat = float(data["exp"]), float(data["iat"])
            nbf = float(data["nbf"]) if "nbf" in data else None
        except (TypeError, ValueError):
            raise Unauthorized(
                "invalid token: exp/iat/nbf must be numbers", code="AUTH_INVALID"
            ) from None
        if now > exp + leeway:
            raise Unauthorized("token expired", code="AUTH_INVALID")
        if iat > now + leeway:
            raise Unauthorized("invalid token: issued in the future", code="AUTH_INVALID")
        if nbf is not None and nbf > now + leeway:
            raise Unauthorized("invalid token: not yet valid", code="AUTH_INVALID")


def _key_id(verify_key: Any) -> str:
    """A short digest naming the verification key (never reveals the key)."""
    if isinstance(verify_key, str):
        material = verify_key.encode()
    else:
        from cryptography.hazmat.primitives import serialization

        material = verify_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return hashlib.sha256(b"agentmesh-kid\0" + material).hexdigest()[:16]


def token_service_from_settings(settings: Any) -> TokenService:
    """A :class:`TokenService` for ``settings`` (development secrets are generated)."""
    resolved = settings.with_secrets() if hasattr(settings, "with_secrets") else settings
    return TokenService(TokenConfig.from_settings(resolved))
