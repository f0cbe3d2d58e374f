"""Rolling z-score detector (window 30, threshold 3.0), table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmesh.observability.anomaly import AnomalyDetector

ALTERNATING = [0.0, 10.0] * 15  # mean 5, population sigma 5


def test_defaults() -> None:
    d = AnomalyDetector()
    assert (d.window_size, d.std_dev_threshold) == (30, 3.0)


@pytest.mark.parametrize(
    ("history", "x", "anomaly", "sigma"),
    [
        (ALTERNATING, 20.1, True, 5.0),  # |15.1| > 15
        (ALTERNATING, 20.0, False, 5.0),  # |15| is not > 15
        (ALTERNATING, -10.1, True, 5.0),
        (ALTERNATING, 5.0, False, 5.0),
        ([10.0] * 30, 13.1, True, 1.0),  # flat: sigma falls back to max(0.1*10, 1.0) = 1
        ([10.0] * 30, 12.9, False, 1.0),
        ([100.0] * 30, 131.0, True, 10.0),  # flat: fallback 0.1*|100| = 10
        ([100.0] * 30, 129.0, False, 10.0),
        ([-100.0] * 30, -131.0, True, 10.0),  # |mean| is used
        ([0.0] * 30, 3.5, True, 1.0),
        ([0.0] * 30, -2.5, False, 1.0),
    ],
)
def test_threshold_and_fallback_sigma(
    history: list[float], x: float, anomaly: bool, sigma: float
) -> None:
    d = AnomalyDetector()
    d.train_model(history)
    result = d.observe(x)
    assert result.evaluated
    assert result.is_anomaly is anomaly
    assert result.std_dev == pytest.approx(sigma)


def test_not_evaluated_until_window_is_full() -> None:
    d = AnomalyDetector(window_size=5)
    verdicts = [d.observe(v) for v in [1, 1, 1, 1, 1000]]
    assert [v.evaluated for v in verdicts] == [False] * 5
    assert not any(v.is_anomaly for v in verdicts)
    assert d.observe(1000).evaluated


def test_anomalies_are_appended_and_window_trims_fifo() -> None:
    d = AnomalyDetector(window_size=3)
    d.train_model([1.0, 2.0, 3.0])
    assert d.detect_anomaly(500.0)
    assert d.window == [2.0, 3.0, 500.0]


def test_train_model_keeps_the_last_window_size_values() -> None:
    d = AnomalyDetector(window_size=4)
    d.train_model(range(10))
    assert d.window == [6.0, 7.0, 8.0, 9.0]


def test_process_reads_payload_value() -> None:
    d = AnomalyDetector(window_size=2)
    d.train_model([5, 5])
    result = d.process({"value": 9, "metric": "latency"})
    assert result is not None
    assert result.is_anomaly  # flat window: sigma 1, |9-5| > 3
    for bad in ({}, {"value": "x"}, {"value": True}, {"value": float("nan")}):
        assert d.process(bad) is None
    assert d.window == [5.0, 9.0]


@pytest.mark.parametrize("kwargs", [{"window_size": 0}, {"std_dev_threshold": 0}])
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        AnomalyDetector(**kwargs)  # type: ignore[arg-type]


@settings(deadline=None)
@given(
    history=st.lists(st.floats(-1e6, 1e6), min_size=10, max_size=10),
    x=st.floats(-1e7, 1e7),
)
def test_verdict_matches_the_definition(history: list[float], x: float) -> None:
    d = AnomalyDetector(window_size=10)
    d.train_model(history)
    mean = sum(history) / 10
    sigma = (sum((v - mean) ** 2 for v in history) / 10) ** 0.5
    if sigma == 0:
        sigma = max(0.1 * abs(mean), 1.0)
    result = d.observe(x)
    margin = abs(abs(x - mean) - 3 * sigma)
    if margin > 1e-6 * max(1.0, sigma):  # away from the boundary, rounding cannot flip it
        assert result.is_anomaly is (abs(x - mean) > 3 * sigma)
    assert len(d.window) == 10
    assert d.window[-1] == x
