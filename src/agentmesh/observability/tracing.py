"""OpenTelemetry tracing: one trace per task, across processes and brokers.

Tracing is off unless an exporter is configured: :func:`configure_tracing` installs an SDK
``TracerProvider`` exporting over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and does nothing otherwise. The standard
``OTEL_*`` variables are honored by the SDK itself (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` / ``_ARG``, ``OTEL_BSP_*``,
``OTEL_EXPORTER_OTLP_HEADERS`` ...); ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` keep tracing off.

While tracing is off every helper here costs one global lookup: :func:`span` returns a
shared no-op context manager and :func:`inject` returns at once.

The W3C ``traceparent`` travels in the envelope's ``context`` (so over every broker):
:func:`inject` writes the current span into an envelope, and ``span(..., parent=env)``
continues the trace an envelope carries. The hops of a task::

    REST (server) -> outbox.relay (producer) -> task.receive (consumer, agent process)
        -> autonomy.decide, task.handler, task.outcome (producer) -> tracker.apply

With tracing on, log lines carry ``trace_id`` and ``span_id`` in their ``extra``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from loguru import logger
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from agentmesh.observability.current import (
    FLAT_CONTEXT,
    attach,
    current_span,
    detach,
    local_context,
    parse_traceparent,
    root_bound,
)
from agentmesh.observability.spans import ActiveSpan, LeanSpan, SpanBatcher

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

    from agentmesh.envelope import Envelope

__all__ = [
    "SpanKind",
    "Status",
    "StatusCode",
    "TracingMiddleware",
    "configure_tracing",
    "current_trace_id",
    "current_traceparent",
    "enabled",
    "exemplar",
    "flush",
    "inject",
    "parse_traceparent",
    "reset_tracing",
    "span",
]

_sink: SpanBatcher | None = None  # None: tracing is off (the hot-path check)
_provider: TracerProvider | None = None  # resource and sampler as the SDK resolves them
_sampler: Sampler | None = None
_root_bound: int | None = None  # a new trace is sampled when its id is below (None: ask)
_exit_hook = False
_parent_based = True  # the sampler follows a parent's decision (ParentBased, the default)
_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()
_UNSAMPLED = frozenset("02468ace")  # last hex digit of trace-flags with the sampled bit 0
_tuple_new = tuple.__new__
_INVALID_SPAN = trace.INVALID_SPAN
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_LIMIT = (1 << 64) - 1  # TraceIdRatioBased compares the low 64 bits of a trace id


def enabled() -> bool:
    """True when spans are recorded and exported."""
    return _sink is not None


def configure_tracing(
    service_name: str,
    *,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    sampler: Sampler | None = None,
    batch: bool = True,
) -> bool:
    """Turn tracing on when an exporter is configured; True when it is on.

    ``service_name`` is used unless ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
    name the service. ``exporter`` (tests, benchmarks) replaces the OTLP/HTTP exporter
    that the ``OTEL_EXPORTER_OTLP_*`` variables select; ``sampler`` replaces the one of
    ``OTEL_TRACES_SAMPLER``. Calling it again while tracing is on changes nothing.
    """
    global _sink, _provider, _sampler, _parent_based, _root_bound
    if _provider is not None:
        return True
    env = os.environ if environ is None else environ
    if exporter is None:
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return False
        if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
            return False
        if not (
            env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        ):
            return False
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    # the provider resolves OTEL_TRACES_SAMPLER; spans go through our batcher, flushed at exit
    provider = TracerProvider(resource=resource, sampler=sampler, shutdown_on_exit=False)
    _provider, _sampler = provider, provider.sampler
    _parent_based = isinstance(_sampler, ParentBased)
    _root_bound = root_bound(_sampler)
    _sink = SpanBatcher(exporter, resource, batch=batch)
    global _exit_hook
    if not _exit_hook:
        atexit.register(flush)  # what is still queued is exported before the process ends
        _exit_hook = True
    logger.configure(patcher=_log_ids)
    logger.info(
        "tracing on: service {}, exporting to {}",
        resource.attributes.get(SERVICE_NAME),
        type(exporter).__name__,
    )
    return True


def reset_tracing() -> None:
    """Flush and shut down the exporter; tracing is off afterwards (tests, benchmarks)."""
    global _sink, _provider
    sink, _sink, _provider = _sink, None, None
    logger.configure(patcher=None)
    if sink is not None:
        sink.shutdown()


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered (before a process exits)."""
    if _sink is not None:
        _sink.force_flush()


