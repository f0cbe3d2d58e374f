"""One rule per identifier: the envelope, subjects, tokens, the domain and the API agree."""

from __future__ import annotations

import pytest

from agentmesh import ids, subjects
from agentmesh.domain.values import AgentId
from agentmesh.envelope import Envelope
from agentmesh.errors import EnvelopeError, ValidationError
from agentmesh.security.tokens import TokenConfig, TokenService

LONGEST_TENANT = "t" * 64
TOO_LONG_TENANT = "t" * 65


def _accepted_everywhere(tenant: str) -> list[bool]:
    results = []
    for check in (
        lambda: subjects.task(tenant, "cap"),
        lambda: Envelope.decode(Envelope.create("task.offered", {}, tenant_id=tenant).encode()),
        lambda: TokenService(TokenConfig(secret="s" * 32)).create("me", tenant, ["agent"]),
        lambda: ids.check_tenant_id(tenant),
    ):
        try:
            check()
            results.append(True)
        except (ValidationError, EnvelopeError):
            results.append(False)
    return results


def test_a_tenant_id_has_one_rule() -> None:
    assert _accepted_everywhere(LONGEST_TENANT) == [True] * 4
    assert _accepted_everywhere(TOO_LONG_TENANT) == [False] * 4
    assert _accepted_everywhere("a") == [True] * 4


def test_an_agent_id_has_one_rule() -> None:
    for good in ("abc", "a" * 256):
        assert subjects.agent("t", good)
        assert AgentId(good)
        assert ids.check_agent_id(good) == good
    for bad in ("ab", "a" * 257, "bad id!"):
        with pytest.raises(ValidationError):
            subjects.agent("t", bad)
        with pytest.raises(ValidationError):
            AgentId(bad)


def test_the_api_uses_the_same_patterns() -> None:
    from agentmesh.api.routes.objects import TenantPath
    from agentmesh.api.schemas import TenantId

    for annotated in (TenantPath, TenantId):
        patterns = [getattr(m, "pattern", None) for m in annotated.__metadata__]
        patterns += [
            getattr(m, "pattern", None) for m in getattr(annotated.__metadata__[0], "metadata", [])
        ]
        assert ids.TENANT_ID.pattern in patterns
