"""bench/routing.py keeps working (tiny bounds here; `make bench` runs it for real)."""

from __future__ import annotations

import pytest
from bench import routing


def test_bench_routing_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "MAX_DECISIONS", 20)
    monkeypatch.setattr(routing, "MAX_SECONDS", 0.01)
    results = routing.run()
    assert set(results) == {
        "routing_round_robin_1k",
        "routing_least_connections_1k",
        "routing_capability_based_1k",
        "routing_load_balanced_1k",
        "routing_priority_queue_1k",
        "routing_advanced_router_1k",
    }
    for figure in results.values():
        assert set(figure) == {"value", "unit", "baseline", "ratio"}
        assert figure["unit"] == "decisions/s"
        assert figure["value"] > 0
        assert figure["baseline"] > 0
        # ratio is rounded to 3 places, value and baseline to 1
        assert figure["ratio"] == pytest.approx(
            figure["value"] / figure["baseline"], rel=0.01, abs=0.001
        )
