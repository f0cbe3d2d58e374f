"""TallyCounter: a lock-free counter that scrapes like a prometheus Counter."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agentmesh.observability.tally import TallyCounter


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_increments_are_scraped_as_a_counter_per_label_set() -> None:
    registry = CollectorRegistry()
    tally = TallyCounter("demo_received_total", "Demo", ("platform", "topic"), registry=registry)
    for _ in range(3):
        tally.inc(("nats", "task"))
    tally.inc(("kafka", "evt"), 5)
    samples = _samples(registry)
    assert samples[("demo_received_total", (("platform", "nats"), ("topic", "task")))] == 3
    assert samples[("demo_received_total", (("platform", "kafka"), ("topic", "evt")))] == 5
    assert tally.value("nats", "task") == 3
    assert tally.value("nats", "other") == 0
    text = generate_latest(registry).decode()
    assert "# TYPE demo_received_total counter" in text


def test_a_new_series_during_a_scrape_is_kept_for_the_next() -> None:
    registry = CollectorRegistry()
    tally = TallyCounter("demo_total", "Demo", ("k",), registry=registry)
    tally.inc(("a",))
    families = tally.collect()
    tally.inc(("b",))  # added while a scrape holds its copy
    assert [s.labels for s in next(families).samples] in ([{"k": "a"}], [{"k": "a"}, {"k": "b"}])
    assert _samples(registry)[("demo_total", (("k", "b"),))] == 1
