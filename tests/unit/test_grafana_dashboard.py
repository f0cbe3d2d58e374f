"""deploy/grafana: every query of the dashboard names metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agentmesh.observability import metrics, process_metrics  # noqa: F401 (registers gauges)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "agentmesh-dashboard.json"
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "max", "changes", "le", "without",
}  # fmt: skip
SERIES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def queries(doc: dict[str, Any]) -> list[str]:
    found = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    found += [a["expr"] for a in doc["annotations"]["list"] if "expr" in a]
    return found


def exported() -> set[str]:
    """Every series name the registry exposes, also for families with no child yet."""
    names: set[str] = set()
    body, _ = metrics.exposition()
    for family in text_string_to_metric_families(body.decode()):
        names.update(s.name for s in family.samples)
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SERIES.get(family.type, ()))
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    doc = json.loads(DASHBOARD.read_text())
    names = exported()
    exprs = queries(doc)
    assert len(exprs) >= 10
    for expr in exprs:
        stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
        words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped)) - PROMQL_WORDS
        labels = set(re.findall(r"by \(([^)]*)\)", expr))
        words -= {w.strip() for group in labels for w in group.split(",")}
        assert words, expr
        for word in words:
            assert word in names, f"{word!r} in {expr!r} is not exported"


def test_the_issue_s_panels_are_there() -> None:
    doc = json.loads(DASHBOARD.read_text())
    text = " ".join(queries(doc))
    for metric in (
        "agentmesh_tasks_completed_total",  # throughput
        "agentmesh_task_execution_seconds_bucket",  # latency p50/p99
        "agentmesh_messages_in_queue",  # queue depth
        "agentmesh_task_failures_total",  # failures
        "agentmesh_anomalies_total",  # anomalies
    ):
        assert metric in text
