"""Tracing helpers: off = no-op, traceparent in envelopes, log ids, the HTTP server span."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from loguru import logger
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from agentmesh.envelope import Envelope
from agentmesh.observability import tracing
from agentmesh.observability.logging import configure_logging

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing("test-svc", exporter=exporter, batch=False)
    yield exporter
    tracing.reset_tracing()


def test_without_an_endpoint_tracing_stays_off_and_costs_nothing() -> None:
    assert not tracing.configure_tracing("svc", environ={})
    assert not tracing.configure_tracing(
        "svc", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing.configure_tracing(
        "svc", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert not tracing.enabled()
    env = Envelope.create("task.offered", {}, traceparent=TP)
    assert tracing.span("a") is tracing.span("b", parent=env)  # one shared no-op
    with tracing.span("a"):
        tracing.inject(env)
    assert env.traceparent == TP  # passed through untouched
    assert tracing.current_traceparent() is None


def test_an_endpoint_turns_tracing_on_with_the_otlp_http_exporter() -> None:
    try:
        assert tracing.configure_tracing(
            "svc", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
        )
        assert tracing.enabled()
    finally:
        tracing.reset_tracing()
    assert not tracing.enabled()


def test_a_span_continues_the_envelope_trace_and_inject_passes_it_on(
    spans: InMemorySpanExporter,
) -> None:
    incoming = Envelope.create("task.offered", {}, tenant_id="acme", traceparent=TP)
    outgoing = Envelope.create("task.completed", {})
    with (
        tracing.span("task.receive", parent=incoming, kind=tracing.SpanKind.CONSUMER),
        tracing.span("task.outcome"),
    ):
        tracing.inject(outgoing)
    receive, outcome = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert f"{receive.context.trace_id:032x}" == TP.split("-")[1]
    assert f"{receive.parent.span_id:016x}" == TP.split("-")[2]  # type: ignore[union-attr]
    assert receive.attributes["agentmesh.tenant_id"] == "acme"  # type: ignore[index]
    assert outcome.parent.span_id == receive.context.span_id  # type: ignore[union-attr]
    assert outgoing.traceparent is not None
    assert outgoing.traceparent[:-2] == (
        f"00-{outcome.context.trace_id:032x}-{outcome.context.span_id:016x}-"
    )
    assert int(outgoing.traceparent[-2:], 16) & 1 == 1  # sampled


def test_a_span_without_a_traceparent_starts_a_new_trace(spans: InMemorySpanExporter) -> None:
    with tracing.span("tracker.apply", parent=Envelope.create("x", {})):
        pass
    (only,) = spans.get_finished_spans()
    assert only.parent is None


def test_an_exception_marks_the_span_as_an_error(spans: InMemorySpanExporter) -> None:
    with pytest.raises(RuntimeError), tracing.span("task.handler", root=True):
        raise RuntimeError("boom")
    (only,) = spans.get_finished_spans()
    assert not only.status.is_ok
    assert only.events[0].name == "exception"


def test_log_lines_carry_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    out = io.StringIO()
    configure_logging("INFO", json=True, sink=out)
    try:
        logger.info("outside")
        with tracing.span("task.handler", root=True):
            logger.info("inside")
            tp = tracing.current_traceparent()
    finally:
        configure_logging("INFO")
    outside, inside = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside.get("extra", {})
    assert tp is not None
    assert inside["extra"]["trace_id"] == tp.split("-")[1]
    assert inside["extra"]["span_id"] == tp.split("-")[2]


def test_the_middleware_makes_one_server_span_per_request_continuing_a_header(
    spans: InMemorySpanExporter,
) -> None:
    app = FastAPI()
    seen: list[str | None] = []

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        seen.append(tracing.current_traceparent())
        return {"id": item_id}

    app.add_middleware(tracing.TracingMiddleware)
    with TestClient(app) as client:
        assert client.get("/items/7", headers={"traceparent": TP}).status_code == 200
        assert client.get("/missing").status_code == 404
    first, second = spans.get_finished_spans()
    assert first.name == "GET /items/{item_id}"
    assert first.kind == tracing.SpanKind.SERVER
    assert f"{first.context.trace_id:032x}" == TP.split("-")[1]
    assert first.attributes["http.response.status_code"] == 200  # type: ignore[index]
    assert seen[0] is not None
    assert seen[0].split("-")[2] == f"{first.context.span_id:016x}"
    assert second.parent is None
    assert second.attributes["http.response.status_code"] == 404  # type: ignore[index]


def test_sampling_off_records_nothing_and_injects_nothing() -> None:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("svc", exporter=exporter, sampler=ALWAYS_OFF, batch=False)
    try:
        env = Envelope.create("x", {})
        with tracing.span("task.submit", root=True):
            tracing.inject(env)
        assert exporter.get_finished_spans() == ()
        # the unsampled context still travels (sampled bit 0) so downstream stays unsampled
        assert env.traceparent is not None
        assert int(env.traceparent[-2:], 16) & 1 == 0
    finally:
        tracing.reset_tracing()


def test_spans_of_unsampled_traces_and_outside_any_trace_are_skipped(
    spans: InMemorySpanExporter,
) -> None:
    unsampled = Envelope.create("x", {}, traceparent=TP[:-2] + "00")
    assert tracing.span("task.receive", parent=unsampled) is tracing.span("b", parent=unsampled)
    with tracing.span("task.outcome"):  # no current span, not a root: nothing recorded
        pass
    with tracing.span("task.submit", root=True), tracing.span("task.outcome"):
        pass
    assert sorted(s.name for s in spans.get_finished_spans()) == ["task.outcome", "task.submit"]


def test_a_leaf_span_is_not_made_current_and_is_injected_explicitly(
    spans: InMemorySpanExporter,
) -> None:
    from opentelemetry import trace

    out = Envelope.create("task.completed", {})
    with tracing.span("task.receive", root=True) as outer:
        with tracing.span("task.outcome", leaf=True) as leaf:
            assert trace.get_current_span() is outer  # no context switch for a leaf
            tracing.inject(out, leaf)
        with pytest.raises(RuntimeError), tracing.span("task.outcome", leaf=True):
            raise RuntimeError("publish failed")
    receive, outcome, failed = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert outcome.parent.span_id == receive.context.span_id  # type: ignore[union-attr]
    assert out.traceparent is not None
    assert out.traceparent.split("-")[2] == f"{outcome.context.span_id:016x}"
    assert not failed.status.is_ok
    assert failed.events[0].name == "exception"
