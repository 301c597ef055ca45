"""A specialised Avro writer for CallEvent: the single-object encoding of exactly what
``Codec.encode`` writes, about five times faster (the normalizer's hot path).

It is written against the current ``schemas/call_event.avsc`` and checks at construction that the
schema still has the fields, order and types it knows (:data:`EXPECTED_FIELDS`); when the schema
has evolved it is not used and :class:`~consumers.normalizer.transform.Transformer` falls back to
the generic codec. Tests decode what it writes with the generic codec (round trip, hypothesis).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from callstream.contracts.codecs import SINGLE_OBJECT_MARKER
from callstream.contracts.records import CallEvent
from callstream.contracts.schemas import Schema

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SMALL: Final = tuple(bytes([n]) for n in range(0x80))
_NULL: Final = b"\x00"
_SOME: Final = b"\x02"  # union branch 1 (the non-null one), zigzag varint
_STR_LENGTH: Final = tuple(bytes([n << 1]) for n in range(64))  # zigzag varint of 0..63
_SOME_SMALL: Final = tuple(_SOME + b for b in _STR_LENGTH)

EXPECTED_FIELDS: Final = (
    ("event_id", "string"),
    ("event_type", "enum"),
    ("source", "enum"),
    ("message_id", "?string"),
    ("correlation_id", "?string"),
    ("msisdn", "?string"),
    ("callback_data", "?string"),
    ("platform_code", "?int"),
    ("platform_status", "?string"),
    ("reason", "?enum"),
    ("description", "?string"),
    ("occurred_at", "timestamp-millis"),
    ("received_at", "timestamp-millis"),
    ("terminal", "boolean"),
    ("attributes", "map<string>"),
)


def _kind(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        if len(avro_type) == 2 and avro_type[0] == "null":
            return "?" + _kind(avro_type[1])
        return "union"
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "timestamp-millis" and avro_type["type"] == "long":
            return "timestamp-millis"
        if avro_type["type"] == "map":
            return f"map<{_kind(avro_type['values'])}>"
        return str(avro_type["type"])
    return str(avro_type)


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _long(n: int) -> bytes:
    return _varint((n << 1) ^ (n >> 63))


def _millis(moment: datetime) -> int:
    delta = moment - _EPOCH  # exact integer arithmetic, floor like fastavro
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


class CallEventWriter:
    """``encode(event)`` -> Avro single-object bytes, identical to ``Codec.encode(event)``."""

    def __init__(self, schema: Schema) -> None:
        fields = schema.parsed["fields"]
        found = tuple((f["name"], _kind(f["type"])) for f in fields)
        if found != EXPECTED_FIELDS:
            raise ValueError(f"CallEvent schema changed: {found}")
        self._prefix = SINGLE_OBJECT_MARKER + schema.fingerprint
        by_name = {f["name"]: f["type"] for f in fields}
        self._event_types = {s: _long(i) for i, s in enumerate(by_name["event_type"]["symbols"])}
        self._sources = {s: _long(i) for i, s in enumerate(by_name["source"]["symbols"])}
        self._reasons = {s: _SOME + _long(i) for i, s in enumerate(by_name["reason"][1]["symbols"])}

    def encode(self, event: CallEvent) -> bytes:
        # hot path: helpers inlined; strings under 64 bytes (nearly all) take a one-byte length
        small = _STR_LENGTH
        code = event["platform_code"]
        reason = event["reason"]
        attributes = event["attributes"]
        data = event["event_id"].encode()
        parts = [
            self._prefix,
            small[len(data)] if len(data) < 64 else _long(len(data)),
            data,
            self._event_types[event["event_type"]],
            self._sources[event["source"]],
        ]
        append = parts.append
        for name in ("message_id", "correlation_id", "msisdn", "callback_data"):
            text = event[name]
            if text is None:
                append(_NULL)
            else:
                data = text.encode()
                append(_SOME_SMALL[len(data)] if len(data) < 64 else _SOME + _long(len(data)))
                append(data)
        append(_NULL if code is None else _SOME + _long(code))
        for text in (event["platform_status"],):
            if text is None:
                append(_NULL)
            else:
                data = text.encode()
                append(_SOME_SMALL[len(data)] if len(data) < 64 else _SOME + _long(len(data)))
                append(data)
        append(_NULL if reason is None else self._reasons[reason])
        text = event["description"]
        if text is None:
            append(_NULL)
        else:
            data = text.encode()
            append(_SOME_SMALL[len(data)] if len(data) < 64 else _SOME + _long(len(data)))
            append(data)
        append(_long(_millis(event["occurred_at"])))
        append(_long(_millis(event["received_at"])))
        append(b"\x01" if event["terminal"] else b"\x00")
        if attributes:
            append(_long(len(attributes)))
            for pair in attributes.items():
                for text in pair:
                    data = text.encode()
                    append(small[len(data)] if len(data) < 64 else _long(len(data)))
                    append(data)
        append(b"\x00")
        return b"".join(parts)
