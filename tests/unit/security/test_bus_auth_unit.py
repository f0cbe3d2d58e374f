"""Bus credentials without a server: NKeys, NATS JWTs, permission lists, token choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.config import Settings
from agentmesh.errors import ConfigError, ValidationError
from agentmesh.security.bus_credentials import agent_token, platform_token
from agentmesh.security.bus_permissions import (
    client_inbox_prefix,
    permissions_for,
    token_tenant,
)
from agentmesh.security.nkeys import (
    PREFIX_ACCOUNT,
    PREFIX_USER,
    KeyPair,
    decode_jwt,
    encode_jwt,
)
from agentmesh.security.tokens import TokenConfig, TokenService
from agentmesh.subjects import matches

SECRET = "u" * 32


def test_nkeys_round_trip_and_reject_a_corrupted_seed() -> None:
    account = KeyPair.create(PREFIX_ACCOUNT)
    assert account.seed.startswith("SA")
    assert account.public_key.startswith("A")
    assert len(account.public_key) == 56
    assert KeyPair.from_seed(account.seed).public_key == account.public_key
    assert KeyPair.create(PREFIX_USER).public_key.startswith("U")
    bad = account.seed[:-3] + ("A" if account.seed[-3] != "A" else "B") + account.seed[-2:]
    with pytest.raises(ValidationError):
        KeyPair.from_seed(bad)


def test_a_nats_jwt_carries_issuer_and_a_verifiable_signature() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    issuer = KeyPair.create(PREFIX_ACCOUNT)
    token = encode_jwt({"sub": "UABC", "nats": {"type": "user"}}, issuer)
    claims = decode_jwt(token)
    assert claims["iss"] == issuer.public_key
    assert claims["jti"]
    head, payload, sig = token.split(".")
    import base64

    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    public = issuer.private.public_key()
    assert isinstance(public, Ed25519PublicKey)
    public.verify(raw, f"{head}.{payload}".encode())  # raises when the signature is wrong


def _allowed(patterns: list[str], subject: str) -> bool:
    return any(matches(p, subject) for p in patterns)


def test_an_agent_is_confined_to_its_tenant() -> None:
    p = permissions_for("acme", ["agent"])
    for subject in (
        "am.acme.task.echo",
        "$JS.API.STREAM.CREATE.AM_acme_task",
        "$JS.API.CONSUMER.MSG.NEXT.AM_acme_task.cap-echo",
        "$JS.API.CONSUMER.DURABLE.CREATE.AM_acme_task.cap-echo",
        "$JS.API.CONSUMER.CREATE.AM_acme_task.cap-echo.am.acme.task.echo",
        "$JS.ACK.AM_acme_task.cap-echo.1.2.3.4.5",
        "$KV.AM_TASKS.acme.t1.done",
        "$JS.API.DIRECT.GET.KV_AM_TASKS.$KV.AM_TASKS.acme.t1.done",
        "$JS.API.CONSUMER.CREATE.KV_AM_BB.w1.$KV.AM_BB.acme.bb.main.>",
        "$JS.API.CONSUMER.CREATE.KV_AM_SWARM.w1.$KV.AM_SWARM.acme.s1.job.j1",
    ):
        assert _allowed(p.publish_allow, subject), subject
    for subject in (
        "am.other.task.echo",
        "$JS.API.STREAM.INFO.AM_other_task",
        "$JS.API.CONSUMER.MSG.NEXT.AM_other_task.cap-echo",
        "$KV.AM_TASKS.other.t1.done",
        "$JS.API.DIRECT.GET.KV_AM_TASKS.$KV.AM_TASKS.other.t1.done",
        "$JS.API.STREAM.MSG.GET.KV_AM_TASKS",  # the body names the key: never allowed
        # the bodies of these name the keys (a subjects_filter, a consumer's filter)
        "$JS.API.STREAM.INFO.KV_AM_BB",
        "$JS.API.STREAM.INFO.KV_AM_TASKS",
        "$JS.API.CONSUMER.CREATE.KV_AM_BB",
        "$JS.API.CONSUMER.CREATE.KV_AM_BB.w1",
        "$JS.API.CONSUMER.CREATE.KV_AM_BB.w1.$KV.AM_BB.other.>",
        "$JS.API.CONSUMER.CREATE.KV_AM_BB.w1.$KV.AM_BB.>",
        "$JS.API.CONSUMER.DURABLE.CREATE.KV_AM_BB.w1",
        "$JS.API.INFO",
        "_INBOX.other.x",
    ):
        assert not _allowed(p.publish_allow, subject), subject
    assert _allowed(p.subscribe_allow, "_INBOX.acme.abc.1")
    assert not _allowed(p.subscribe_allow, "_INBOX.other.abc.1")
    assert not _allowed(p.subscribe_allow, "am.other.task.echo")
    assert p.to_nats()["resp"] == {"max": 1, "ttl": 0}


def test_an_observer_reads_and_a_roleless_token_may_do_nothing() -> None:
    observer = permissions_for("acme", ["observer"])
    assert _allowed(observer.subscribe_allow, "am.acme.evt.task.completed.t1")
    assert not _allowed(observer.publish_allow, "am.acme.task.echo")
    assert not _allowed(observer.publish_allow, "$JS.API.STREAM.DELETE.AM_acme_task")
    assert _allowed(observer.publish_allow, "$JS.API.CONSUMER.MSG.NEXT.AM_acme_task.c")
    assert "resp" not in observer.to_nats()
    nothing = permissions_for("acme", []).to_nats()
    assert nothing["pub"] == {"deny": [">"]}  # an empty allow list would mean "all" to NATS
    assert nothing["sub"] == {"deny": [">"]}


def test_only_a_platform_admin_gets_everything() -> None:
    assert permissions_for("_system", ["admin"]).publish_allow == [">"]
    assert ">" not in permissions_for("acme", ["admin"]).publish_allow


def test_the_inbox_prefix_follows_the_token_tenant() -> None:
    svc = TokenService(TokenConfig(secret=SECRET))
    token = svc.create("a", "acme", ["agent"])
    assert token_tenant(token) == "acme"
    assert client_inbox_prefix(token) == "_INBOX.acme"
    assert client_inbox_prefix(svc.create("cp", "_system", ["admin"])) == "_INBOX"
    assert client_inbox_prefix(None) == "_INBOX"
    assert token_tenant("garbage") is None


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(agentmesh_data_dir=tmp_path, **kw)  # type: ignore[arg-type]


def test_development_mints_agent_tokens_from_the_dev_secrets(tmp_path: Path) -> None:
    assert agent_token(_settings(tmp_path), "acme") is None  # no secrets here: no token
    resolved = _settings(tmp_path).with_secrets()  # what `agentmesh up` writes
    token = agent_token(_settings(tmp_path), "acme")
    assert token is not None
    claims = TokenService(TokenConfig(secret=resolved.jwt_secret_key)).verify(token)
    assert (claims.tenant_id, claims.roles) == ("acme", ("agent",))
    platform = platform_token(_settings(tmp_path))
    assert platform is not None
    assert token_tenant(platform) == "_system"


def test_production_refuses_an_agent_without_credentials(tmp_path: Path) -> None:
    prod = _settings(tmp_path, environment="production", jwt_secret_key=SECRET)
    with pytest.raises(ConfigError, match="AGENTMESH_TOKEN"):
        agent_token(prod, "acme")
    token = TokenService(TokenConfig(secret=SECRET)).create("a", "acme", ["agent"])
    assert agent_token(prod.model_copy(update={"agentmesh_token": token}), "acme") == token


def test_a_token_of_another_tenant_is_refused_before_connecting(tmp_path: Path) -> None:
    token = TokenService(TokenConfig(secret=SECRET)).create("a", "other", ["agent"])
    with pytest.raises(ConfigError, match="tenant 'other'"):
        agent_token(_settings(tmp_path, agentmesh_token=token), "acme")


def test_settings_never_show_the_token(tmp_path: Path) -> None:
    token = TokenService(TokenConfig(secret=SECRET)).create("a", "acme", ["agent"])
    assert token not in repr(_settings(tmp_path, agentmesh_token=token))
