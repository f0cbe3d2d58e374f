"""Lean spans for the task path: what :mod:`agentmesh.observability.tracing` records.

The OpenTelemetry SDK's span costs tens of microseconds before it is exported (bounded
attribute maps with locks, event and link containers, a read-only copy at its end, a
generator-based context manager, processor fan-out), which on the task path of a mesh is
a large share of a task. A :class:`LeanSpan` keeps only what is set, is a real
``opentelemetry.trace.Span`` (``trace.get_current_span()``, log ids and every API user see
it), and is turned into the SDK's ``ReadableSpan`` only when a batch is exported, on the
exporter's thread, so any ``SpanExporter`` (OTLP/HTTP, in-memory, console) receives what
the SDK would hand it.

:class:`SpanBatcher` is the batch processor: spans are appended to a deque on the hot
path; a worker thread exports them every ``OTEL_BSP_SCHEDULE_DELAY`` ms in batches of
at most ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, and at most ``OTEL_BSP_MAX_QUEUE_SIZE`` spans
are kept (more are dropped and counted), like the SDK's ``BatchSpanProcessor``.

The worker wakes before its time only once half the queue waits, not every
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans as the SDK's does, and for an OTLP exporter a
span is encoded when it ends, by the thread that ends it, so the worker only joins bytes
and posts them. While the event loop is busy, a worker that wants the GIL is woken each
time the loop's thread lets it go (every poll, RE2 match or ``os.urandom``) and finds it
taken again, until the 5 ms switch interval forces a hand-over: measured, each wake-up
cost about 9 ms of CPU, more than exporting the spans it was woken for.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loguru import logger
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from agentmesh.observability.current import attach, detach
from agentmesh.observability.otlp import UNSET, OtlpEncoder

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.util.types import Attributes


class LeanSpan(trace.Span):
    """A recording span that keeps only what is set (see the module docstring)."""

    __slots__ = ("_attrs", "_ctx", "_end", "_events", "_kind", "_name", "_parent", "_sink",
                 "_start", "_status")  # fmt: skip

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None,
        sink: SpanBatcher,
    ) -> None:
        self._name = name
        self._ctx = context
        self._parent = parent
        self._kind = kind
        self._attrs = attributes
        self._sink = sink
        self._events: list[tuple[str, Attributes, int]] | None = None
        self._status = UNSET
        self._end: int | None = None
        self._start = time.time_ns()

    def get_span_context(self) -> SpanContext:
        return self._ctx

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._attrs is None:
            self._attrs = {}
        self._attrs[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._attrs is None:
            self._attrs = {}
        self._attrs.update(attributes)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._events is None:
            self._events = []
        self._events.append((name, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if isinstance(status, StatusCode):
            status = Status(status, description)
        self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{kind.__qualname__}"
            if module and module != "builtins"
            else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time.time_ns()
        self._sink.add(self)

    def __enter__(self) -> LeanSpan:
        """A block the span covers, without making it the current span."""
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """End the span; an exception is recorded and marks it failed, as the SDK does."""
        if exc is not None and isinstance(exc, Exception):
            self.record_exception(exc)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        if self._end is None:
            self._end = time.time_ns()
            self._sink.add(self)

    def readable(self, resource: Resource, scope: Any) -> ReadableSpan:
        """The SDK's read-only form of this span, for an exporter."""
        from opentelemetry.sdk.trace import Event, ReadableSpan

        events = (
            ()
            if self._events is None
            else tuple(Event(n, a, timestamp=t) for n, a, t in self._events)
        )
        return ReadableSpan(
            name=self._name,
            context=self._ctx,
            parent=self._parent,
            resource=resource,
            attributes=self._attrs,
            events=events,
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_scope=scope,
        )


class ActiveSpan(LeanSpan):
    """A lean span that is the current span while its block runs."""

    __slots__ = ("_token",)

    def __enter__(self) -> LeanSpan:
        self._token = attach(self)
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        detach(self._token)
        LeanSpan.__exit__(self, et, exc, tb)


