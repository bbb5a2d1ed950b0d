"""Protobuf wire format for the OTLP trace and log messages the exporter
writes.

Spans are written straight to bytes instead of building `opentelemetry-proto`
message objects first: the outbox keeps each run's spans as the bytes of a
`ScopeSpans` that holds only `spans` fields, so rows concatenate into one
request. Building message objects and serialising them cost about three
times as much per span (benchmarks/README.md). Fields are written in field
number order and defaults are left out, as the C implementation does, so the
bytes equal what the SDK's encoder writes for the same span
(tests/unit/test_otlp_encoding.py holds the two side by side).

Field numbers: opentelemetry/proto/trace/v1/trace.proto,
logs/v1/logs.proto and common/v1/common.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_PACK_Q = struct.Struct("<Q").pack
_PACK_D = struct.Struct("<d").pack
_PACK_I = struct.Struct("<I").pack
_SHORT = [bytes((n,)) for n in range(128)]
KEY_CACHE_MAX = 4096  # attribute keys are mostly constants; a platform's extras stay well under this
HOT_MAX, HOT_ROUND, HOT_VALUE_MAX = 4096, 4096, 48  # repeating key-value pairs kept encoded (bytes of value)


def varint(n: int) -> bytes:
    if n < 128:
        return _SHORT[n] if n >= 0 else varint(n + (1 << 64))  # int64: two's complement, 10 bytes
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def field(number: int, data: bytes) -> bytes:
    """A length-delimited field (bytes, string or message)."""
    return tag(number, 2) + varint(len(data)) + data


# Tags used on the hot path, precomputed.
_T1, _T2, _T3, _T4, _T5 = tag(1, 2), tag(2, 2), tag(3, 2), tag(4, 2), tag(5, 2)
_T_SPAN_NAME, _T_KIND = tag(5, 2), tag(6, 0)
_T_START, _T_END = tag(7, 1), tag(8, 1)
_T_SPAN_ATTR, _T_SPAN_EVENT, _T_STATUS, _T_FLAGS = tag(9, 2), tag(11, 2), tag(15, 2), tag(16, 5)
_T_EVENT_TIME = tag(1, 1)
_T_BOOL, _T_INT, _T_DOUBLE = tag(2, 0), tag(3, 0), tag(4, 1)
_T_STATUS_CODE = tag(3, 0)
# LogRecord: time 1 (as an event's), severity_number 2, severity_text 3, body 5,
# attributes 6, flags 8, trace_id 9, span_id 10, event_name 12.
_T_SEVERITY, _T_LOG_ATTR, _T_LOG_FLAGS = tag(2, 0), tag(6, 2), tag(8, 5)
_T_LOG_TRACE, _T_LOG_SPAN, _T_EVENT_NAME = tag(9, 2), tag(10, 2), tag(12, 2)


def _ld(t: bytes, data: bytes) -> bytes:
    n = len(data)
    return t + (_SHORT[n] if n < 128 else varint(n)) + data


class SpanWriter:
    """Writes OTLP `Span` messages. Keeps bounded caches of encoded attribute
    keys and of key-value pairs that repeat (statuses, kinds, agent and tool
    names: most attributes of most spans): a pair is cached the second time
    it is written within a round of HOT_ROUND candidates, so unique values
    (ids, messages) never fill the cache. Entries are immutable, so threads
    may share a writer."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._hot: dict[tuple[str, str], bytes] = {}
        self._candidates: set[tuple[str, str]] = set()

    def key(self, name: str) -> bytes:
        encoded = self._keys.get(name)
        if encoded is None:
            encoded = _ld(_T1, name.encode())
            if len(self._keys) < KEY_CACHE_MAX:
                self._keys[name] = encoded
        return encoded

    def attribute(self, key: str, value: str | bool | int | float | list[str]) -> bytes:
        """A KeyValue body."""
        if type(value) is str:  # most attributes: a short string, written without the general path
            pair = (key, value)
            hot = self._hot.get(pair)
            if hot is not None:
                return hot
            text = value.encode()
            n = len(text)
            if n < 126:
                encoded = (self._keys.get(key) or self.key(key)) + _T2 + _SHORT[n + 2] + _T1 + _SHORT[n] + text
                if n <= HOT_VALUE_MAX:
                    self._remember(pair, encoded)
                return encoded
        return (self._keys.get(key) or self.key(key)) + _ld(_T2, any_value(value))

    def _remember(self, pair: tuple[str, str], encoded: bytes) -> None:
        if pair in self._candidates:
            if len(self._hot) < HOT_MAX:
                self._hot[pair] = encoded
        else:
            if len(self._candidates) >= HOT_ROUND:
                self._candidates.clear()  # a new round: values seen once in the last one are forgotten
            self._candidates.add(pair)

    def attributes(self, number_tag: bytes, pairs: Iterable[tuple[str, str | bool | int | float | list[str]]]) -> bytes:
        """Repeated KeyValue entries under `number_tag`."""
        out = []
        for k, v in pairs:
            kv = self.attribute(k, v)
            n = len(kv)
            out.append(number_tag + (_SHORT[n] if n < 128 else varint(n)) + kv)
        return b"".join(out)

    def span(
        self,
        *,
        trace_id: bytes,
        span_id: bytes,
        parent: bytes,
        name: str,
        kind: int,
        start_ns: int,
        end_ns: int,
        attributes: Iterable[tuple[str, str | bool | int | float | list[str]]],
        events: Iterable[tuple[int, str, Iterable[tuple[str, str | bool | int | float | list[str]]]]],
        status_code: int,
        status_message: str,
        flags: int,
    ) -> bytes:
        """One `Span` message body (field 2 of ScopeSpans once wrapped by the caller)."""
        parts = [_ld(_T1, trace_id), _ld(_T2, span_id)]
        if parent:
            parts.append(_ld(_T4, parent))
        if name:
            parts.append(_ld(_T_SPAN_NAME, name.encode()))
        if kind:
            parts += (_T_KIND, varint(kind))
        if start_ns:
            parts += (_T_START, _PACK_Q(start_ns))
        if end_ns:
            parts += (_T_END, _PACK_Q(end_ns))
        parts.append(self.attributes(_T_SPAN_ATTR, attributes))
        for time_ns, event_name, event_attrs in events:
            body = [_T_EVENT_TIME, _PACK_Q(time_ns)] if time_ns else []
            if event_name:
                body.append(_ld(_T2, event_name.encode()))
            body.append(self.attributes(_T3, event_attrs))
            parts.append(_ld(_T_SPAN_EVENT, b"".join(body)))
        status = (_ld(_T2, status_message.encode()) if status_message else b"") + (
            _T_STATUS_CODE + varint(status_code) if status_code else b""
        )
        parts.append(_ld(_T_STATUS, status))
        if flags:
            parts += (_T_FLAGS, _PACK_I(flags))
        return b"".join(parts)

    def log_record(
        self,
        *,
        time_ns: int,
        severity_number: int,
        severity_text: str,
        body: str,
        attributes: Iterable[tuple[str, str | bool | int | float | list[str]]],
        flags: int,
        trace_id: bytes,
        span_id: bytes,
        event_name: str,
    ) -> bytes:
        """One `LogRecord` message body (logs/v1/logs.proto), fields in number
        order, defaults left out."""
        parts = [_T_EVENT_TIME, _PACK_Q(time_ns)] if time_ns else []
        if severity_number:
            parts += (_T_SEVERITY, varint(severity_number))
        if severity_text:
            parts.append(_ld(_T3, severity_text.encode()))
        if body:
            parts.append(_ld(_T5, _ld(_T1, body.encode())))
        parts.append(self.attributes(_T_LOG_ATTR, attributes))
        if flags:
            parts += (_T_LOG_FLAGS, _PACK_I(flags))
        if trace_id:
            parts.append(_ld(_T_LOG_TRACE, trace_id))
        if span_id:
            parts.append(_ld(_T_LOG_SPAN, span_id))
        if event_name:
            parts.append(_ld(_T_EVENT_NAME, event_name.encode()))
        return b"".join(parts)


def any_value(value: str | bool | int | float | list[str]) -> bytes:
    """An AnyValue body. A oneof member is written even when it holds its
    default (presence), as the C implementation does."""
    if isinstance(value, str):
        return _ld(_T1, value.encode())
    if isinstance(value, bool):  # before int: bool is an int
        return _T_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _T_INT + varint(value)
    if isinstance(value, float):
        return _T_DOUBLE + _PACK_D(value)
    return _ld(_T5, b"".join([_ld(_T1, any_value(v)) for v in value]))


def scope_spans_entry(span_body: bytes) -> bytes:
    """A span as the `spans` field (2) of a ScopeSpans; as well a log record
    as the `log_records` field (2) of a ScopeLogs."""
    return _ld(_T2, span_body)