def _log_ids(record: Any) -> None:
    ctx = current_span().get_span_context()
    if ctx.is_valid:
        record["extra"]["trace_id"] = f"{ctx.trace_id:032x}"
        record["extra"]["span_id"] = f"{ctx.span_id:016x}"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when there is none."""
    ctx = current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def current_trace_id() -> str | None:
    """The trace id of the current *sampled* span (for exemplars), or None."""
    ctx = current_span().get_span_context()
    if FLAT_CONTEXT:
        trace_id, _, _, flags, _, valid = ctx
    else:
        trace_id, flags, valid = ctx.trace_id, ctx.trace_flags, ctx.is_valid
    if not valid or not flags & 1:  # not sampled
        return None
    return f"{trace_id:032x}"


def exemplar() -> dict[str, str] | None:
    """``{"trace_id": ...}`` of the current sampled span, for a histogram observation
    (OpenMetrics exemplars), or None while tracing is off or the trace is not sampled."""
    if _sink is None:
        return None
    current = current_span()
    if type(current) is ActiveSpan:  # the task's handler span: sampled, being recorded
        return {"trace_id": f"{current._ctx.trace_id:032x}"}
    if current is _INVALID_SPAN:
        return None
    trace_id = current_trace_id()
    return None if trace_id is None else {"trace_id": trace_id}


def inject(env: Envelope, span: trace.Span | None = None) -> None:
    """Make ``span`` (default: the current span) the parent of whoever handles ``env``
    (no-op when off)."""
    if _sink is None:
        return
    if span is None:
        span = current_span()
        if span is _INVALID_SPAN:
            return
    ctx = span.get_span_context()
    if FLAT_CONTEXT:
        trace_id, span_id, _, flags, _, valid = ctx
    else:
        trace_id, span_id, flags, valid = ctx.trace_id, ctx.span_id, ctx.trace_flags, ctx.is_valid
    if valid:
        env.context["traceparent"] = f"00-{trace_id:032x}-{span_id:016x}-{int(flags):02x}"


def span(
    name: str,
    *,
    parent: Envelope | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    root: bool = False,
    leaf: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, child of the current span or of ``parent``'s traceparent.

    ``leaf``: nothing inside the block starts a span or logs, so the span is not made
    the current one (no context switch); pass it to :func:`inject` explicitly.

    Returns a shared no-op context manager while tracing is off, and when the trace it
    would join is not sampled (the unsampled ``traceparent`` still travels on, as the
    envelope's reply copies it). Without ``parent`` the span is a child of the current
    span and is skipped when there is none (or it is not recording), unless ``root``: a
    block outside any trace (a task submitted from Python) starts one. No attribute is
    built for a span that is not recorded.
    """
    sink = _sink
    if sink is None:
        return _NOOP
    attrs: dict[str, Any] | None
    if parent is not None:
        tp = parent.context.get("traceparent")
        if isinstance(tp, str):
            if tp[-1:] in _UNSAMPLED:
                return _NOOP
            parent_ctx = parse_traceparent(tp)
        else:
            parent_ctx = None
        attrs = {"messaging.message.id": parent.id, "agentmesh.tenant_id": parent.tenant_id}
        if attributes:
            attrs.update(attributes)
    else:
        current = current_span()
        if current is _INVALID_SPAN:  # outside any trace (an unsampled task's blocks)
            if not root:
                return _NOOP
            parent_ctx = None
        elif type(current) is ActiveSpan and current._end is None:  # a span of ours
            parent_ctx = current._ctx
        elif current.is_recording():
            parent_ctx = current.get_span_context()
        elif root:
            ctx = current.get_span_context()  # an unsampled trace goes on unsampled
            parent_ctx = ctx if ctx.is_valid else None
        else:
            return _NOOP
        attrs = dict(attributes) if attributes else None
    return _start(sink, name, parent_ctx, kind, attrs, leaf)