def _bytes_sink(exporter: SpanExporter) -> Callable[[bytes, int], None] | None:
    """Where encoded OTLP requests go instead of ``export(ReadableSpan...)``: an
    exporter's ``export_otlp(data, count)``, or the HTTP client of the OTLP/HTTP exporter
    (the one ``OTEL_EXPORTER_OTLP_*`` configures; its export encodes then posts exactly
    this). None: the exporter receives ReadableSpans."""
    direct = getattr(exporter, "export_otlp", None)
    if callable(direct):
        return direct  # type: ignore[no-any-return]
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:  # the exporter package is optional for other exporters
        return None
    client = getattr(exporter, "_client", None)
    if type(exporter) is not OTLPSpanExporter or not callable(getattr(client, "export", None)):
        return None
    assert client is not None

    def post(data: bytes, count: int) -> None:
        result = client.export(data)
        if not getattr(result, "success", True):
            logger.warning(
                "OTLP export of {} spans failed: {}", count, getattr(result, "error", "")
            )

    return post


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class SpanBatcher:
    """Collects ended spans and hands them to a ``SpanExporter`` in batches (or one by one
    when ``batch`` is false: tests read spans right after the block)."""

    def __init__(self, exporter: SpanExporter, resource: Resource, *, batch: bool = True) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.exporter = exporter
        self.resource = resource
        self.scope = InstrumentationScope("agentmesh")
        self.batch = batch
        self.delay = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.max_batch = _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self.max_queue = max(_env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048), self.max_batch)
        # the worker is woken early when half the queue waits (then exports it in batches
        # of max_batch), not at every max_batch spans: see the module docstring
        self.wake_at = max(self.max_batch, self.max_queue // 2)
        self.dropped = 0
        self._send = _bytes_sink(exporter)  # OTLP bytes straight to the exporter's client
        self._encoder = OtlpEncoder(resource) if self._send is not None else None
        # ended spans: OTLP-framed bytes when encoded as they end, else the spans
        self._queue: collections.deque[Any] = collections.deque()
        self._frame = self._encoder.frame if self._encoder is not None else None
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._closed = False
        self._worker: threading.Thread | None = None
        if batch:
            self._worker = threading.Thread(
                target=self._run, name="agentmesh-span-export", daemon=True
            )
            self._worker.start()

    def add(self, span: LeanSpan) -> None:
        item = span if self._frame is None else self._frame(span)
        if not self.batch:
            with self._export_lock:
                self._export([item])
            return
        queue = self._queue
        waiting = len(queue)
        if waiting >= self.max_queue:
            self.dropped += 1
            return
        queue.append(item)
        if waiting + 1 == self.wake_at:
            self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.delay)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        queue = self._queue
        with self._export_lock:  # the worker and a flush never take the same spans
            while queue:
                self._export([queue.popleft() for _ in range(min(len(queue), self.max_batch))])

    def _export(self, spans: Sequence[Any]) -> None:
        try:
            if self._send is not None and self._encoder is not None:
                self._send(self._encoder.request(spans), len(spans))
            else:
                self.exporter.export([s.readable(self.resource, self.scope) for s in spans])
        except Exception as exc:  # noqa: BLE001 - a failed export loses spans, never the task path
            logger.warning("exporting {} spans failed: {}", len(spans), exc)

    def force_flush(self) -> None:
        """Export every span ended so far (before a process exits, in tests)."""
        self._drain()

    def shutdown(self) -> None:
        self._closed = True
        self._wake.set()
        if self._worker is not None:
            self._worker.join(5)
        self._drain()
        self.exporter.shutdown()
        if self.dropped:
            logger.warning("{} spans were dropped (OTEL_BSP_MAX_QUEUE_SIZE full)", self.dropped)
