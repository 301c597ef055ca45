"""The platform's synchronous answer -> what to do with the record (contract section 3).

:func:`classify` is pure: status, headers and body in, a :class:`Accepted` (the platform has
decided: QUEUED, REJECTED, DUPLICATE) out, or one of the errors of :mod:`.exceptions` raised:
:class:`PermanentError` (400, other 4xx: INVALID + DLQ), :class:`ThrottledError` (429 or code
7020), :class:`RetryableError` (5xx, 408), :class:`PlatformUnavailableError` (401, 403, 404,
405: pause).
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from consumers.dispatcher.exceptions import (
    PermanentError,
    PlatformUnavailableError,
    RetryableError,
    ThrottledError,
)

PAUSE_STATUSES = frozenset({401, 403, 404, 405})
THROTTLE_CODE = "7020"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The platform decided about the call (no retry)."""

    outcome: Literal["QUEUED", "REJECTED", "DUPLICATE"]
    http_status: int
    message_id: str | None
    platform_code: str | None
    description: str | None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After``: delta seconds or an HTTP date -> seconds from now (>= 0), else None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:1000]


def _error_fields(parsed: Any) -> tuple[str | None, str | None]:
    if isinstance(parsed, dict):
        return _str(parsed.get("code")), _str(parsed.get("message") or parsed.get("description"))
    return None, None


def _entry_for(parsed: Any, correlation_id: str) -> dict[str, Any] | None:
    """Our destination's entry in a success body: the object itself, or the list item whose
    correlationId is ours (multi-destination and Partial Content answers)."""
    if isinstance(parsed, dict):
        return parsed
    if isinstance(parsed, list):
        for item in parsed:
            if isinstance(item, dict) and str(
                item.get("correlationId", item.get("correlationid", ""))
            ) == str(correlation_id):
                return item
        if len(parsed) == 1 and isinstance(parsed[0], dict):
            return parsed[0]
    return None


def _success(status: int, parsed: Any, correlation_id: str) -> Accepted:
    entry = _entry_for(parsed, correlation_id)
    if entry is None:
        if status == 206:
            raise PermanentError(
                "206 Partial Content without an entry for this correlation id",
                http_status=status,
            )
        # 2xx with an unreadable body: the platform took the call; never call it again
        return Accepted("QUEUED", status, None, None, "accepted; response body not readable")
    code = _str(entry.get("code"))
    state = str(entry.get("status", "")).strip().lower()
    message_id = _str(entry.get("messageId") or entry.get("messageid"))
    if state == "rejected" or (status == 206 and message_id is None):
        return Accepted("REJECTED", status, message_id, code, _str(entry.get("message")) or state)
    return Accepted("QUEUED", status, message_id, code, _str(entry.get("status")))


def classify(status: int, headers: Mapping[str, str], body: bytes, correlation_id: str) -> Accepted:
    """Map one HTTP answer; raise the error class saying what to do when it is not final."""
    parsed = _json(body)
    code, message = _error_fields(parsed)
    if code == THROTTLE_CODE or status == 429:
        raise ThrottledError(
            message or "too many requests",
            http_status=status,
            code=code,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    if 200 <= status < 300:
        return _success(status, parsed, correlation_id)
    if status == 409:
        return Accepted("DUPLICATE", status, None, code, message or "duplicate correlation id")
    if status in PAUSE_STATUSES:
        raise PlatformUnavailableError(
            message or f"HTTP {status}: check the platform URL and service key",
            http_status=status,
            code=code,
        )
    if status == 408 or status >= 500:
        raise RetryableError(message or f"HTTP {status}", http_status=status, code=code)
    raise PermanentError(message or f"HTTP {status}", http_status=status, code=code)
