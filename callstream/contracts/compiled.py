"""Avro binary encoding compiled once per schema: the hot path of every service that writes.

Why not only fastavro: ``fastavro.schemaless_writer`` walks the schema for every record (about
10 us for a CallEvent or DispatchResult); the dispatcher writes two records per call and the
normalizer one per callback, so it was the largest single item of their CPU per record.
:func:`compile_writer` turns a parsed schema into nested closures once, so encoding is a straight
walk over the record (about 4-6 us). It covers the types our schemas use (records, string, int,
long, boolean, enum, map, ``timestamp-millis``, unions with ``null``);
:class:`~callstream.contracts.codecs.Codec` falls back to fastavro for anything else and for a
record that does not fit (a wrong type), so the bytes are always exactly fastavro's (the unit
tests compare them, including with hypothesis).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Writer = Callable[[Any, list[bytes]], None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnsupportedSchemaError(Exception):
    """The schema uses a construct the compiler does not handle: use fastavro."""


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_long(n) for n in range(-64, 64)]


def _varint(n: int) -> bytes:
    if -64 <= n < 64:
        return _SMALL[n + 64]
    return _long(n)


def _w_string(value: Any, out: list[bytes]) -> None:
    if type(value) is not str:
        raise TypeError("string expected")
    data = value.encode()
    out.append(_varint(len(data)))
    out.append(data)


def _w_int(value: Any, out: list[bytes]) -> None:
    if type(value) is not int or not -(2**31) <= value < 2**31:
        raise TypeError("int expected")
    out.append(_varint(value))


def _w_long(value: Any, out: list[bytes]) -> None:
    if type(value) is not int or not -(2**63) <= value < 2**63:
        raise TypeError("long expected")
    out.append(_varint(value))


def _w_boolean(value: Any, out: list[bytes]) -> None:
    if type(value) is not bool:
        raise TypeError("boolean expected")
    out.append(b"\x01" if value else b"\x00")


def _w_timestamp_millis(value: Any, out: list[bytes]) -> None:
    if type(value) is datetime and value.tzinfo is not None:
        delta = value - _EPOCH
        out.append(
            _varint((delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000)
        )
    elif type(value) is int:
        out.append(_varint(value))
    else:
        raise TypeError("aware datetime expected")


def _compile(schema: Any) -> Writer:
    if isinstance(schema, str):
        simple = {
            "string": _w_string,
            "int": _w_int,
            "long": _w_long,
            "boolean": _w_boolean,
        }
        if schema in simple:
            return simple[schema]
        raise UnsupportedSchemaError(schema)
    if isinstance(schema, list):
        return _union(schema)
    kind = schema.get("type")
    if schema.get("logicalType") == "timestamp-millis" and kind == "long":
        return _w_timestamp_millis
    if "logicalType" in schema:
        raise UnsupportedSchemaError(schema["logicalType"])
    if kind == "record":
        return _record(schema)
    if kind == "enum":
        return _enum(schema)
    if kind == "map":
        return _map(schema)
    if isinstance(kind, str) and not schema.keys() - {"type"}:
        return _compile(kind)
    raise UnsupportedSchemaError(kind)


def _union(branches: list[Any]) -> Writer:
    if len(branches) != 2 or "null" not in branches:
        raise UnsupportedSchemaError("union")
    null_index = branches.index("null")
    other_index = 1 - null_index
    other = _compile(branches[other_index])
    null_tag, other_tag = _varint(null_index), _varint(other_index)

    def write(value: Any, out: list[bytes]) -> None:
        if value is None:
            out.append(null_tag)
        else:
            out.append(other_tag)
            other(value, out)

    return write


def _enum(schema: dict[str, Any]) -> Writer:
    index = {symbol: _varint(i) for i, symbol in enumerate(schema["symbols"])}

    def write(value: Any, out: list[bytes]) -> None:
        out.append(index[value])  # KeyError: not a symbol -> fastavro decides

    return write


def _map(schema: dict[str, Any]) -> Writer:
    values = _compile(schema["values"])

    def write(value: Any, out: list[bytes]) -> None:
        if type(value) is not dict:
            raise TypeError("map expected")
        if value:
            out.append(_varint(len(value)))
            for k, v in value.items():
                _w_string(k, out)
                values(v, out)
        out.append(b"\x00")

    return write


def _record(schema: dict[str, Any]) -> Writer:
    fields = [
        (f["name"], _compile(f["type"]), "default" in f, f.get("default")) for f in schema["fields"]
    ]

    def write(value: Any, out: list[bytes]) -> None:
        get = value.get
        for name, writer, has_default, default in fields:
            item = get(name, _MISSING)
            if item is _MISSING:
                if not has_default:
                    raise KeyError(name)
                item = default
            writer(item, out)

    return write


_MISSING = object()


FALLBACK_ERRORS = (TypeError, KeyError, ValueError, AttributeError, OverflowError)


def compile_writer(schema: Any) -> Writer | None:
    """A writer appending the Avro body of a record to a list of byte strings, or None when the
    schema uses a construct the compiler does not handle. Raises one of :data:`FALLBACK_ERRORS`
    on a record that does not fit: the caller then lets fastavro decide."""
    try:
        return _compile(schema)
    except UnsupportedSchemaError:
        return None
