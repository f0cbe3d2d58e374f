"""The lean spans' OTLP encoding decodes (opentelemetry-proto) to what the SDK's encoder
makes of the same spans, field by field; and the exporters get every span."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from agentmesh.envelope import Envelope
from agentmesh.observability import tracing
from agentmesh.observability.otlp import OtlpEncoder
from agentmesh.observability.spans import LeanSpan, SpanBatcher

RESOURCE = Resource({"service.name": "svc", "host.name": "h1"})


class Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def make_spans(sink: SpanBatcher) -> list[LeanSpan]:
    remote = SpanContext(0xABC, 0x123, is_remote=True, trace_flags=TraceFlags(1))
    a = LeanSpan(
        "task.receive",
        SpanContext(0xABC, 0x456, False, TraceFlags(1), TraceState([("k", "v")])),
        remote,
        SpanKind.CONSUMER,
        {
            "s": "é text",
            "edge": "y" * 117,  # the longest value written with one-byte lengths
            "edge2": "z" * 118,  # one byte more: a two-byte length
            "long": "x" * 200,  # multi-byte lengths
            "i": -5,
            "big": 2**40,
            "f": 0.25,
            "b": True,
            "list": ["x", "y"],
        },
        sink,
    )
    a.add_event("progress", {"n": 1})
    a.record_exception(RuntimeError("boom"))
    a.set_status(Status(StatusCode.ERROR, "RuntimeError: boom"))
    b = LeanSpan(
        "task.outcome", SpanContext(0xABC, 0x789, False), a._ctx, SpanKind.PRODUCER, None, sink
    )
    c = LeanSpan(
        "root", SpanContext(2**127 + 1, 2**63 + 7, False), None, SpanKind.INTERNAL, {}, sink
    )
    c.set_status(StatusCode.OK)
    return [a, b, c]


def test_the_hand_encoding_decodes_to_the_sdk_encoding() -> None:
    sink = SpanBatcher(Keep(), RESOURCE, batch=False)
    spans = make_spans(sink)
    for s in spans:
        s._end = s._start + 1000
    ours = ExportTraceServiceRequest.FromString(OtlpEncoder(RESOURCE).encode(spans))
    readable = [s.readable(RESOURCE, sink.scope) for s in spans]
    sdk = encode_spans(readable)
    assert MessageToDict(ours) == MessageToDict(sdk)
    assert len(ours.resource_spans[0].scope_spans[0].spans) == 3


class Bytes(Keep):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []
        self.count = 0

    def export_otlp(self, data: bytes, count: int) -> None:
        self.requests.append(data)
        self.count += count


@pytest.mark.parametrize("exporter", [Keep(), Bytes()])
def test_a_batch_exporter_gets_every_span_of_the_task_path(
    exporter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8192")  # nothing dropped, whatever the load
    assert tracing.configure_tracing("svc", exporter=exporter)
    try:
        incoming = Envelope.create("task.offered", {}, tenant_id="acme")
        for _ in range(1200):  # more than one batch of OTEL_BSP_MAX_EXPORT_BATCH_SIZE
            with tracing.span("task.submit", root=True):
                tracing.inject(incoming)
            with tracing.span("task.receive", parent=incoming), tracing.span("task.handler"):
                pass
        tracing.flush()
    finally:
        tracing.reset_tracing()
    if isinstance(exporter, Bytes):
        decoded = [ExportTraceServiceRequest.FromString(r) for r in exporter.requests]
        names = [s.name for r in decoded for s in r.resource_spans[0].scope_spans[0].spans]
        assert exporter.count == 3600
    else:
        names = [s.name for s in exporter.spans]
    assert len(names) == 3600
    assert names.count("task.handler") == 1200


def test_spans_still_queued_are_exported_when_the_process_exits() -> None:
    import subprocess
    import sys

    script = """
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from agentmesh.observability import tracing
class Print(SpanExporter):
    def export(self, spans):
        print("exported", *[s.name for s in spans], flush=True)
        return SpanExportResult.SUCCESS
    def shutdown(self):
        pass
tracing.configure_tracing("exit-test", exporter=Print())
with tracing.span("last-words", root=True):
    pass
print("exiting", flush=True)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.splitlines() == ["exiting", "exported last-words"]


def _ended(sink: SpanBatcher, n: int) -> None:
    for i in range(n):
        span = LeanSpan("s", SpanContext(0xABC, i + 1, False), None, SpanKind.INTERNAL, None, sink)
        span.end()


def test_the_worker_wakes_early_once_half_the_queue_waits_and_exports_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # no timer within the test
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "32")
    exporter = Bytes()
    sink = SpanBatcher(exporter, RESOURCE)
    try:
        _ended(sink, 15)
        time.sleep(0.2)
        assert exporter.count == 0  # a full batch alone does not wake the worker
        _ended(sink, 1)  # 16 = half the queue
        deadline = time.monotonic() + 5
        while exporter.count < 16 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exporter.count == 16
        assert len(exporter.requests) == 4  # in batches of OTEL_BSP_MAX_EXPORT_BATCH_SIZE
    finally:
        sink.shutdown()


def test_an_otlp_span_is_encoded_as_it_ends() -> None:
    exporter = Bytes()
    sink = SpanBatcher(exporter, RESOURCE)
    try:
        span = LeanSpan("s", SpanContext(0xABC, 1, False), None, SpanKind.INTERNAL, None, sink)
        span.set_attribute("before", 1)
        span.end()
        span.set_attribute("after", 2)  # an ended span is read-only, as in the SDK
        sink.force_flush()
    finally:
        sink.shutdown()
    (request,) = exporter.requests
    (got,) = ExportTraceServiceRequest.FromString(request).resource_spans[0].scope_spans[0].spans
    assert [a.key for a in got.attributes] == ["before"]
