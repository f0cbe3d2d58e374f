"""The task path's shortcuts agree with the OpenTelemetry API and SDK they bypass: the
current span read and set through the context's ContextVar, a new trace's sampling
decision read from the sampler's bound, and an unsampled task that builds no span."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agentmesh.envelope import Envelope
from agentmesh.observability import current, spans, tracing


class Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_the_current_span_is_the_one_the_api_sees_both_ways() -> None:
    a = NonRecordingSpan(SpanContext(1, 2, False, TraceFlags(1)))
    b = NonRecordingSpan(SpanContext(1, 3, False, TraceFlags(1)))
    assert current.current_span() is trace.INVALID_SPAN
    token = current.attach(a)
    try:
        assert trace.get_current_span() is a
        with trace.use_span(b):
            assert current.current_span() is b
        assert current.current_span() is a
    finally:
        current.detach(token)
    assert trace.get_current_span() is trace.INVALID_SPAN


@pytest.mark.parametrize(
    "sampler",
    [ParentBased(TraceIdRatioBased(r)) for r in (0.0, 0.01, 0.5, 1.0)]
    + [ParentBased(ALWAYS_ON), ParentBased(ALWAYS_OFF)],
)
def test_a_new_traces_decision_by_bound_is_the_samplers(sampler: Sampler) -> None:
    bound = current.root_bound(sampler)
    assert bound is not None
    rng = random.Random(7)
    ids = [rng.getrandbits(128) or 1 for _ in range(4000)]
    ids += [bound - 1, bound, bound + 1, (1 << 64) - 1, 1 << 64]  # around the edge
    for trace_id in ids:
        decision = sampler.should_sample(None, trace_id, "x").decision
        assert (trace_id & ((1 << 64) - 1) < bound) == (decision is Decision.RECORD_AND_SAMPLE)


class Custom(ParentBased):
    def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().should_sample(*args, **kwargs)


@pytest.mark.parametrize(
    "sampler",
    [
        TraceIdRatioBased(0.5),  # not parent-based: asks for every span
        ParentBased(TraceIdRatioBased(0.5), remote_parent_sampled=ALWAYS_OFF),
        Custom(ALWAYS_ON),
    ],
)
def test_other_samplers_are_asked(sampler: Sampler) -> None:
    assert current.root_bound(sampler) is None


@pytest.fixture
def traced() -> Iterator[Keep]:
    keep = Keep()
    tracing.configure_tracing("svc", exporter=keep, sampler=ParentBased(ALWAYS_OFF), batch=False)
    yield keep
    tracing.reset_tracing()


def test_an_unsampled_task_builds_no_span_past_its_first(
    traced: Keep, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real = spans.LeanSpan.__init__

    def counted(self: spans.LeanSpan, name: str, *args: object) -> None:
        made.append(name)
        real(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(spans.LeanSpan, "__init__", counted)
    env = Envelope.create("task.offered", {}, tenant_id="acme")
    with tracing.span("task.submit", root=True, leaf=True) as s:
        tracing.inject(env, s)
    tp = env.context["traceparent"]
    assert tp.endswith("-00")  # the decision travels with the task
    with tracing.span("task.receive", parent=env) as received:
        assert received is None  # the shared no-op block
        with tracing.span("task.handler") as handled:
            assert handled is None
            assert tracing.exemplar() is None
        reply = env.reply("task.completed", {})
        with tracing.span("task.outcome", leaf=True) as out:
            tracing.inject(reply, out)
    assert reply.context["traceparent"] == tp  # copied by reply, not re-injected
    assert made == []
    assert traced.spans == []


TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("tp", "ok"),
    [
        (f"00-{TRACE}-{SPAN}-01", True),
        (f"00-{TRACE}-{SPAN}-00", True),
        (f"01-{TRACE}-{SPAN}-01-future", True),  # a later version may add fields
        (f"00-{TRACE}-{SPAN}-01-extra", False),  # version 00 may not
        (f"ff-{TRACE}-{SPAN}-01", False),
        (f"00-{TRACE.upper()}-{SPAN}-01", False),
        (f"00-{'0' * 32}-{SPAN}-01", False),
        (f"00-{TRACE}-{'0' * 16}-01", False),
        (f"00-{TRACE[:-1]}--{SPAN}-01", False),
        (f"00-+{TRACE[1:]}-{SPAN}-01", False),
        (f"00-{TRACE[:10]}_{TRACE[11:]}-{SPAN}-01", False),  # int() would take the _
        (f"00-0x{TRACE[2:]}-{SPAN}-01", False),  # and the 0x
        (f"00-{TRACE}-{SPAN}-1", False),
    ],
)
def test_a_traceparent_is_read_as_w3c_writes_it(tp: str, ok: bool) -> None:
    ctx = tracing.parse_traceparent(tp)
    assert (ctx is not None) == ok
    if ctx is not None:
        assert ctx.trace_id == int(TRACE, 16)
        assert ctx.span_id == int(SPAN, 16)
        assert ctx.is_remote
        assert ctx.trace_flags.sampled == tp.startswith("01", 53)
        flags = TraceFlags(int(tp[53:55], 16))
        assert ctx == SpanContext(int(TRACE, 16), int(SPAN, 16), True, flags)
        assert ctx.is_valid


def test_a_local_context_is_the_one_the_constructor_makes() -> None:
    assert current.FLAT_CONTEXT  # the layout of the installed API: the fast path is taken
    state = trace.TraceState([("k", "v")])
    made = current.local_context(0xABC, 0x123, TraceFlags(1), state)
    want = SpanContext(0xABC, 0x123, False, TraceFlags(1), state)
    assert made == want
    assert (made.trace_id, made.span_id, made.is_remote) == (0xABC, 0x123, False)
    assert (made.trace_flags.sampled, made.trace_state, made.is_valid) == (True, state, True)
    assert current.local_context(1, 2, TraceFlags(0)).trace_state == trace.TraceState()


def test_the_encoding_reads_a_context_by_its_properties_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.resources import Resource

    from agentmesh.observability import otlp

    sink = spans.SpanBatcher(Keep(), Resource({}), batch=False)
    remote = SpanContext(0xABC, 0x123, True, TraceFlags(1))
    state = trace.TraceState([("k", "v")])
    ctx = current.local_context(0xABC, 0x456, TraceFlags(1), state)
    span = spans.LeanSpan("x", ctx, remote, trace.SpanKind.CONSUMER, {"a": "b"}, sink)
    span._end = span._start + 1
    flat = otlp.encode_span(span)
    monkeypatch.setattr(otlp, "FLAT_CONTEXT", False)
    assert otlp.encode_span(span) == flat
