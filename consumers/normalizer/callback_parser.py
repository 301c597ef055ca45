"""Bytes of one platform callback (contract section 4) -> a :class:`Callback` of plain strings.

Tolerant by design: keys are matched exactly first, then case-insensitively (``Description`` and
``timeStamp`` are case-exact in the docs, but nothing is gained by refusing ``description``);
string values may also arrive as JSON numbers (``"code": 7401``); blank strings count as missing;
added fields are ignored; ``deliveryTransInfo`` is optional. What is refused raises a subclass of
:class:`~consumers.normalizer.exceptions.InvalidCallbackError` keeping the raw bytes:

- not JSON (``CallbackNotJsonError``);
- not an object, no ``deliveryInfoNotification`` object or no ``deliveryInfo`` object, a field
  holding an object/array/boolean where a string belongs, or neither a ``transid`` nor a
  ``correlationid`` (nothing ties it to a call), or neither a ``deliveryStatus`` nor a ``code``
  (nothing says what happened) (``CallbackShapeError``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from consumers.normalizer.exceptions import CallbackNotJsonError, CallbackShapeError


class Callback(NamedTuple):
    """The fields of a callback the normalizer uses, as the platform sent them (stripped).

    A named tuple, not a frozen dataclass: one is built per record, and a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__`` (about 3x slower)."""

    transid: str | None
    correlation_id: str | None
    callback_data: str | None
    status: str | None  # deliveryStatus, raw
    code: str | None  # code, as text
    timestamp: str | None  # timeStamp, raw
    description: str | None
    destination: str | None  # raw, with or without '+'


def _field(obj: dict[str, Any], name: str, lowered: str) -> Any:
    value = obj.get(name)
    if value is not None or name in obj:
        return value
    for key, candidate in obj.items():  # rare path: a key in another case
        if key.lower() == lowered:
            return candidate
    return None


def _string(obj: dict[str, Any], name: str, lowered: str, raw: bytes) -> str | None:
    """``_text(_field(...))`` in one call, with the common case (a string under the documented
    key) first: eight fields per callback make this the parser's inner loop."""
    value = obj.get(name)
    if type(value) is str:
        return value.strip() or None
    if value is None and name not in obj:
        value = _field(obj, name, lowered)
    return _text(value, name, raw)


def _text(value: Any, field: str, raw: bytes) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        raise CallbackShapeError.field(field, "expected a string, got a boolean", raw)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise CallbackShapeError.field(field, f"expected a string, got {type(value).__name__}", raw)


def _object(value: Any, field: str, raw: bytes) -> dict[str, Any]:
    if isinstance(value, list) and len(value) == 1:  # tolerate a one-element array
        value = value[0]
    if not isinstance(value, dict):
        reason = "missing" if value is None else f"expected an object, got {type(value).__name__}"
        raise CallbackShapeError.field(field, reason, raw)
    return value


def parse_callback(raw: bytes) -> Callback:
    """Parse one callback body; raise ``InvalidCallbackError`` (with ``raw``) when impossible."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CallbackNotJsonError(f"callback is not JSON: {exc}", raw=raw) from exc
    if not isinstance(doc, dict):
        raise CallbackShapeError.field(
            "(body)", f"expected an object, got {type(doc).__name__}", raw
        )
    notification = _object(
        _field(doc, "deliveryInfoNotification", "deliveryinfonotification"),
        "deliveryInfoNotification",
        raw,
    )
    info = _object(
        _field(notification, "deliveryInfo", "deliveryinfo"),
        "deliveryInfoNotification.deliveryInfo",
        raw,
    )
    transid = _string(notification, "transid", "transid", raw)
    correlation_id = _string(notification, "correlationid", "correlationid", raw)
    if transid is None and correlation_id is None:
        raise CallbackShapeError.field(
            "deliveryInfoNotification", "neither transid nor correlationid", raw
        )
    status = _string(info, "deliveryStatus", "deliverystatus", raw)
    code = _string(info, "code", "code", raw)
    if status is None and code is None:
        raise CallbackShapeError.field("deliveryInfo", "neither deliveryStatus nor code", raw)
    return Callback(
        transid=transid,
        correlation_id=correlation_id,
        callback_data=_string(notification, "callbackData", "callbackdata", raw),
        status=status,
        code=code,
        timestamp=_string(info, "timeStamp", "timestamp", raw),
        description=_string(info, "Description", "description", raw),
        destination=_string(info, "destination", "destination", raw),
    )
