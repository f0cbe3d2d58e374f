"""Exemplars: a task's latency observation links its histogram bucket to the task's trace
(OpenMetrics exposition, read back with prometheus_client's OpenMetrics parser)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from agentmesh import Mesh, TaskContext
from agentmesh.observability import metrics, tracing
from tests.helpers import fast_settings

pytestmark = pytest.mark.integration


def exemplars(body: bytes, family: str, **labels: str) -> list[Any]:
    found = []
    for fam in text_string_to_metric_families(body.decode()):
        if fam.name != family:
            continue
        for s in fam.samples:
            if s.exemplar is not None and all(s.labels.get(k) == v for k, v in labels.items()):
                found.append(s.exemplar)
    return found


async def test_task_latency_buckets_link_to_the_task_trace(tmp_path: Any) -> None:
    agent_id = "ex-" + uuid.uuid4().hex[:8]
    spans = InMemorySpanExporter()
    assert tracing.configure_tracing("exemplar-test", exporter=spans, batch=False)
    try:
        mesh = Mesh(f"memory://{uuid.uuid4().hex}", tenant="acme", settings=fast_settings(tmp_path))

        @mesh.agent(agent_id, capabilities=["exemplify"])
        async def handle(task: TaskContext) -> dict[str, Any]:
            return {"ok": True}

        async with mesh:
            await mesh.run("exemplify", {}, timeout=10)
    finally:
        tracing.reset_tracing()
    [handler] = [s for s in spans.get_finished_spans() if s.name == "task.handler"]
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    [ex] = exemplars(body, "agentmesh_task_execution_seconds", agent_id=agent_id)
    assert ex.labels == {"trace_id": f"{handler.context.trace_id:032x}"}
    assert 0 <= ex.value < 10
    plain, plain_type = metrics.exposition("text/plain")  # Prometheus text: no exemplars
    assert plain_type.startswith("text/plain")
    assert b"trace_id" not in plain


async def test_without_tracing_no_exemplar_is_recorded(tmp_path: Any) -> None:
    agent_id = "nx-" + uuid.uuid4().hex[:8]
    mesh = Mesh(f"memory://{uuid.uuid4().hex}", tenant="acme", settings=fast_settings(tmp_path))

    @mesh.agent(agent_id, capabilities=["plain"])
    async def handle(task: TaskContext) -> dict[str, Any]:
        return {"ok": True}

    async with mesh:
        await mesh.run("plain", {}, timeout=10)
    body, _ = metrics.exposition("application/openmetrics-text")
    assert exemplars(body, "agentmesh_task_execution_seconds", agent_id=agent_id) == []
    assert f'agent_id="{agent_id}"' in body.decode()
