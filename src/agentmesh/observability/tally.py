"""A counter for per-message paths, read by Prometheus like any counter.

``prometheus_client``'s ``Counter`` takes a lock on every ``inc``; on the delivery path of
a broker (one count per message, tens of thousands a second) that lock is a measurable
share of the work. A :class:`TallyCounter` keeps plain integers per label set and turns
them into a counter family only when the registry is collected (a scrape).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class TallyCounter(Collector):
    """A labelled counter whose increments are dict updates (exposed as ``<name>_total``).

    Increments come from one event loop per process; a lost update between two threads
    incrementing the same label set at the same instant is the accepted cost of no lock.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.counts: dict[tuple[str, ...], int] = {}
        if registry is not None:
            registry.register(self)

    def inc(self, labels: tuple[str, ...], amount: int = 1) -> None:
        """Add ``amount`` to the series of ``labels`` (one value per label name)."""
        counts = self.counts
        counts[labels] = counts.get(labels, 0) + amount

    def value(self, *labels: str) -> int:
        """The count of one label set (0 when never incremented)."""
        return self.counts.get(labels, 0)

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, count in list(self.counts.items()):  # a copy: the loop may add a series
            family.add_metric(labels, count)
        yield family
