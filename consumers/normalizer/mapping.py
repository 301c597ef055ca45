"""The platform's vocabulary -> the CallEvent's: event type, reason and ``terminal`` from
``deliveryStatus`` and ``code`` together; timestamps to UTC; destinations to E.164.

Event type (contract section 4):

- ``deliveryStatus`` decides, case-insensitively (spaces and hyphens read as ``_``);
- ``REJECTED``: the code gives the reason: 7401 NO_ANSWER, 7402 BUSY, 7406 REJECTED, 7404 (or
  any other) OTHER;
- ``Failed`` (and SMS's ``Un-Delivered``): EXPIRED with code 7005 (request expired) or 7208
  (message expired), otherwise FAILED with reason OTHER;
- no ``deliveryStatus``: the code alone decides (7407 OFFERED ... 7005/7208 EXPIRED);
- anything else: UNKNOWN, the raw status kept in ``platform_status``.

Terminal: exactly one event of each documented sequence is terminal, the one that carries the
call's outcome: RELEASED (an answered call ended), REJECTED (never answered), EXPIRED, FAILED.
DROPPED and DISCONNECTED always come with a RELEASED or a REJECTED sharing their timestamp, in
any order, so they are not terminal themselves (docs/normalizer.md explains).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Final

from callstream.contracts.records import EventReason, EventType

Classification = tuple[EventType, EventReason | None, bool]

_BY_STATUS: Final[dict[str, EventType]] = {
    "OFFERED": "OFFERED",
    "ACCEPTED": "ACCEPTED",
    "ANSWERED": "ANSWERED",
    "DROPPED": "DROPPED",
    "REJECTED": "REJECTED",
    "RELEASED": "RELEASED",
    "RELEASE": "RELEASED",
    "DISCONNECTED": "DISCONNECTED",
    "TROMBONE_CONNECTED": "TROMBONE_CONNECTED",
    "TROMBONE_RELEASED": "TROMBONE_RELEASED",
    "FAILED": "FAILED",
    "UN_DELIVERED": "FAILED",
    "UNDELIVERED": "FAILED",
    "EXPIRED": "EXPIRED",
    "REQUEST_EXPIRED": "EXPIRED",
    "MESSAGE_EXPIRED": "EXPIRED",
}
_BY_CODE: Final[dict[int, EventType]] = {
    7407: "OFFERED",
    7408: "ACCEPTED",
    7519: "ANSWERED",
    7409: "DROPPED",
    7401: "REJECTED",
    7402: "REJECTED",
    7406: "REJECTED",
    7404: "REJECTED",
    7405: "RELEASED",
    7410: "DISCONNECTED",
    7411: "TROMBONE_CONNECTED",
    7412: "TROMBONE_RELEASED",
    7005: "EXPIRED",
    7208: "EXPIRED",
}
REJECT_REASONS: Final[dict[int, EventReason]] = {
    7401: "NO_ANSWER",
    7402: "BUSY",
    7406: "REJECTED",
    7404: "OTHER",
}
EXPIRY_CODES: Final = frozenset({7005, 7208})
TERMINAL: Final[frozenset[EventType]] = frozenset({"RELEASED", "REJECTED", "EXPIRED", "FAILED"})
_INT32_MAX: Final = 2**31 - 1
_STATUS_SPELLINGS: dict[str, EventType | None] = dict(_BY_STATUS)  # grows with seen spellings
_SPELLINGS_LIMIT: Final = 512  # hostile input must not grow it without bound


def status_key(status: str) -> EventType | None:
    """``"Released"``, ``"trombone connected"``, ``"Un-Delivered"`` -> the event type, else None."""
    try:
        return _STATUS_SPELLINGS[status]
    except KeyError:
        pass
    found = _BY_STATUS.get(status.strip().upper().replace(" ", "_").replace("-", "_"))
    if len(_STATUS_SPELLINGS) < _SPELLINGS_LIMIT:
        _STATUS_SPELLINGS[status] = found
    return found


def parse_code(code: str | None) -> int | None:
    """``"7401"`` -> 7401; None for non-numeric codes or codes outside Avro's int."""
    if code is None:
        return None
    text = code.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= _INT32_MAX else None


def classify(status: str | None, code: int | None) -> Classification:
    """(event type, reason, terminal) of a callback."""
    event: EventType | None = status_key(status) if status is not None else None
    if status is None and code is not None:
        event = _BY_CODE.get(code)
    reason: EventReason | None = None
    if event is None:
        return "UNKNOWN", None, False
    if event == "REJECTED":
        reason = REJECT_REASONS.get(code, "OTHER") if code is not None else "OTHER"
    elif event == "FAILED":
        if code in EXPIRY_CODES:
            event = "EXPIRED"
        else:
            reason = "OTHER"
    return event, reason, event in TERMINAL


def parse_timestamp(text: str | None, naive_zone: tzinfo) -> datetime | None:
    """ISO 8601 with ``Z``, an offset or no zone (read in ``naive_zone``), or epoch seconds or
    milliseconds, -> an aware UTC datetime; None when unreadable."""
    if text is None:
        return None
    value = text.strip()
    try:
        if value.isascii() and value.isdigit():
            number = int(value)
            seconds = number / 1000 if number >= 100_000_000_000 else number
            return datetime.fromtimestamp(seconds, UTC)
        if value[-1:] == "z":
            value = value[:-1] + "Z"
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=naive_zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None


_DESTINATION_NOISE: Final = str.maketrans("", "", " -().\t")


def normalize_msisdn(destination: str | None) -> str | None:
    """``"14155550123"``, ``"+1 415-555-0123"``, ``"0014155550123"``, ``"tel:+1415..."`` ->
    ``"+14155550123"``; None when it is not a plausible E.164 number (1 to 15 digits)."""
    if destination is None:
        return None
    value = destination.strip().translate(_DESTINATION_NOISE)
    if value[:4].lower() == "tel:":
        value = value[4:]
    if value.startswith("+"):
        value = value[1:]
    elif value.startswith("00"):
        value = value[2:]
    if not value.isascii() or not value.isdigit() or not 1 <= len(value) <= 15:
        return None
    if value[0] == "0":
        return None  # no country code starts with 0
    return "+" + value
