"""Policies as data: defaults, YAML/JSON/TOML, errors that name the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.safety import (
    DEFAULT_POLICY,
    PolicyError,
    SafetyChecker,
    load_policy_file,
    parse_policy,
    policy_from_data,
    policy_to_data,
)
from agentmesh.safety.policy import SEVERITY_RISK

GOOD = """\
version: 7
name: strict
quarantine:
  max_violations: 3
  window_seconds: 30
content_filter:
  blocked_patterns:
    - '(?i)forbidden'
  allowed_patterns:
    - '^ok:'
  action: deny
  severity: critical
rate_limit:
  time_window: 10
  max_requests: 50
pii:
  output: deny
capabilities:
  agent_types: {llm: restricted}
  levels:
    restricted: {allow: [summarize], deny: []}
tools:
  llm: [search]
"""


def test_defaults_follow_the_spec() -> None:
    p = DEFAULT_POLICY
    assert p.quarantine.max_violations == 5
    assert p.quarantine.window_seconds == 60
    assert p.behavior.self_modification == ("modify", "change", "override", "bypass")
    assert p.behavior.external_keys == ("external_url", "external_api")
    assert p.rate_limit is None  # opt-in; when set the spec's 60 s / 100 are the defaults
    assert SEVERITY_RISK == {"low": 0.2, "medium": 0.5, "high": 0.8, "critical": 1.0}
    assert policy_from_data({"rate_limit": {}}).rate_limit is not None
    assert policy_from_data({"rate_limit": {}}).rate_limit.max_requests == 100  # type: ignore[union-attr]


def test_a_yaml_policy_loads_and_round_trips() -> None:
    p = parse_policy(GOOD)
    assert (p.version, p.name, p.quarantine.max_violations) == (7, "strict", 3)
    assert p.content_filter.rule.severity == "critical"
    assert p.rate_limit is not None
    assert p.rate_limit.max_requests == 50
    assert p.pii.output == "deny"
    assert p.capabilities.level_of("llm") == "restricted"
    assert p.tools == {"llm": ("search",)}
    assert policy_from_data(policy_to_data(p)) == p


def test_toml_and_json_are_accepted(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text("version = 3\n[quarantine]\nmax_violations = 2\n", encoding="utf-8")
    assert load_policy_file(toml).quarantine.max_violations == 2
    js = tmp_path / "p.json"
    js.write_text('{"version": 4, "limits": {"max_depth": 8}}', encoding="utf-8")
    assert load_policy_file(js).limits.max_depth == 8


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("version: 1\nlimits:\n  max_depth: 0\n", 3, "limits.max_depth"),
        ("version: 1\npii:\n  detectors: [email, dna]\n", 3, "pii.detectors[1]"),
        ("version: 1\ncontent_filter:\n  action: explode\n", 3, "content_filter.action"),
        ("version: 1\nbogus: 1\n", 2, "bogus"),
        (
            "version: 1\ncontent_filter:\n  blocked_patterns:\n    - fine\n    - '(a)\\1'\n",
            5,
            "content_filter.blocked_patterns[1]",
        ),
        (
            "version: 1\ncontent_filter:\n  blocked_patterns:\n    - '(?=look)ahead'\n",
            4,
            "content_filter.blocked_patterns[0]",
        ),
    ],
)
def test_a_bad_policy_names_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.line == line
    assert caught.value.field == field
    assert f"line {line}" in str(caught.value)
    assert field in str(caught.value)


def test_broken_yaml_says_where() -> None:
    with pytest.raises(PolicyError, match="line 2"):
        parse_policy("version: 1\nlimits: {max_depth: [}\nname: x\n")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy_file("/nonexistent/policy.yaml")


def test_a_backtracking_pattern_compiles_to_linear_time() -> None:
    checker = SafetyChecker(policy_from_data({"content_filter": {"blocked_patterns": ["(a+)+$"]}}))
    import time

    started = time.thread_time()  # CPU time: a preempted test is not a slow checker
    verdict = checker.check_offer({"text": "a" * 100_000 + "!"})
    assert time.thread_time() - started < 0.05
    assert verdict.allowed
