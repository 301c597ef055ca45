"""The JSON form of the contracts, converted to and from Avro-shaped records, guided by the schema.

JSON input rules (design section 2): the Avro field names; a union of records is told apart by a
``"type"`` member (``{"type": "media", ...}`` / ``{"type": "tts", ...}``, case-insensitive);
timestamps as ISO 8601 with a zone or epoch milliseconds; enum symbols case-insensitive;
unknown members are errors (a misspelt field must not be silently ignored). Every failing field
is reported, each with its dotted path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from callstream.exceptions import FieldError

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_TIMESTAMP_MIN_MS = -62135596800000  # 0001-01-01
_TIMESTAMP_MAX_MS = 253402300799999  # 9999-12-31


def _type_name(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema.get("type"))


def _union_label(schema: dict[str, Any]) -> str:
    """``io.callstream.TtsContent`` -> ``tts``: the value of the discriminating ``type`` member."""
    short = str(schema["name"]).rsplit(".", 1)[-1].lower()
    return short.removesuffix("content") or short


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 with a zone, or epoch milliseconds, to an aware UTC datetime. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 timestamp or epoch milliseconds")
    if isinstance(value, int):
        if not _TIMESTAMP_MIN_MS <= value <= _TIMESTAMP_MAX_MS:
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not an ISO 8601 timestamp") from None
        if parsed.tzinfo is None:
            raise ValueError("timestamp needs a zone (Z or an offset)")
        return parsed.astimezone(UTC)
    raise ValueError("expected an ISO 8601 timestamp or epoch milliseconds")


def format_timestamp(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Converter:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: str, reason: str) -> None:
        self.errors.append(FieldError(path or "(record)", reason))

    def convert(self, schema: Any, value: Any, path: str) -> Any:
        kind = _type_name(schema)
        if kind == "union":
            return self._union(schema, value, path)
        if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
            try:
                return parse_timestamp(value)
            except ValueError as exc:
                self.fail(path, str(exc))
                return None
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            self.fail(path, f"unsupported schema type {kind}")
            return None
        return handler(schema, value, path)

    def _null(self, schema: Any, value: Any, path: str) -> None:
        if value is not None:
            self.fail(path, "must be null")

    def _string(self, schema: Any, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.fail(path, "must be a string")
            return None
        return value

    def _boolean(self, schema: Any, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.fail(path, "must be a boolean")
            return None
        return value

    def _integer(self, value: Any, path: str, bounds: tuple[int, int]) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, "must be an integer")
            return None
        if not bounds[0] <= value <= bounds[1]:
            self.fail(path, "integer out of range")
            return None
        return value

    def _int(self, schema: Any, value: Any, path: str) -> int | None:
        return self._integer(value, path, _INT32)

    def _long(self, schema: Any, value: Any, path: str) -> int | None:
        return self._integer(value, path, _INT64)

    def _enum(self, schema: dict[str, Any], value: Any, path: str) -> str | None:
        symbols: list[str] = schema["symbols"]
        if isinstance(value, str):
            wanted = value.strip().upper().replace(" ", "_").replace("-", "_")
            if wanted in symbols:
                return wanted
        self.fail(path, f"must be one of {', '.join(symbols)}")
        return None

    def _array(self, schema: dict[str, Any], value: Any, path: str) -> list[Any] | None:
        if not isinstance(value, list):
            self.fail(path, "must be an array")
            return None
        return [self.convert(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(value)]

    def _map(self, schema: dict[str, Any], value: Any, path: str) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return None
        return {str(k): self.convert(schema["values"], v, f"{path}.{k}") for k, v in value.items()}

    def _record(
        self, schema: dict[str, Any], value: Any, path: str, ignore: frozenset[str] = frozenset()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, "must be an object")
            return None
        out: dict[str, Any] = {}
        known = set()
        for field in schema["fields"]:
            name = field["name"]
            known.add(name)
            sub = f"{path}.{name}" if path else name
            if name in value:
                out[name] = self.convert(field["type"], value[name], sub)
            elif "default" in field:
                default = field["default"]
                out[name] = (
                    list(default)
                    if isinstance(default, list)
                    else (dict(default) if isinstance(default, dict) else default)
                )
            else:
                self.fail(sub, "is required")
        for extra in value.keys() - known - ignore:
            self.fail(f"{path}.{extra}" if path else str(extra), "unknown field")
        return out

    def _union(self, branches: list[Any], value: Any, path: str) -> Any:
        if value is None:
            if "null" in branches:
                return None
            self.fail(path, "is required")
            return None
        non_null = [b for b in branches if b != "null"]
        records = [b for b in non_null if _type_name(b) == "record"]
        if len(records) > 1 and isinstance(value, dict):
            label = value.get("type")
            if not isinstance(label, str):
                labels = ", ".join(_union_label(r) for r in records)
                self.fail(f"{path}.type", f"must be one of {labels}")
                return None
            for record in records:
                if _union_label(record) == label.strip().lower():
                    return self._record(record, value, path, ignore=frozenset({"type"}))
            labels = ", ".join(_union_label(r) for r in records)
            self.fail(f"{path}.type", f"must be one of {labels}")
            return None
        if len(non_null) == 1:
            return self.convert(non_null[0], value, path)
        for branch in non_null:  # first branch that converts without error
            probe = _Converter()
            result = probe.convert(branch, value, path)
            if not probe.errors:
                return result
        self.fail(path, "matches no branch of the union")
        return None


def from_json(schema: Any, obj: Any) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """A parsed JSON value to a record of ``schema``; the errors name every failing field.

    With errors, the record returned is partial (failing fields set to None, or None when the
    value was not even an object), so semantic rules can still report the other fields.
    """
    converter = _Converter()
    record = converter.convert(schema, obj, "")
    return (record if isinstance(record, dict) else None), converter.errors


def to_json(schema: Any, value: Any) -> Any:
    """A record of ``schema`` to its JSON form (timestamps ISO 8601 UTC, union records labelled)."""
    kind = _type_name(schema)
    if value is None:
        return None
    if kind == "union":
        non_null = [b for b in schema if b != "null"]
        records = [b for b in non_null if _type_name(b) == "record"]
        if len(records) > 1 and isinstance(value, dict):
            for record in records:
                names = {f["name"] for f in record["fields"]}
                if value.keys() <= names and all(
                    f["name"] in value or "default" in f for f in record["fields"]
                ):
                    return {"type": _union_label(record), **to_json(record, value)}
        for branch in non_null:
            if _matches(branch, value):
                return to_json(branch, value)
        return value
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        if isinstance(value, datetime):
            return format_timestamp(value)
        return format_timestamp(datetime.fromtimestamp(int(value) / 1000, tz=UTC))
    if kind == "record":
        return {f["name"]: to_json(f["type"], value.get(f["name"])) for f in schema["fields"]}
    if kind == "array":
        return [to_json(schema["items"], v) for v in value]
    if kind == "map":
        return {k: to_json(schema["values"], v) for k, v in value.items()}
    return value


def _matches(schema: Any, value: Any) -> bool:
    kind = _type_name(schema)
    if isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis":
        return isinstance(value, datetime | int)
    return {
        "string": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "long": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "enum": isinstance(value, str),
        "record": isinstance(value, dict),
        "map": isinstance(value, dict),
        "array": isinstance(value, list),
    }.get(kind, True)
