"""Subject names: tenant first, validated, matched like NATS."""

from __future__ import annotations

import pytest

from agentmesh import subjects


def test_tenant_comes_first_everywhere() -> None:
    assert subjects.task("acme", "summarize") == "am.acme.task.summarize"
    assert subjects.rpc("acme", "summarize") == "am.acme.rpc.summarize"
    assert subjects.agent("acme", "a-1") == "am.acme.agent.a-1"
    assert subjects.event("acme", "task.completed") == "am.acme.evt.task.completed"
    assert subjects.heartbeat("acme", "a-1") == "am.acme.hb.a-1"
    assert subjects.heartbeats("acme") == "am.acme.hb.*"
    assert subjects.blackboard("acme", "facts") == "am.acme.bb.facts"
    assert subjects.market("acme", "requests", "gpu") == "am.acme.mkt.requests.gpu"
    assert subjects.system("acme", "ping") == "am.acme.sys.ping"


def test_dead_letter_keeps_the_tenant() -> None:
    assert subjects.dead_letter("am.acme.task.x") == "am.acme.dlq.task.x"
    assert subjects.dead_letter("am.acme.dlq.task.x") == "am.acme.dlq.task.x"
    assert subjects.dead_letter("legacy.topic") == "am._system.dlq.legacy.topic"
    assert subjects.tenant_of("am.acme.task.x") == "acme"
    assert subjects.tenant_of("other.x") is None


@pytest.mark.parametrize("bad", ["", "a b", "a.b", "x*", ">", "é"])
def test_names_are_validated(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        subjects.task(bad, "cap")
    with pytest.raises(ValueError, match="invalid"):
        subjects.agent("acme", bad)


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("am.*.task.x", "am.acme.task.x", True),
        ("am.acme.>", "am.acme.task.x", True),
        ("am.acme.>", "am.acme", False),
        ("am.acme.*", "am.acme.task.x", False),
        ("am.acme.task.x", "am.acme.task.x", True),
        ("am.acme.task.x", "am.acme.task.y", False),
    ],
)
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subjects.matches(pattern, subject) is expected


def test_is_valid() -> None:
    assert subjects.is_valid("am.a.>")
    assert subjects.is_valid("am.*.b")
    assert not subjects.is_valid("am.>.b")
    assert not subjects.is_valid("am..b")
    assert not subjects.is_valid("am.a b")
