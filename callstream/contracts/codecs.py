"""Codecs for the three wire forms of a contract record.

- Avro single-object encoding (the default): ``C3 01``, the writer schema's 8-byte CRC-64-AVRO
  fingerprint (little-endian), then the Avro binary body. Any Avro library decodes it with the
  ``.avsc`` files and no registry.
- Confluent framing, when a schema registry is configured: ``00``, the 4-byte big-endian schema
  id, then the body.
- JSON (UTF-8), in the form :mod:`callstream.contracts.json_form` describes.

The form of an incoming record is told by its ``content-type`` header when present, else by its
first byte. Parsed schemas are cached in the :class:`~callstream.contracts.schemas.SchemaStore`;
nothing is parsed per message.
"""

from __future__ import annotations

import io
from enum import StrEnum
from typing import Any, Protocol

import fastavro
import orjson

from callstream.contracts.compiled import FALLBACK_ERRORS, compile_writer
from callstream.contracts.json_form import from_json, to_json
from callstream.contracts.schemas import Schema, SchemaStore, default_store
from callstream.exceptions import DecodeError, FieldError, ValidationError

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = 0


class WireFormat(StrEnum):
    AVRO = "avro"  # single-object encoding
    CONFLUENT = "confluent"
    JSON = "json"


CONTENT_TYPES = {
    WireFormat.AVRO: "application/vnd.apache.avro+binary",
    WireFormat.CONFLUENT: "application/vnd.confluent.avro",
    WireFormat.JSON: "application/json",
}


class SchemaIdResolver(Protocol):
    """Maps Confluent schema ids to writer schemas (a schema registry client)."""

    def schema_for_id(self, schema_id: int) -> Any: ...


def detect_format(raw: bytes, content_type: str | None = None) -> WireFormat | None:
    if content_type:
        ct = content_type.split(";", 1)[0].strip().lower()
        if "json" in ct:
            return WireFormat.JSON
        if "confluent" in ct:
            return WireFormat.CONFLUENT
        if "avro" in ct:
            return WireFormat.AVRO
    if raw[:2] == SINGLE_OBJECT_MARKER:
        return WireFormat.AVRO
    if raw[:1] == b"\x00" and len(raw) >= 5:
        return WireFormat.CONFLUENT
    if raw.lstrip()[:1] == b"{":
        return WireFormat.JSON
    return None


def _read_body(body: bytes, writer: Any, reader: Any | None) -> dict[str, Any]:
    buffer = io.BytesIO(body)
    record = fastavro.schemaless_reader(buffer, writer, reader)
    if buffer.tell() != len(body):
        raise ValueError(f"{len(body) - buffer.tell()} trailing bytes after the record")
    if not isinstance(record, dict):
        raise ValueError("not a record")
    return record


