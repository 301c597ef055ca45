"""The contracts: Avro schemas, typed record shapes, wire codecs and validation.

:func:`parse_call_request` is the one entry point services use to turn bytes from Kafka (any wire
form) into a valid :class:`~callstream.contracts.records.CallRequest`.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from callstream.contracts.codecs import Codec, WireFormat, detect_format
from callstream.contracts.records import CallEvent, CallRequest, DispatchResult
from callstream.contracts.rules import check_call_request
from callstream.contracts.schemas import CALL_EVENT, CALL_REQUEST, DISPATCH_RESULT
from callstream.exceptions import ValidationError

__all__ = [
    "CALL_EVENT",
    "CALL_REQUEST",
    "DISPATCH_RESULT",
    "CallEvent",
    "CallRequest",
    "Codec",
    "DispatchResult",
    "WireFormat",
    "call_event_codec",
    "call_request_codec",
    "detect_format",
    "dispatch_result_codec",
    "parse_call_request",
    "validate_call_request",
    "with_rule_errors",
]


@functools.cache
def call_request_codec() -> Codec:
    return Codec(CALL_REQUEST)


@functools.cache
def dispatch_result_codec() -> Codec:
    return Codec(DISPATCH_RESULT)


@functools.cache
def call_event_codec() -> Codec:
    return Codec(CALL_EVENT)


def validate_call_request(record: dict[str, Any], raw: bytes | None = None) -> CallRequest:
    """Apply the semantic rules; raise ValidationError naming every failing field."""
    errors = check_call_request(record)
    if errors:
        raise ValidationError("invalid call request", tuple(errors), raw=raw)
    return cast(CallRequest, record)


def parse_call_request(
    raw: bytes, content_type: str | None = None, codec: Codec | None = None
) -> CallRequest:
    """Bytes in any wire form -> a valid CallRequest, or DecodeError / ValidationError.

    A JSON record that breaks the schema is also checked against the semantic rules, so the
    error names every failing field at once.
    """
    try:
        record = (codec or call_request_codec()).decode(raw, content_type)
    except ValidationError as exc:
        raise with_rule_errors(exc) from None
    return validate_call_request(record, raw)


def with_rule_errors(exc: ValidationError) -> ValidationError:
    """Add the semantic-rule errors of the partial record to a schema ValidationError."""
    if exc.partial is None:
        return exc
    failing = {e.field for e in exc.errors}
    extra = [
        e
        for e in check_call_request(exc.partial)
        if e.field not in failing and e.reason != "is required"
    ]
    if not extra:
        return exc
    return ValidationError(
        "invalid call request", (*exc.errors, *extra), raw=exc.raw, partial=exc.partial
    )
