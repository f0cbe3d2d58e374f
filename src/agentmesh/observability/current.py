"""The current span, read and set on the task path at the cost of one ``ContextVar`` access.

OpenTelemetry keeps the current span in a ``Context`` held by a ``ContextVar`` of its
runtime context; ``trace.get_current_span()`` and ``context.attach()`` reach it through
four layers of calls, which the task path pays several times per task. When the runtime
context is the standard ``contextvars`` one (always, unless ``OTEL_PYTHON_CONTEXT`` names
another), :func:`current_span`, :func:`attach` and :func:`detach` use its ``ContextVar``
directly: the same ``Context`` objects, so every API user sees the same current span.
Otherwise they fall back to the API.

:func:`root_bound` reads a ``ParentBased(TraceIdRatioBased | ALWAYS_ON | ALWAYS_OFF)``
sampler (the default one and what ``OTEL_TRACES_SAMPLER`` usually names) as the bound a
new trace id is compared with, so a trace's first span is decided without building the
SDK's sampling result.

A ``SpanContext`` is a tuple ``(trace_id, span_id, is_remote, trace_flags, trace_state,
is_valid)`` read through Python properties; when it has that layout (``FLAT_CONTEXT``,
checked at import) the task path unpacks it in one step and :func:`local_context` builds
one for ids known valid without the constructor's checks.
"""

from __future__ import annotations

import re
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.trace import SpanContext, TraceFlags, TraceState, propagation
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

__all__ = [
    "FLAT_CONTEXT",
    "attach",
    "current_span",
    "detach",
    "local_context",
    "parse_traceparent",
    "root_bound",
]


def _context_var() -> tuple[ContextVar[Context], str] | None:
    var = getattr(getattr(context_api, "_RUNTIME_CONTEXT", None), "_current_context", None)
    key = getattr(propagation, "_SPAN_KEY", None)
    if isinstance(var, ContextVar) and isinstance(key, str):
        return var, key
    return None


_DIRECT = _context_var()
_INVALID = trace.INVALID_SPAN

if _DIRECT is not None:
    _VAR, _KEY = _DIRECT
    _get = _VAR.get

    def current_span() -> trace.Span:
        """The current span (``trace.INVALID_SPAN`` when there is none)."""
        span = _get().get(_KEY)
        return span if span is not None else _INVALID  # type: ignore[return-value]

    def attach(span: trace.Span) -> Token[Context]:
        """Make ``span`` the current span; :func:`detach` with the token undoes it."""
        ctx = Context(_get())
        dict.__setitem__(ctx, _KEY, span)
        return _VAR.set(ctx)

    def detach(token: Token[Context]) -> None:
        """Restore the current span :func:`attach` replaced."""
        _VAR.reset(token)

else:  # pragma: no cover - a runtime context other than contextvars (OTEL_PYTHON_CONTEXT)

    def current_span() -> trace.Span:
        """The current span (``trace.INVALID_SPAN`` when there is none)."""
        return trace.get_current_span()

    def attach(span: trace.Span) -> Token[Context]:
        """Make ``span`` the current span; :func:`detach` with the token undoes it."""
        return context_api.attach(trace.set_span_in_context(span))

    def detach(token: Token[Context]) -> None:
        """Restore the current span :func:`attach` replaced."""
        context_api.detach(token)


def root_bound(sampler: Sampler) -> int | None:
    """For a ``ParentBased`` sampler whose root sampler is ``TraceIdRatioBased``,
    ``ALWAYS_ON`` or ``ALWAYS_OFF`` (and whose parent samplers are the defaults): the
    bound that ``trace_id & TRACE_ID_LIMIT`` must stay below for a new trace to be sampled.
    None for any other sampler (ask it)."""
    from opentelemetry.sdk.trace import sampling

    if not isinstance(sampler, sampling.ParentBased):
        return None
    if type(sampler).should_sample is not sampling.ParentBased.should_sample:
        return None
    delegates: dict[str, Any] = vars(sampler)
    defaults = {
        "_remote_parent_sampled": sampling.ALWAYS_ON,
        "_remote_parent_not_sampled": sampling.ALWAYS_OFF,
        "_local_parent_sampled": sampling.ALWAYS_ON,
        "_local_parent_not_sampled": sampling.ALWAYS_OFF,
    }
    if any(delegates.get(k) is not v for k, v in defaults.items()):
        return None
    root = delegates.get("_root")
    if type(root) is sampling.TraceIdRatioBased:
        return int(root.bound)
    if root is sampling.ALWAYS_ON:
        return sampling.TraceIdRatioBased.TRACE_ID_LIMIT + 1
    if root is sampling.ALWAYS_OFF:
        return 0
    return None


def _flat() -> bool:
    state = TraceState([("k", "v")])
    ctx = SpanContext(0xA, 0xB, True, TraceFlags(1), state)
    return tuple(ctx) == (0xA, 0xB, True, 1, state, True) and ctx.trace_flags.sampled


FLAT_CONTEXT = _flat()


def local_context(
    trace_id: int, span_id: int, flags: TraceFlags, state: TraceState | None = None
) -> SpanContext:
    """The context of a span started here, for ids known to be valid (non-zero)."""
    if FLAT_CONTEXT:
        fields = (
            trace_id,
            span_id,
            False,
            flags,
            DEFAULT_TRACE_STATE if state is None else state,
            True,
        )
        return tuple.__new__(SpanContext, fields)  # type: ignore[type-var]
    return SpanContext(trace_id, span_id, False, flags, state)


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_HEX_DASH = frozenset("0123456789abcdef-")
_SAMPLED_FLAGS = TraceFlags(TraceFlags.SAMPLED)


def parse_traceparent(tp: str) -> SpanContext | None:
    """The remote span context a W3C ``traceparent`` names, or None when it is malformed."""
    if (  # the usual form, without the regex: three dashes in place, lowercase hex
        len(tp) == 55
        and tp[2] == "-"
        and tp[35] == "-"
        and tp[52] == "-"
        and tp.count("-") == 3
        and _HEX_DASH.issuperset(tp)
        and tp[:2] != "ff"
    ):
        trace_id, span_id = int(tp[3:35], 16), int(tp[36:52], 16)
        if not trace_id or not span_id:
            return None
        flags = _SAMPLED_FLAGS if tp[53:] == "01" else TraceFlags(int(tp[53:], 16))
        if FLAT_CONTEXT:  # valid ids (checked above): the constructor's checks are done
            fields = (trace_id, span_id, True, flags, DEFAULT_TRACE_STATE, True)
            return tuple.__new__(SpanContext, fields)  # type: ignore[type-var]
        return SpanContext(trace_id, span_id, True, flags)
    m = _TRACEPARENT.fullmatch(tp)
    if m is None or m.group(1) == "ff" or (m.group(1) == "00" and m.group(5)):
        return None
    trace_id, span_id = int(m.group(2), 16), int(m.group(3), 16)
    if not trace_id or not span_id:
        return None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(m.group(4), 16))
    )