class Codec:
    """Encodes and decodes one record type (named by its full Avro name) in every wire form."""

    def __init__(
        self,
        schema_name: str,
        store: SchemaStore | None = None,
        resolver: SchemaIdResolver | None = None,
    ) -> None:
        self.store = store or default_store()
        self.schema: Schema = self.store.get(schema_name)
        self.resolver = resolver
        self._prefix = SINGLE_OBJECT_MARKER + self.schema.fingerprint
        self._compiled = compile_writer(self.schema.parsed)

    # -- encoding ---------------------------------------------------------------------------
    def _fastavro_body(self, record: Any) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.schema.parsed, record)
        return buffer.getvalue()

    def _body(self, record: Any) -> bytes:
        if self._compiled is not None:
            out: list[bytes] = []
            try:
                self._compiled(record, out)
            except FALLBACK_ERRORS:
                return self._fastavro_body(record)  # fastavro decides: same bytes, or its error
            return b"".join(out)
        return self._fastavro_body(record)

    def encode(self, record: Any) -> bytes:
        """Avro single-object encoding."""
        return self._prefix + self._body(record)

    def encode_fastavro(self, record: Any) -> bytes:
        """The same bytes as :meth:`encode`, always through fastavro (the reference)."""
        return self._prefix + self._fastavro_body(record)

    def encode_confluent(self, record: Any, schema_id: int) -> bytes:
        if not 0 <= schema_id < 2**31:
            raise ValueError(f"schema id out of range: {schema_id}")
        return bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big") + self._body(record)

    def encode_json(self, record: Any) -> bytes:
        return orjson.dumps(to_json(self.schema.parsed, record))

    def encode_as(self, record: Any, form: WireFormat, schema_id: int | None = None) -> bytes:
        if form is WireFormat.AVRO:
            return self.encode(record)
        if form is WireFormat.CONFLUENT:
            if schema_id is None:
                raise ValueError("Confluent framing needs a schema id")
            return self.encode_confluent(record, schema_id)
        return self.encode_json(record)

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, raw: bytes, content_type: str | None = None) -> dict[str, Any]:
        """Any wire form to a record of the current schema.

        Raises :class:`DecodeError` (bytes of no known form, or corrupt) or
        :class:`ValidationError` (JSON that does not fit the schema); both keep ``raw``.
        """
        form = detect_format(raw, content_type)
        if form is WireFormat.AVRO:
            return self.decode_single_object(raw)
        if form is WireFormat.CONFLUENT:
            return self.decode_confluent(raw)
        if form is WireFormat.JSON:
            return self.decode_json(raw)
        raise DecodeError(
            "not Avro single-object, Confluent-framed Avro or JSON",
            (FieldError("(record)", f"unrecognised leading bytes {raw[:4].hex() or 'empty'}"),),
            raw=raw,
        )

    def decode_single_object(self, raw: bytes) -> dict[str, Any]:
        if raw[:2] != SINGLE_OBJECT_MARKER or len(raw) < 10:
            raise DecodeError("not Avro single-object encoding", raw=raw)
        writer = self.store.by_fingerprint.get(raw[2:10])
        if writer is None or writer.name != self.schema.name:
            raise DecodeError(
                f"unknown writer schema fingerprint {raw[2:10].hex()} for {self.schema.name}",
                raw=raw,
            )
        reader = None if writer is self.schema else self.schema.parsed
        try:
            return _read_body(raw[10:], writer.parsed, reader)
        except Exception as exc:  # fastavro raises many kinds on corrupt input; all mean "corrupt"
            raise DecodeError(f"corrupt Avro body: {exc!r}", raw=raw) from exc

    def decode_confluent(self, raw: bytes) -> dict[str, Any]:
        if len(raw) < 5 or raw[0] != CONFLUENT_MAGIC:
            raise DecodeError("not Confluent-framed Avro", raw=raw)
        schema_id = int.from_bytes(raw[1:5], "big")
        if self.resolver is None:
            raise DecodeError(
                f"Confluent-framed record (schema id {schema_id}) but no schema registry "
                "is configured",
                raw=raw,
            )
        try:
            writer = self.resolver.schema_for_id(schema_id)
        except Exception as exc:  # the resolver's own errors are reported as they are
            raise DecodeError(f"cannot resolve schema id {schema_id}: {exc}", raw=raw) from exc
        try:
            return _read_body(raw[5:], writer, self.schema.parsed)
        except Exception as exc:  # corrupt body or a writer schema not resolvable to ours
            raise DecodeError(f"corrupt Avro body: {exc!r}", raw=raw) from exc

    def decode_json(self, raw: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"invalid JSON: {exc}", raw=raw) from exc
        return self.from_obj(obj, raw=raw)

    def from_obj(self, obj: Any, raw: bytes | None = None) -> dict[str, Any]:
        """An already-parsed JSON value to a record; ValidationError names each failing field."""
        record, errors = from_json(self.schema.parsed, obj)
        if errors or record is None:
            raise ValidationError(
                "record does not match the schema", tuple(errors), raw=raw, partial=record
            )
        return record
