"""Round trips of every codec, interop with the independent ``avro`` implementation, evolution."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest

from callstream.contracts import (
    CALL_EVENT,
    CALL_REQUEST,
    DISPATCH_RESULT,
    Codec,
    WireFormat,
    detect_format,
    parse_call_request,
)
from callstream.contracts.schemas import load_store, schemas_dir
from callstream.exceptions import DecodeError

T0 = datetime(2026, 11, 29, 20, 0, 0, 123000, tzinfo=UTC)

CALL_REQUEST_TTS: dict[str, Any] = {
    "correlation_id": "c-1",
    "caller_id": "+14155550100",
    "msisdn": "+14155550123",
    "content": {
        "text": "Time for lunch",
        "language": "EN-US",
        "voice": "GuyNeural",
        "region": "Canada",
        "voice_type": "NEURAL",
        "gender": None,
        "tts_processor": "Azure",
    },
    "priority": "HIGH",
    "callback_data": "cb",
    "notify_url": "https://example.com/cb",
    "notify_url_auth_id": None,
    "requested_receipts": ["ANSWERED", "RELEASED"],
    "send_at": None,
    "expires_at": T0,
    "created_at": T0,
    "attributes": {"campaign": "x"},
}
CALL_REQUEST_MEDIA = {**CALL_REQUEST_TTS, "content": {"media_id": "prompt-1"}, "priority": None}
DISPATCH_RESULT_REC: dict[str, Any] = {
    "correlation_id": "c-1",
    "message_id": "8c2b7a1e-0000-4000-8000-000000000001",
    "outcome": "QUEUED",
    "http_status": 201,
    "platform_code": None,
    "description": "queued",
    "attempts": 1,
    "msisdn": "+14155550123",
    "requested_at": T0,
    "completed_at": T0,
    "attributes": {},
    "callback_data": "cb",
    "source_topic": "calls.requests",
    "source_partition": 2,
    "source_offset": 12345678901,
}
CALL_EVENT_REC: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "REJECTED",
    "source": "PLATFORM",
    "message_id": "m-1",
    "correlation_id": None,
    "msisdn": "+14155550123",
    "callback_data": None,
    "platform_code": 7402,
    "platform_status": "REJECTED",
    "reason": "BUSY",
    "description": "Customer busy",
    "occurred_at": T0,
    "received_at": T0,
    "terminal": True,
    "attributes": {"k": "v"},
}
CASES = [
    (CALL_REQUEST, CALL_REQUEST_TTS),
    (CALL_REQUEST, CALL_REQUEST_MEDIA),
    (DISPATCH_RESULT, DISPATCH_RESULT_REC),
    (CALL_EVENT, CALL_EVENT_REC),
]


class StaticResolver:
    def __init__(self, schemas: dict[int, Any]) -> None:
        self.schemas = schemas

    def schema_for_id(self, schema_id: int) -> Any:
        return self.schemas[schema_id]


@pytest.mark.parametrize(("name", "record"), CASES)
def test_single_object_round_trip(name: str, record: dict[str, Any]) -> None:
    codec = Codec(name)
    raw = codec.encode(record)
    assert raw[:2] == b"\xc3\x01"
    assert raw[2:10] == codec.schema.fingerprint
    assert detect_format(raw) is WireFormat.AVRO
    assert codec.decode(raw) == record


@pytest.mark.parametrize(("name", "record"), CASES)
def test_confluent_round_trip(name: str, record: dict[str, Any]) -> None:
    codec = Codec(name, resolver=StaticResolver({42: Codec(name).schema.parsed}))
    raw = codec.encode_confluent(record, 42)
    assert raw[:5] == b"\x00\x00\x00\x00\x2a"
    assert detect_format(raw) is WireFormat.CONFLUENT
    assert codec.decode(raw) == record


@pytest.mark.parametrize(("name", "record"), CASES)
def test_json_round_trip(name: str, record: dict[str, Any]) -> None:
    codec = Codec(name)
    raw = codec.encode_json(record)
    assert detect_format(raw) is WireFormat.JSON
    assert codec.decode(raw) == record
    assert codec.decode(raw, content_type="application/json; charset=utf-8") == record


def test_confluent_without_registry_is_a_decode_error() -> None:
    codec = Codec(CALL_REQUEST)
    raw = codec.encode_confluent(CALL_REQUEST_TTS, 7)
    with pytest.raises(DecodeError, match="no schema registry"):
        codec.decode(raw)


def test_trailing_bytes_are_rejected() -> None:
    codec = Codec(CALL_EVENT)
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode(codec.encode(CALL_EVENT_REC) + b"\x00")


def test_foreign_fingerprint_is_rejected() -> None:
    raw = Codec(CALL_EVENT).encode(CALL_EVENT_REC)
    with pytest.raises(DecodeError, match="fingerprint"):
        Codec(CALL_REQUEST).decode(raw)


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification's reference code computes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize(("name", "record"), CASES)
def test_independent_avro_implementation_decodes_single_object(
    name: str, record: dict[str, Any]
) -> None:
    """The ``avro`` package, reading only the .avsc file, decodes what the codec writes."""
    codec = Codec(name)
    raw = codec.encode(record)
    filename = {CALL_REQUEST: "call_request", DISPATCH_RESULT: "dispatch_result"}.get(
        name, "call_event"
    )
    schema = avro.schema.parse((schemas_dir() / f"{filename}.avsc").read_text())
    # The fingerprint is CRC-64-AVRO of the Parsing Canonical Form, little-endian. The avro
    # package's canonical_form keeps logical-type attributes of primitives (the spec strips them:
    # {"type": "long", "logicalType": ...} becomes "long"), so strip them before fingerprinting.
    canonical = schema.canonical_form.replace('{"type":"long"}', '"long"')
    assert raw[2:10] == _crc64_avro(canonical.encode()).to_bytes(8, "little")
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(raw[10:])))
    assert decoded == record


def test_record_written_with_previous_schema_reads_with_current(tmp_path: Path) -> None:
    """Schema evolution: an older producer's record (fewer fields) is read with the current schema.

    The previous version is the current CallRequest without two fields that have defaults
    (``notify_url_auth_id`` and ``attributes``); the reader fills them from the defaults.
    """
    for f in schemas_dir().glob("*.avsc"):
        shutil.copy(f, tmp_path / f.name)
    previous = json.loads((tmp_path / "call_request.avsc").read_text())
    previous["fields"] = [
        f for f in previous["fields"] if f["name"] not in ("notify_url_auth_id", "attributes")
    ]
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "call_request-v0.avsc").write_text(json.dumps(previous))
    store = load_store(tmp_path)
    old = {
        k: v for k, v in CALL_REQUEST_TTS.items() if k not in ("notify_url_auth_id", "attributes")
    }
    writer_fp = next(
        s.fingerprint for s in store.by_fingerprint.values() if s.source.parent.name == "history"
    )

    body = io.BytesIO()
    fastavro.schemaless_writer(body, store.by_fingerprint[writer_fp].parsed, old)
    raw = b"\xc3\x01" + writer_fp + body.getvalue()
    decoded = Codec(CALL_REQUEST, store=store).decode(raw)
    assert decoded == {**old, "notify_url_auth_id": None, "attributes": {}}


def test_json_form_accepts_documented_variants() -> None:
    raw = json.dumps(
        {
            "correlation_id": "c-2",
            "caller_id": "+14155550100",
            "msisdn": "+14155550123",
            "content": {
                "type": "TtS",
                "text": "Time for lunch",
                "language": "EN-US",
                "voice": "GuyNeural",
                "region": "Canada",
                "voice_type": "neural",
            },
            "priority": "high",
            "requested_receipts": ["Trombone Connected", "message_expired"],
            "send_at": 1795000000000,
            "expires_at": "2030-01-01T00:00:00+02:00",
            "created_at": "2026-11-29T20:00:00Z",
        }
    ).encode()
    request = parse_call_request(raw)
    assert request["content"]["voice_type"] == "NEURAL"  # type: ignore[typeddict-item]
    assert request["priority"] == "HIGH"
    assert request["requested_receipts"] == ["TROMBONE_CONNECTED", "MESSAGE_EXPIRED"]
    assert request["send_at"] == datetime.fromtimestamp(1795000000, tz=UTC)
    assert request["expires_at"] == datetime(2029, 12, 31, 22, 0, tzinfo=UTC)
