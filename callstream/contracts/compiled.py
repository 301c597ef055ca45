"""Avro binary encoding compiled once per schema: the hot path of every service that writes.

Why not only fastavro: ``fastavro.schemaless_writer`` walks the schema for every record (about
10 us for a CallEvent or DispatchResult); the dispatcher writes two records per call and the
normalizer one per callback, so it was the largest single item of their CPU per record.
:func:`compile_writer` generates, once per schema, the Python source of one function that writes
every field in line (no per-field call, no walk over the schema), the way ``dataclasses`` and
``attrs`` generate their methods: about 3 us for a CallEvent, against 7 us for nested closures
and 10 us for fastavro. It covers the types our schemas use (records, string, int, long,
boolean, enum, map, ``timestamp-millis``, unions with ``null``);
:class:`~callstream.contracts.codecs.Codec` falls back to fastavro for anything else and for a
record that does not fit (a wrong type), so the bytes are always exactly fastavro's (the unit
tests compare them, including with hypothesis).

The generated source holds no value taken from the schema except through ``repr`` (field names)
or a constant bound by name in the function's namespace (enum tables, defaults), so a schema
cannot inject code; the schemas are ours anyway.
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


_INT_RANGE = {"int": 2**31, "long": 2**63}


class _Generator:
    """Emits the body of one write function; constants go to ``namespace`` under fresh names."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "_varint": _varint,
            "_SMALL": _SMALL,
            "_EPOCH": _EPOCH,
            "_datetime": datetime,
            "_MISSING": _MISSING,
        }
        self.lines: list[str] = []
        self._names = 0

    def fresh(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def const(self, value: Any, prefix: str = "_c") -> str:
        name = self.fresh(prefix)
        self.namespace[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    # -- one value ``var`` of schema ``schema`` ------------------------------------------------
    def value(self, schema: Any, var: str, indent: int) -> None:
        if isinstance(schema, str):
            self.primitive(schema, var, indent)
            return
        if isinstance(schema, list):
            self.union(schema, var, indent)
            return
        kind = schema.get("type")
        if schema.get("logicalType") == "timestamp-millis" and kind == "long":
            self.timestamp(var, indent)
        elif "logicalType" in schema:
            raise UnsupportedSchemaError(schema["logicalType"])
        elif kind == "record":
            self.record(schema, var, indent)
        elif kind == "enum":
            table = self.const({s: _varint(i) for i, s in enumerate(schema["symbols"])}, "_enum")
            self.emit(indent, f"a({table}[{var}])")  # KeyError: not a symbol -> fastavro decides
        elif kind == "map":
            self.map(schema, var, indent)
        elif isinstance(kind, str) and not schema.keys() - {"type"}:
            self.value(kind, var, indent)
        else:
            raise UnsupportedSchemaError(kind)

    def primitive(self, kind: str, var: str, indent: int) -> None:
        if kind == "string":
            data = self.fresh("b")
            self.emit(indent, f"if type({var}) is not str: raise TypeError('string expected')")
            self.emit(indent, f"{data} = {var}.encode()")
            self.emit(indent, f"n = len({data})")
            self.emit(indent, "a(_SMALL[n + 64] if n < 64 else _varint(n))")
            self.emit(indent, f"a({data})")
        elif kind in _INT_RANGE:
            bound = _INT_RANGE[kind]
            self.emit(
                indent,
                f"if type({var}) is not int or not -{bound} <= {var} < {bound}: "
                f"raise TypeError('{kind} expected')",
            )
            self.emit(indent, f"a(_SMALL[{var} + 64] if -64 <= {var} < 64 else _varint({var}))")
        elif kind == "boolean":
            self.emit(indent, f"if type({var}) is not bool: raise TypeError('boolean expected')")
            self.emit(indent, f"a(b'\\x01' if {var} else b'\\x00')")
        else:
            raise UnsupportedSchemaError(kind)

    def timestamp(self, var: str, indent: int) -> None:
        self.emit(indent, f"if type({var}) is _datetime and {var}.tzinfo is not None:")
        self.emit(indent + 1, f"d = {var} - _EPOCH")
        self.emit(
            indent + 1, "a(_varint((d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000))"
        )
        self.emit(indent, f"elif type({var}) is int:")
        self.emit(indent + 1, f"a(_varint({var}))")
        self.emit(indent, "else:")
        self.emit(indent + 1, "raise TypeError('aware datetime expected')")

    def union(self, branches: list[Any], var: str, indent: int) -> None:
        if len(branches) != 2 or "null" not in branches:
            raise UnsupportedSchemaError("union")
        null_index = branches.index("null")
        other_index = 1 - null_index
        self.emit(indent, f"if {var} is None:")
        self.emit(indent + 1, f"a({_varint(null_index)!r})")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"a({_varint(other_index)!r})")
        self.value(branches[other_index], var, indent + 1)

    def map(self, schema: dict[str, Any], var: str, indent: int) -> None:
        key, item = self.fresh("k"), self.fresh("v")
        self.emit(indent, f"if type({var}) is not dict: raise TypeError('map expected')")
        self.emit(indent, f"if {var}:")
        self.emit(indent + 1, f"a(_varint(len({var})))")
        self.emit(indent + 1, f"for {key}, {item} in {var}.items():")
        self.primitive("string", key, indent + 2)
        self.value(schema["values"], item, indent + 2)
        self.emit(indent, "a(b'\\x00')")

    def record(self, schema: dict[str, Any], var: str, indent: int) -> None:
        get = self.fresh("g")
        self.emit(indent, f"{get} = {var}.get")
        for field in schema["fields"]:
            item = self.fresh("f")
            self.emit(indent, f"{item} = {get}({field['name']!r}, _MISSING)")
            self.emit(indent, f"if {item} is _MISSING:")
            if "default" in field:
                self.emit(indent + 1, f"{item} = {self.const(field['default'], '_default')}")
            else:
                self.emit(indent + 1, f"raise KeyError({field['name']!r})")
            self.value(field["type"], item, indent)


_MISSING = object()


FALLBACK_ERRORS = (TypeError, KeyError, ValueError, AttributeError, OverflowError)


def writer_source(schema: Any) -> tuple[str, dict[str, Any]]:
    """The generated source of the write function and its namespace (for tests and curiosity)."""
    gen = _Generator()
    gen.value(schema, "record", 1)
    source = "\n".join(["def write(record, out):", "    a = out.append", *gen.lines])
    return source + "\n", gen.namespace


def compile_writer(schema: Any) -> Writer | None:
    """A writer appending the Avro body of a record to a list of byte strings, or None when the
    schema uses a construct the compiler does not handle. Raises one of :data:`FALLBACK_ERRORS`
    on a record that does not fit: the caller then lets fastavro decide."""
    try:
        source, namespace = writer_source(schema)
    except UnsupportedSchemaError:
        return None
    code = compile(source, f"<avro writer {schema.get('name', '?')}>", "exec")
    exec(code, namespace)  # noqa: S102  # our own generated source; see the module docstring
    writer: Writer = namespace["write"]
    return writer