def _start(
    sink: SpanBatcher,
    name: str,
    parent: SpanContext | None,
    kind: SpanKind,
    attrs: dict[str, Any] | None,
    leaf: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    span_id = random.getrandbits(64) or 1
    if parent is not None and _parent_based:
        if FLAT_CONTEXT:  # local_context, inlined (3 spans of 4 a task come here)
            trace_id, _, _, flags, state, _ = parent
            if not flags & 1:  # not sampled
                return _NOOP
            ctx = _tuple_new(SpanContext, (trace_id, span_id, False, _SAMPLED, state, True))
        else:
            if not parent.trace_flags.sampled:
                return _NOOP
            ctx = local_context(parent.trace_id, span_id, _SAMPLED, parent.trace_state)
        return (LeanSpan if leaf else ActiveSpan)(name, ctx, parent, kind, attrs, sink)
    if parent is None and _root_bound is not None:  # a new trace, decided by its id
        trace_id = random.getrandbits(128) or 1
        if trace_id & _LIMIT < _root_bound:
            ctx = local_context(trace_id, span_id, _SAMPLED)
            return (LeanSpan if leaf else ActiveSpan)(name, ctx, None, kind, attrs, sink)
        # not recorded, carried on (inject) so the rest of the trace is not sampled either;
        # a leaf needs no block of its own (the API span's exit ends it: a no-op)
        unsampled = trace.NonRecordingSpan(local_context(trace_id, span_id, _NOT_SAMPLED))
        return unsampled if leaf else _Active(unsampled)
    assert _sampler is not None
    trace_id = parent.trace_id if parent is not None else (random.getrandbits(128) or 1)
    parent_context = (
        trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent is not None else None
    )
    result = _sampler.should_sample(parent_context, trace_id, name, kind, attrs)
    sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
    ctx = SpanContext(
        trace_id, span_id, False, _SAMPLED if sampled else _NOT_SAMPLED, result.trace_state
    )
    if not sampled:  # carried on (inject) so the rest of the trace is not sampled either
        return (_Leaf if leaf else _Active)(trace.NonRecordingSpan(ctx))
    if result.attributes:
        attrs = {**(attrs or {}), **result.attributes}
    return (LeanSpan if leaf else ActiveSpan)(name, ctx, parent, kind, attrs, sink)


class _Active:
    """The current span for a block: ended on exit, an exception recorded as the SDK does."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def __enter__(self) -> trace.Span:
        self.token = attach(self.span)
        return self.span

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        detach(self.token)
        _finish(self.span, exc)


class _Leaf(_Active):
    """A span around a block that is not made the current span (see ``leaf``)."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        return self.span

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        _finish(self.span, exc)


def _finish(span: trace.Span, exc: BaseException | None) -> None:
    """End a span; an exception is recorded and marks it failed, as the SDK does."""
    if isinstance(exc, Exception) and span.is_recording():
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


class TracingMiddleware:
    """ASGI middleware: one server span per HTTP request (continuing a ``traceparent``
    header), current while the route runs so the work it starts joins the trace."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        sink = _sink
        if sink is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = _remote_parent(scope.get("headers", ()))
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        status: list[int] = []

        async def send_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        active: contextlib.AbstractContextManager[Any]
        if parent is not None and not parent.trace_flags.sampled:  # the caller's decision
            active = _Active(trace.NonRecordingSpan(parent))
        else:
            attrs = {"http.request.method": method, "url.path": path}
            active = _start(sink, f"{method} {path}", parent, SpanKind.SERVER, attrs)
        with active as s:
            await self.app(scope, receive, send_status)
            if s is None or not s.is_recording():
                return
            route = scope.get("route")
            template = getattr(route, "path", None)
            if isinstance(template, str):
                s.update_name(f"{method} {template}")
                s.set_attribute("http.route", template)
            if status:
                s.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    s.set_status(Status(StatusCode.ERROR))


def _remote_parent(headers: Any) -> SpanContext | None:
    """The span context of a request's ``traceparent`` (and ``tracestate``) headers."""
    parent: SpanContext | None = None
    state: list[str] = []
    for k, v in headers:
        if k == b"traceparent":
            parent = parse_traceparent(v.decode("latin-1").strip())
        elif k == b"tracestate":
            state.append(v.decode("latin-1"))
    if parent is not None and state:
        parent = SpanContext(
            parent.trace_id,
            parent.span_id,
            True,
            parent.trace_flags,
            TraceState.from_header(state),
        )
    return parent
