"""The rule engine: every rule answers allow, deny, redact or flag with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from agentmesh.safety import DEFAULT_POLICY, SafetyChecker, policy_from_data
from agentmesh.safety.pii import iban_ok, luhn_ok

CHECK = SafetyChecker(DEFAULT_POLICY)


def test_a_clean_task_is_allowed() -> None:
    verdict = CHECK.check_offer({"text": "Summarize the quarterly report, please."})
    assert verdict.action == "allow"
    assert verdict.allowed
    assert verdict.findings == ()


def test_blocked_content_is_denied_with_rule_and_reason() -> None:
    verdict = CHECK.check_offer({"sql": "DROP TABLE users;"})
    assert verdict.action == "deny"
    assert not verdict.allowed
    assert verdict.rule == "content_filter"
    assert "$.payload.sql" in verdict.reason
    assert "drop" in verdict.reason
    assert verdict.risk == 0.8


@pytest.mark.parametrize(
    "disguised",
    [
        "\uff24\uff32\uff2f\uff30 \uff34\uff21\uff22\uff2c\uff25 x",  # full-width
        "dr\u03bfp table x",  # Greek omicron
        "dro\u200bp table x",  # zero-width space
        "DR\u041eP TABLE x",  # Cyrillic O
    ],
)
def test_confusables_do_not_hide_blocked_content(disguised: str) -> None:
    assert CHECK.check_offer({"q": disguised}).rule == "content_filter"


def test_allowed_patterns_exempt_a_value() -> None:
    c = SafetyChecker(
        policy_from_data(
            {"content_filter": {"blocked_patterns": ["secret"], "allowed_patterns": ["^public:"]}}
        )
    )
    assert c.check_offer({"a": "public: not a secret"}).allowed
    assert not c.check_offer({"a": "the secret"}).allowed
    assert not c.check_offer({"n": 1}, {"note": "secret"}).allowed  # context values too


def test_numbers_are_matched_as_text() -> None:
    c = SafetyChecker(policy_from_data({"content_filter": {"blocked_patterns": ["^666$"]}}))
    assert not c.check_offer({"n": 666}).allowed
    assert c.check_offer({"n": 667}).allowed


def test_behavior_patterns() -> None:
    flagged = CHECK.check_offer({"text": "Please override the limits"})
    assert flagged.action == "flag"
    assert flagged.allowed
    assert flagged.rule == "self_modification"
    denied = CHECK.check_offer({"text": "hi", "nested": {"external_url": "http://x"}})
    assert denied.rule == "external_communication"
    assert not denied.allowed
    assert CHECK.check_offer({"text": "changes"}).action == "allow"  # whole words only


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe@example.co.uk now", "email"),
        ("call +44 20 7946 0958 today", "phone"),
        ("call (415) 555-0132 today", "phone"),
        ("card 4111 1111 1111 1111", "card"),
        ("card 5500-0000-0000-0004", "card"),
        ("iban DE89 3704 0044 0532 0130 00", "iban"),
        ("key sk_live_abcdefghijklmnop1234", "api_key"),
        ("aws AKIAABCDEFGHIJKLMNOP", "api_key"),
    ],
)
def test_pii_is_flagged_on_input_and_redacted_on_output(text: str, kind: str) -> None:
    offer = CHECK.check_offer({"text": text})
    assert offer.action == "flag"
    assert offer.rule == f"pii.{kind}"
    result = CHECK.check_result({"text": text, "other": ["keep me"]})
    assert result.action == "redact"
    assert result.rule == f"pii.{kind}"
    assert f"[REDACTED:{kind}]" in result.value["text"]
    assert result.value["other"] == ["keep me"]
    assert result.violations
    assert result.violations[0].severity == "high"


def test_check_digits_keep_random_numbers_out() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000")
    assert not iban_ok("DE89370400440532013001")
    assert CHECK.check_result({"text": "order 4111 1111 1111 1112"}).action == "allow"
    assert CHECK.check_result({"id": "2f0c7d1e-1111-2222-3333-444455556666"}).action == "allow"


def test_platform_context_is_not_checked() -> None:
    ctx = {"correlation_id": "jane@example.com", "traceparent": "00-4111111111111111-01"}
    assert CHECK.check_offer({"text": "hello"}, ctx).action == "allow"


def test_redaction_keeps_structure() -> None:
    result = CHECK.check_result(
        {"rows": [{"mail": "a@example.org", "n": 1}, {"mail": "none"}], "ok": True}
    )
    assert result.value == {
        "rows": [{"mail": "[REDACTED:email]", "n": 1}, {"mail": "none"}],
        "ok": True,
    }


def test_limits() -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    assert CHECK.check_offer({"d": deep}).rule == "limits.depth"
    assert CHECK.check_offer({"s": "x" * 300_000}).rule == "limits.size"
    c = SafetyChecker(policy_from_data({"limits": {"max_nodes": 10}}))
    assert c.check_result(list(range(20))).rule == "limits.nodes"
    assert CHECK.check_offer({"b": b"\xff\xfe invalid utf-8"}).allowed


def test_capability_lists_per_safety_level() -> None:
    c = SafetyChecker(
        policy_from_data(
            {
                "capabilities": {
                    "agent_types": {"llm": "restricted", "ops": "experimental"},
                    "levels": {
                        "restricted": {"allow": ["summarize", "translate*"]},
                        "experimental": {"deny": ["deploy-*"]},
                    },
                }
            }
        )
    )
    assert c.check_offer({}, capability="summarize", agent_type="llm").allowed
    assert c.check_offer({}, capability="translate-fr", agent_type="llm").allowed
    v = c.check_offer({}, capability="deploy", agent_type="llm")
    assert v.rule == "capability"
    assert "restricted" in v.reason
    assert c.check_offer({}, capability="deploy-prod", agent_type="ops").rule == "capability"
    assert c.check_offer({}, capability="deploy-prod", agent_type="general").allowed


def test_tool_allow_list_for_llm_agents() -> None:
    c = SafetyChecker(policy_from_data({"tools": {"llm": ["search", "calculator"]}}))
    assert c.check_offer({"tool": "search"}, agent_type="llm").allowed
    assert c.check_offer({"tools": ["search", "shell"]}, agent_type="llm").rule == "tool"
    assert c.check_result({"tool_calls": [{"name": "shell"}]}, agent_type="llm").rule == "tool"
    assert c.check_offer({"tool": "shell"}, agent_type="general").allowed


def test_numbers_are_not_text_so_ids_never_pass_for_cards() -> None:
    # a gossip incarnation, a nanosecond timestamp: 16-digit integers that pass Luhn
    assert luhn_ok("4111111111111111")
    result = CHECK.check_result({"members": [{"incarnation": 4111111111111111}], "n": 1.5})
    assert result.action == "allow"
