"""OTLP protobuf encoding of :class:`~agentmesh.observability.spans.LeanSpan` batches.

The SDK's encoder builds a message object per span, attribute and value before it
serializes them, which costs more CPU than creating the span did. The spans of the
task path hold a few scalar attributes, so they are written here straight in the
protobuf wire format of ``ExportTraceServiceRequest`` (opentelemetry-proto
``trace/v1/trace.proto``); the resource and the instrumentation scope are encoded once
by the SDK's own encoder, and any attribute value other than str, bool, int or float
goes through the SDK's value encoder too. A unit test decodes the bytes with
``opentelemetry-proto`` and compares them field by field with the SDK's encoding.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from agentmesh.observability.current import FLAT_CONTEXT

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

    from agentmesh.observability.spans import LeanSpan

UNSET = Status(StatusCode.UNSET)  # a span's status until one is set (shared, never changed)
_HAS_IS_REMOTE = 0x100  # SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 on the wire: two's complement in ten bytes
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (bytes, string, embedded message)."""
    n = len(payload)
    if number < 16 and n < 0x80:
        return bytes((number << 3 | 2, n)) + payload
    return _varint(number << 3 | 2) + _varint(n) + payload


def _value(value: Any) -> bytes:
    """An ``AnyValue`` message."""
    if isinstance(value, bool):
        return b"\x10" + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _field(1, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    from opentelemetry.exporter.otlp.proto.common._internal import _encode_value

    return bytes(_encode_value(value).SerializeToString())


_KEYS: dict[str, bytes] = {}  # attribute key -> its encoded KeyValue.key field
_NAMES: dict[str, tuple[Any, bytes]] = {}  # span name -> (kind, name and kind encoded)
_NO_STATUS = b"\x7a\x00"  # an empty Status (field 15), as the SDK always writes one
_FLAGS = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE)  # field 16, fixed32
_FLAGS_REMOTE = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)


def _attribute(number: int, k: str, v: Any) -> bytes:
    """One ``KeyValue`` field; a short str value (the common case) in one go."""
    key = _KEYS.get(k)
    if key is None:
        key = _field(1, k.encode())
        if len(_KEYS) < 4096:  # attribute keys are a small set
            _KEYS[k] = key
    if type(v) is str:
        data = v.encode()
        n = len(data)
        size = len(key) + n + 4  # key, then value: 0x12 len (0x0a n data)
        if n < 0x7E and size < 0x80:
            return bytes((number << 3 | 2, size)) + key + bytes((0x12, n + 2, 0x0A, n)) + data
    return _field(number, key + _field(2, _value(v)))


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join([_attribute(number, k, v) for k, v in attributes.items() if v is not None])


_M64 = (1 << 64) - 1
_IDS = struct.Struct(">HQQHQ").pack  # trace_id (field 1), span_id (field 2)
_PARENT = struct.Struct(">HQ").pack  # parent_span_id (field 4)
_TIMES = struct.Struct("<BQBQ").pack  # start, end (fields 7, 8: fixed64)


def encode_span(span: LeanSpan) -> bytes:
    """One ``Span`` message."""
    ctx = span._ctx
    parent = span._parent
    if FLAT_CONTEXT:
        tid, sid, _, _, state, _ = ctx
    else:
        tid, sid, state = ctx.trace_id, ctx.span_id, ctx.trace_state
    body = [_IDS(0x0A10, tid >> 64, tid & _M64, 0x1208, sid)]
    if state is not DEFAULT_TRACE_STATE and state:
        body.append(_field(3, state.to_header().encode()))
    remote = False
    if parent is not None:
        if FLAT_CONTEXT:
            _, parent_id, remote, _, _, _ = parent
        else:
            parent_id, remote = parent.span_id, parent.is_remote
        body.append(_PARENT(0x2208, parent_id))
    kind = span._kind
    named = _NAMES.get(span._name)
    if named is None or named[0] is not kind:
        # OTLP kinds start at 1 (INTERNAL)
        encoded = _field(5, span._name.encode()) + b"\x30" + _varint(kind.value + 1)
        named = (kind, encoded)
        if len(_NAMES) < 4096:  # span names are a small set; a stray dynamic one is not kept
            _NAMES[span._name] = named
    body.append(named[1])
    body.append(_TIMES(0x39, span._start, 0x41, span._end or span._start))
    attrs = span._attrs
    if attrs:
        body.extend([_attribute(9, k, v) for k, v in attrs.items() if v is not None])
    if span._events:
        for name, event_attrs, ts in span._events:
            event = (
                b"\x09" + _pack_fixed64(ts) + _field(2, name.encode()) + _attributes(3, event_attrs)
            )
            body.append(_field(11, event))
    status = span._status
    if status is UNSET:
        body.append(_NO_STATUS)
    elif status.status_code.value or status.description:
        inner = _field(2, status.description.encode()) if status.description else b""
        if status.status_code.value:
            inner += b"\x18" + _varint(status.status_code.value)
        body.append(_field(15, inner))
    else:
        body.append(_NO_STATUS)
    body.append(_FLAGS_REMOTE if remote else _FLAGS)
    return b"".join(body)


class OtlpEncoder:
    """Encodes batches of lean spans as one ``ExportTraceServiceRequest`` each."""

    def __init__(self, resource: Resource, scope_name: str = "agentmesh") -> None:
        from opentelemetry.exporter.otlp.proto.common._internal import _encode_resource
        from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope

        self._resource = _field(1, bytes(_encode_resource(resource).SerializeToString()))
        self._scope = _field(1, bytes(InstrumentationScope(name=scope_name).SerializeToString()))

    @staticmethod
    def frame(span: LeanSpan) -> bytes:
        """One span as a field of the request's ``ScopeSpans`` (see :meth:`request`)."""
        return _field(2, encode_span(span))

    def request(self, framed: Sequence[bytes]) -> bytes:
        """The ``ExportTraceServiceRequest`` of spans already :meth:`frame`-d."""
        return _field(1, self._resource + _field(2, self._scope + b"".join(framed)))

    def encode(self, spans: Sequence[LeanSpan]) -> bytes:
        return self.request([self.frame(s) for s in spans])
