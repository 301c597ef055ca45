"""Kafka record header names shared by the services, and the dead-letter header convention.

Dead-letter records keep the original bytes untouched and say why in headers, following Kafka
Connect's convention (``__connect.errors.*`` without the prefix, as design section 1 names them).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Sequence

Headers = list[tuple[str, bytes]]

# Written by the gateway on calls.callbacks.raw
RECEIVED_AT = "callstream.received_at"  # epoch milliseconds, decimal ASCII
REMOTE_ADDR = "callstream.remote_addr"
CONTENT_TYPE = "content-type"
AUTH_METHOD = "callstream.auth"  # none | basic | apikey | hmac
REQUEST_ID = "callstream.request_id"

# Written by the dispatcher on calls.requests.retry
RETRY_ATTEMPTS = "callstream.attempts"  # attempts made so far, decimal ASCII
RETRY_DUE_AT = "callstream.due_at"  # epoch milliseconds when the next attempt is due
RETRY_FIRST_SEEN_AT = "callstream.first_seen_at"  # epoch ms when the request was first consumed
ORIGINAL_TOPIC = "original.topic"
ORIGINAL_PARTITION = "original.partition"
ORIGINAL_OFFSET = "original.offset"

# Dead-letter headers (Kafka Connect's names)
ERROR_CLASS = "error.class"
ERROR_MESSAGE = "error.message"
ERROR_STAGE = "error.stage"
ERROR_REASONS = "error.reasons"  # one "field: reason" per line, when the error names fields
ERROR_STACKTRACE = "error.stacktrace"
ATTEMPTS = "attempts"
FAILED_AT = "failed.at"  # epoch milliseconds
ORIGINAL_TIMESTAMP = "original.timestamp"


def header_value(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    """The last value of header ``name`` (Kafka allows repeats; the last one wins)."""
    if not headers:
        return None
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def header_str(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> str | None:
    value = header_value(headers, name)
    return value.decode("utf-8", "replace") if value is not None else None


def header_int(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> int | None:
    value = header_value(headers, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def dlq_headers(
    *,
    error: BaseException,
    stage: str,
    topic: str,
    partition: int,
    offset: int,
    attempts: int = 1,
    timestamp_ms: int | None = None,
    reasons: Iterable[str] = (),
    extra: Headers | None = None,
) -> Headers:
    """Headers that make a dead-letter record self-explanatory and replayable."""
    headers: Headers = [
        (ERROR_CLASS, f"{type(error).__module__}.{type(error).__qualname__}".encode()),
        (ERROR_MESSAGE, str(error)[:4000].encode("utf-8", "replace")),
        (ERROR_STAGE, stage.encode()),
        (ORIGINAL_TOPIC, topic.encode()),
        (ORIGINAL_PARTITION, str(partition).encode()),
        (ORIGINAL_OFFSET, str(offset).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (FAILED_AT, str(int(time.time() * 1000)).encode()),
    ]
    if timestamp_ms is not None:
        headers.append((ORIGINAL_TIMESTAMP, str(timestamp_ms).encode()))
    joined = "\n".join(reasons)
    if joined:
        headers.append((ERROR_REASONS, joined.encode("utf-8", "replace")))
    if error.__traceback__ is not None:
        trace = "".join(traceback.format_exception(error))[-4000:]
        headers.append((ERROR_STACKTRACE, trace.encode("utf-8", "replace")))
    if extra:
        headers.extend(extra)
    return headers
