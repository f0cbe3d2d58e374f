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

import contextlib
import os
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from loguru import logger
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

    from agentmesh.envelope import Envelope

__all__ = [
    "SpanKind",
    "TracingMiddleware",
    "configure_tracing",
    "current_traceparent",
    "enabled",
    "inject",
    "reset_tracing",
    "span",
]

_tracer: trace.Tracer | None = None  # None: tracing is off (the hot-path check)
_provider: TracerProvider | None = None
_PROPAGATOR = TraceContextTextMapPropagator()
_NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()
_UNSAMPLED = frozenset("02468ace")  # last hex digit of trace-flags with the sampled bit 0


def enabled() -> bool:
    """True when spans are recorded and exported."""
    return _tracer is not None


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
    global _tracer, _provider
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
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    _provider = provider
    _tracer = provider.get_tracer("agentmesh")
    logger.configure(patcher=_log_ids)
    logger.info(
        "tracing on: service {}, exporting to {}",
        resource.attributes.get(SERVICE_NAME),
        type(exporter).__name__,
    )
    return True


def reset_tracing() -> None:
    """Flush and shut down the provider; tracing is off afterwards (tests, benchmarks)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    logger.configure(patcher=None)
    if provider is not None:
        provider.shutdown()


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans still buffered (before a process exits)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def _log_ids(record: Any) -> None:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        record["extra"]["trace_id"] = f"{ctx.trace_id:032x}"
        record["extra"]["span_id"] = f"{ctx.span_id:016x}"


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when there is none."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def inject(env: Envelope) -> None:
    """Make the current span the parent of whoever handles ``env`` (no-op when off)."""
    if _tracer is None:
        return
    tp = current_traceparent()
    if tp is not None:
        env.context["traceparent"] = tp


def span(
    name: str,
    *,
    parent: Envelope | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    root: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, child of the current span or of ``parent``'s traceparent.

    Returns a shared no-op context manager while tracing is off, and when the trace it
    would join is not sampled (the unsampled ``traceparent`` still travels on, as the
    envelope's reply copies it). Without ``parent`` the span is a child of the current
    span and is skipped when there is none (or it is not recording), unless ``root``: a
    block outside any trace (a task submitted from Python) starts one.
    """
    if _tracer is None:
        return _NOOP
    if parent is not None:
        tp = parent.context.get("traceparent")
        if isinstance(tp, str) and tp[-1:] in _UNSAMPLED:
            return _NOOP
    elif not root and not trace.get_current_span().is_recording():
        return _NOOP
    return _span(_tracer, name, parent, kind, attributes)


@contextlib.contextmanager
def _span(
    tracer: trace.Tracer,
    name: str,
    parent: Envelope | None,
    kind: SpanKind,
    attributes: Mapping[str, str | int | float | bool] | None,
) -> Iterator[trace.Span]:
    ctx = None
    if parent is not None:
        tp = parent.context.get("traceparent")
        if isinstance(tp, str):
            ctx = _PROPAGATOR.extract({"traceparent": tp})
        attrs: dict[str, Any] = {
            "messaging.message.id": parent.id,
            "agentmesh.tenant_id": parent.tenant_id,
        }
        if attributes:
            attrs.update(attributes)
        attributes = attrs
    with tracer.start_as_current_span(name, context=ctx, kind=kind, attributes=attributes) as s:
        yield s


class TracingMiddleware:
    """ASGI middleware: one server span per HTTP request (continuing a ``traceparent``
    header), current while the route runs so the work it starts joins the trace."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"traceparent", b"tracestate")
        }
        ctx = _PROPAGATOR.extract(carrier) if carrier else None
        method = scope.get("method", "GET")
        status: list[int] = []

        async def send_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with tracer.start_as_current_span(
            f"{method} {scope.get('path', '')}",
            context=ctx,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as s:
            await self.app(scope, receive, send_status)
            route = scope.get("route")
            template = getattr(route, "path", None)
            if isinstance(template, str):
                s.update_name(f"{method} {template}")
                s.set_attribute("http.route", template)
            if status:
                s.set_attribute("http.response.status_code", status[0])
                if status[0] >= 500:
                    s.set_status(Status(StatusCode.ERROR))
