"""TokenService: creation, verification and the JWT attack battery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agentmesh.config import Settings
from agentmesh.errors import ConfigError, Unauthorized, ValidationError
from agentmesh.security.tokens import (
    TokenConfig,
    TokenService,
    parse_duration,
    token_service_from_settings,
)

SECRET = "a-test-secret-" + "x" * 51


@pytest.fixture
def hs() -> TokenService:
    return TokenService(TokenConfig(algorithm="HS256", secret=SECRET))


@pytest.fixture(scope="module")
def rsa_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    d = tmp_path_factory.mktemp("keys")
    priv, pub = d / "jwt.key", d / "jwt.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def _claims(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sub": "alice",
        "tenant_id": "acme",
        "roles": ["admin"],
        "iat": _now(),
        "exp": _now() + 600,
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def test_round_trip_and_default_expiry(hs: TokenService) -> None:
    token = hs.create("alice", "acme", ["observer", "agent"])
    claims = hs.verify(token)
    assert (claims.subject, claims.tenant_id, claims.roles) == (
        "alice",
        "acme",
        ("observer", "agent"),
    )
    lifetime = claims.expires_at - claims.issued_at
    assert lifetime == timedelta(hours=24)


def test_custom_expiry_and_settings_hours() -> None:
    svc = TokenService(TokenConfig(secret=SECRET, expiration_hours=2))
    c = svc.verify(svc.create("a", "acme", ["admin"]))
    assert c.expires_at - c.issued_at == timedelta(hours=2)
    c = svc.verify(svc.create("a", "acme", ["admin"], expires_in=parse_duration("90s")))
    assert c.expires_at - c.issued_at == timedelta(seconds=90)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms_are_pinned(alg: str) -> None:
    svc = TokenService(TokenConfig(algorithm=alg, secret=SECRET))  # type: ignore[arg-type]
    assert svc.verify(svc.create("a", "t1", [])).tenant_id == "t1"
    other = "HS512" if alg != "HS512" else "HS256"
    forged = jwt.encode(_claims(), SECRET, algorithm=other)
    with pytest.raises(Unauthorized):
        svc.verify(forged)


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused(hs: TokenService) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."
    with pytest.raises(Unauthorized):
        hs.verify(token)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(exp=_now() - 120, iat=_now() - 200),
        _claims(exp=None),
        _claims(iat=None),
        _claims(tenant_id=None),
        _claims(tenant_id="bad tenant!"),
        _claims(sub=None),
        _claims(roles=["emperor"]),
        _claims(roles={"admin": True}),
    ],
    ids=[
        "expired",
        "no-exp",
        "no-iat",
        "no-tenant",
        "bad-tenant",
        "no-sub",
        "bad-role",
        "roles-dict",
    ],
)
def test_bad_claims_are_refused(hs: TokenService, claims: dict[str, object]) -> None:
    with pytest.raises(Unauthorized):
        hs.verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_tampered_and_wrong_key(hs: TokenService) -> None:
    token = hs.create("alice", "acme", ["observer"])
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["tenant_id"] = "victim"
    with pytest.raises(Unauthorized):
        hs.verify(f"{head}.{_b64(payload)}.{sig}")
    with pytest.raises(Unauthorized):
        hs.verify(jwt.encode(_claims(), "another-secret-" + "y" * 50, algorithm="HS256"))
    for junk in ("", "abc", "a.b", "a.b.c.d", "x.y.z"):
        with pytest.raises(Unauthorized):
            hs.verify(junk)


def test_rs256_with_key_files(rsa_files: tuple[Path, Path]) -> None:
    priv, pub = rsa_files
    signer = TokenService(TokenConfig.rs256_from_files(priv, pub))
    verifier = TokenService(TokenConfig.rs256_from_files(None, pub))
    token = signer.create("svc", "acme", ["agent"])
    assert verifier.verify(token).roles == ("agent",)
    with pytest.raises(ConfigError):
        verifier.create("svc", "acme", ["agent"])
    # the classic confusion attack: HS256 signed with the RS256 public key
    header = _b64({"alg": "HS256", "typ": "JWT"})
    body = _b64(_claims())
    sig = hmac.new(pub.read_bytes(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(Unauthorized):
        verifier.verify(forged)


def test_audience_and_issuer_when_configured() -> None:
    svc = TokenService(TokenConfig(secret=SECRET, audience="agentmesh", issuer="am-test"))
    assert svc.verify(svc.create("a", "acme", [])).raw["aud"] == "agentmesh"
    plain = TokenService(TokenConfig(secret=SECRET))
    with pytest.raises(Unauthorized):
        svc.verify(plain.create("a", "acme", []))
    wrong = TokenService(TokenConfig(secret=SECRET, audience="other", issuer="am-test"))
    with pytest.raises(Unauthorized):
        svc.verify(wrong.create("a", "acme", []))


def test_no_fallback_secret() -> None:
    with pytest.raises(ConfigError):
        TokenConfig(algorithm="HS256", secret=None)
    with pytest.raises(ConfigError):
        TokenConfig(algorithm="HS256", secret="short")
    with pytest.raises(ConfigError):
        TokenConfig(algorithm="RS256")
    with pytest.raises(ConfigError):
        TokenConfig.rs256_from_files("/nonexistent/key.pem", None)


def test_from_settings(tmp_path: Path) -> None:
    s = Settings(jwt_secret_key=SECRET, jwt_expiration_hours=3, agentmesh_data_dir=tmp_path)
    svc = token_service_from_settings(s)
    c = svc.verify(svc.create("a", "acme", ["admin"]))
    assert c.expires_at - c.issued_at == timedelta(hours=3)


def test_create_validates_input(hs: TokenService) -> None:
    with pytest.raises(ValidationError):
        hs.create("a", "bad tenant", [])
    with pytest.raises(ValidationError):
        hs.create("a", "acme", ["root"])
    with pytest.raises(ValidationError):
        hs.create("", "acme", [])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800), ("30", 30)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1y", "-1h", "0s", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_duration(text)


def test_kid_names_the_key_and_foreign_or_malformed_kids_are_refused(hs: TokenService) -> None:
    token = hs.create("alice", "acme", ["observer"])
    assert jwt.get_unverified_header(token)["kid"] == hs.key_id
    other = TokenService(TokenConfig(secret="o" * 64))
    assert other.key_id != hs.key_id
    now = _now()
    claims = {"sub": "a", "tenant_id": "acme", "iat": now, "exp": now + 60}
    for kid, reason in (("0" * 16, "unknown signing key"), ("../../etc/passwd", "malformed kid")):
        forged = jwt.encode(claims, SECRET, "HS256", headers={"kid": kid})
        with pytest.raises(Unauthorized, match=reason):
            hs.verify(forged)
    assert hs.verify(jwt.encode(claims, SECRET, "HS256")).subject == "a"  # no kid: this key


def test_leeway_is_60_seconds_at_the_boundary_on_an_injected_clock() -> None:
    now = 1_800_000_000.0
    at = {"t": now}
    svc = TokenService(TokenConfig(secret=SECRET), clock=lambda: at["t"])
    assert svc.config.leeway_seconds == 60
    token = svc.create("alice", "acme", ["observer"], expires_in=timedelta(seconds=10))
    at["t"] = now + 10 + 59
    assert svc.verify(token).subject == "alice"
    at["t"] = now + 10 + 61
    with pytest.raises(Unauthorized, match="expired"):
        svc.verify(token)
    at["t"] = now - 59  # minted by a host 59 s ahead
    assert svc.verify(token).subject == "alice"
    at["t"] = now - 61
    with pytest.raises(Unauthorized, match="future"):
        svc.verify(token)
    with pytest.raises(ConfigError, match="LEEWAY"):
        TokenConfig(secret=SECRET, leeway_seconds=301)


def test_deny_list_refuses_a_revoked_token_and_a_revoked_key(hs: TokenService) -> None:
    first, second = (hs.create("alice", "acme", ["observer"]) for _ in range(2))
    hs.deny.revoke_token(hs.verify(first).token_id or "")
    with pytest.raises(Unauthorized, match="token revoked"):
        hs.verify(first)
    assert hs.verify(second).subject == "alice"
    hs.deny.revoke_key(hs.key_id)
    with pytest.raises(Unauthorized, match="signing key revoked"):
        hs.verify(second)
