"""The generated Avro writers on a schema using every construct they support (beyond our three
schemas): nested records, null first or second in unions, long, boolean, maps of ints, defaults.
The bytes must be fastavro's, or the writer must raise one of FALLBACK_ERRORS."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callstream.contracts.compiled import FALLBACK_ERRORS, compile_writer, writer_source

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": {"type": "long"}},
        {"name": "b", "type": "boolean"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "null_second", "type": ["string", "null"]},
        {"name": "null_first", "type": ["null", "long"], "default": None},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "counts", "type": {"type": "map", "values": "int"}, "default": {}},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [
                    {"name": "x", "type": ["null", "string"], "default": None},
                    {"name": "flag", "type": "boolean", "default": False},
                ],
            },
        },
    ],
}
PARSED = fastavro.parse_schema(SCHEMA)
WRITER = compile_writer(PARSED)

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def reference(record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, PARSED, record)
    return buffer.getvalue()


def generated(record: dict[str, Any]) -> bytes:
    assert WRITER is not None
    out: list[bytes] = []
    WRITER(record, out)
    return b"".join(out)


records = st.fixed_dictionaries(
    {
        "s": st.text(),
        "i": INT32,
        "l": INT64,
        "b": st.booleans(),
        "e": st.sampled_from(["A", "B", "C"]),
        "null_second": st.none() | st.text(),
        "when": MOMENTS | st.integers(-(2**62), 2**62),
        "inner": st.fixed_dictionaries(
            {}, optional={"x": st.none() | st.text(), "flag": st.booleans()}
        ),
    },
    optional={
        "null_first": st.none() | INT64,
        "counts": st.dictionaries(st.text(max_size=5), INT32, max_size=5),
    },
)


@settings(max_examples=300, deadline=None)
@given(records)
def test_generated_writer_writes_fastavros_bytes(record: dict[str, Any]) -> None:
    assert generated(record) == reference(record)


@pytest.mark.parametrize(
    "change",
    [
        {"i": 2**31},  # out of int range
        {"i": True},  # a bool is not an int here
        {"s": b"bytes"},
        {"e": "Z"},  # not a symbol
        {"when": datetime(2026, 1, 1)},  # naive
        {"counts": {"k": "v"}},
        {"counts": [("k", 1)]},
        {"inner": None},
    ],
)
def test_values_that_do_not_fit_raise_a_fallback_error(change: dict[str, Any]) -> None:
    good = {
        "s": "x", "i": 1, "l": 2, "b": True, "e": "A", "null_second": None,
        "when": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=999), "inner": {},
    }  # fmt: skip
    assert generated(good) == reference(good)
    with pytest.raises(FALLBACK_ERRORS):
        generated({**good, **change})


def test_missing_field_without_default_raises_key_error() -> None:
    with pytest.raises(KeyError):
        generated({"s": "x"})


def test_unsupported_constructs_give_no_writer() -> None:
    assert compile_writer(fastavro.parse_schema({"type": "array", "items": "int"})) is None
    union3 = {
        "type": "record",
        "name": "U",
        "fields": [{"name": "u", "type": ["null", "int", "string"]}],
    }
    assert compile_writer(fastavro.parse_schema(union3)) is None


def test_field_names_are_quoted_never_spliced_into_code() -> None:
    hostile = {
        "type": "record",
        "name": "H",
        "fields": [{"name": "a')\nraise SystemExit('", "type": "string"}],
    }
    source, _ = writer_source(hostile)
    assert "\nraise SystemExit" not in source
    writer = compile_writer(hostile)
    assert writer is not None
    out: list[bytes] = []
    writer({"a')\nraise SystemExit('": "v"}, out)
    assert b"".join(out) == b"\x02v"
