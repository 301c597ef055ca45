"""The Avro contracts in ``schemas/``, parsed once per process and looked up by name or fingerprint.

The ``.avsc`` files are the source of truth shared with other teams and languages. They are found
in ``$CALLSTREAM_SCHEMAS_DIR`` when set, else in the ``schemas/`` folder of the source tree.
Older versions of a schema (``schemas/history/*.avsc``) are loaded too, so a record written by an
older producer (single-object encoding carries the writer's fingerprint) is read with the current
schema through Avro schema resolution.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from callstream.exceptions import ConfigError

CALL_REQUEST = "io.callstream.CallRequest"
DISPATCH_RESULT = "io.callstream.DispatchResult"
CALL_EVENT = "io.callstream.CallEvent"

_FILES = {
    CALL_REQUEST: "call_request.avsc",
    DISPATCH_RESULT: "dispatch_result.avsc",
    CALL_EVENT: "call_event.avsc",
}


@dataclass(frozen=True, slots=True)
class Schema:
    """A parsed schema with its Parsing Canonical Form fingerprint (CRC-64-AVRO)."""

    name: str
    parsed: Any
    fingerprint: bytes  # 8 bytes, little-endian, as the single-object encoding writes it
    source: Path


def schemas_dir() -> Path:
    configured = os.environ.get("CALLSTREAM_SCHEMAS_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "schemas"


def _load(path: Path) -> Schema:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = fastavro.parse_schema(raw)  # parsed once, marked so fastavro never re-parses it
    except (OSError, ValueError, fastavro.schema.SchemaParseException) as exc:
        raise ConfigError(f"cannot load Avro schema {path}: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ConfigError(f"{path} is not a named record schema")
    crc = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
    return Schema(
        name=str(parsed["name"]),
        parsed=parsed,
        fingerprint=bytes.fromhex(crc),  # fastavro gives the little-endian bytes, as written
        source=path,
    )


@dataclass(frozen=True, slots=True)
class SchemaStore:
    current: dict[str, Schema]  # full name -> current schema
    by_fingerprint: dict[bytes, Schema]  # every known version (current and history)

    def get(self, name: str) -> Schema:
        try:
            return self.current[name]
        except KeyError:
            raise ConfigError(f"no schema named {name}") from None


def load_store(directory: Path | None = None) -> SchemaStore:
    base = directory or schemas_dir()
    current: dict[str, Schema] = {}
    for name, filename in _FILES.items():
        schema = _load(base / filename)
        if schema.name != name:
            raise ConfigError(f"{base / filename} defines {schema.name}, expected {name}")
        current[name] = schema
    by_fp = {s.fingerprint: s for s in current.values()}
    history = base / "history"
    if history.is_dir():
        for path in sorted(history.glob("*.avsc")):
            old = _load(path)
            by_fp.setdefault(old.fingerprint, old)
    return SchemaStore(current=current, by_fingerprint=by_fp)


@functools.cache
def default_store() -> SchemaStore:
    """The process-wide store: parsed once, never re-parsed per message."""
    return load_store()
