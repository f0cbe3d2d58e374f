"""The AlignmentEvaluator (spec 3.12) and the per-agent violation window."""

from __future__ import annotations

import pytest

from agentmesh.errors import ValidationError
from agentmesh.safety import Alignment, SafetyChecker
from agentmesh.safety.alignment import TARGETS, status_of
from agentmesh.safety.monitor import AgentMonitor
from agentmesh.safety.policy import DEFAULT_POLICY, Quarantine, RateLimit


def test_thresholds() -> None:
    assert status_of(0.7) == "aligned"
    assert status_of(0.69) == "partially_aligned"
    assert status_of(0.49) == "partially_aligned"
    assert status_of(0.48) == "misaligned"
    fresh = Alignment()
    assert fresh.score == 1.0
    assert set(fresh.targets) == set(TARGETS)
    assert len(TARGETS) == 5


def test_violations_lower_their_target_and_outcomes_restore_slowly() -> None:
    a = Alignment().violation("pii.email", 0.8)
    assert a.targets["respect_privacy"] < 1.0
    assert all(v == 1.0 for k, v in a.targets.items() if k != "respect_privacy")
    assert a.outcome().score > a.score


def test_feedback_can_make_an_agent_misaligned() -> None:
    a = Alignment().feedback(0.0)
    assert a.status == "partially_aligned"
    a = a.feedback(0.0)
    assert a.misaligned
    with pytest.raises(ValidationError):
        a.feedback(1.5)
    with pytest.raises(ValidationError):
        a.feedback(0.5, ["be_kind"])


def test_the_fifth_violation_in_the_window_quarantines() -> None:
    policy = Quarantine(max_violations=5, window_seconds=60)
    mon = AgentMonitor()
    finding = SafetyChecker(DEFAULT_POLICY).check_result({"t": "a@example.com"}).violations
    for i in range(4):
        assert mon.record(finding, policy, now=float(i)) == i + 1
        assert mon.must_quarantine(policy) is None
    mon.record(finding, policy, now=100.0)  # the first four left the window
    assert mon.must_quarantine(policy) is None
    for i in range(4):
        mon.record(finding, policy, now=101.0 + i)
    why = mon.must_quarantine(policy)
    assert why is not None
    assert "5 safety violations" in why
    mon.reset()
    assert mon.must_quarantine(policy) is None
    assert mon.alignment.score == 1.0


def test_rate_limit_window() -> None:
    mon = AgentMonitor()
    rate = RateLimit(time_window=10, max_requests=3)
    assert [mon.allow_request(rate, now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert mon.allow_request(rate, now=10.5)
    assert mon.allow_request(None, now=0)
