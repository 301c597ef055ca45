"""Semantic rules a CallRequest must meet beyond its Avro schema (platform-contract.md section 2).

The platform answers 400 for these; checking them first keeps bad calls out of the platform and
puts them in the DLQ with every reason named.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from callstream.exceptions import FieldError

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_CORRELATION_ID = 50
MAX_TEXT = 2000
MAX_CALLBACK_DATA = 2000
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_LENGTH = 1000
TTS_PROCESSORS = frozenset({"azure"})


def is_e164(value: str) -> bool:
    return E164.fullmatch(value) is not None


def _required_text(errors: list[FieldError], path: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(path, "must not be empty"))


def _has_control_chars(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def check_call_request(record: dict[str, Any]) -> list[FieldError]:
    """Every semantic rule the record breaks (empty when valid).

    Also runs on the partial record of a schema failure (failing fields hold None), so every
    check here tolerates values of the wrong type.
    """
    errors: list[FieldError] = []
    cid = record.get("correlation_id")
    if not isinstance(cid, str) or not cid.strip():
        errors.append(FieldError("correlation_id", "must not be empty"))
    else:
        if len(cid) > MAX_CORRELATION_ID:
            errors.append(FieldError("correlation_id", f"at most {MAX_CORRELATION_ID} characters"))
        if _has_control_chars(cid):
            errors.append(FieldError("correlation_id", "must not contain control characters"))
    for name in ("caller_id", "msisdn"):
        value = record.get(name)
        if not isinstance(value, str) or not is_e164(value):
            errors.append(FieldError(name, "must be an E.164 number: + then 7 to 15 digits"))

    content = record.get("content")
    if isinstance(content, dict):
        if "text" in content:
            text = content.get("text")
            _required_text(errors, "content.text", text)
            if isinstance(text, str) and len(text) > MAX_TEXT:
                errors.append(FieldError("content.text", f"at most {MAX_TEXT} characters"))
            for name in ("language", "voice", "region"):
                _required_text(errors, f"content.{name}", content.get(name))
            processor = content.get("tts_processor") or "Azure"
            if str(processor).lower() not in TTS_PROCESSORS:
                errors.append(FieldError("content.tts_processor", "only Azure is supported"))
        else:
            _required_text(errors, "content.media_id", content.get("media_id"))
    else:
        errors.append(FieldError("content", "is required"))

    callback_data = record.get("callback_data")
    if isinstance(callback_data, str) and len(callback_data) > MAX_CALLBACK_DATA:
        errors.append(FieldError("callback_data", f"at most {MAX_CALLBACK_DATA} characters"))

    notify_url = record.get("notify_url")
    if notify_url is not None and not (isinstance(notify_url, str) and _valid_url(notify_url)):
        errors.append(
            FieldError("notify_url", "must be an absolute http(s) URL without surrounding spaces")
        )
    auth_id = record.get("notify_url_auth_id")
    if isinstance(auth_id, str) and (not auth_id.strip() or auth_id != auth_id.strip()):
        errors.append(FieldError("notify_url_auth_id", "must not be blank or padded"))

    receipts = [r for r in record.get("requested_receipts") or [] if isinstance(r, str)]
    if len(set(receipts)) != len(receipts):
        errors.append(FieldError("requested_receipts", "must not repeat a receipt"))

    send_at, expires_at = record.get("send_at"), record.get("expires_at")
    if isinstance(send_at, datetime) and isinstance(expires_at, datetime) and expires_at <= send_at:
        errors.append(FieldError("expires_at", "must be after send_at"))

    attributes = record.get("attributes")
    if not isinstance(attributes, dict):
        return errors
    if len(attributes) > MAX_ATTRIBUTES:
        errors.append(FieldError("attributes", f"at most {MAX_ATTRIBUTES} entries"))
    for key, value in attributes.items():
        if len(str(key)) > MAX_ATTRIBUTE_LENGTH or len(str(value)) > MAX_ATTRIBUTE_LENGTH:
            errors.append(
                FieldError(f"attributes.{key[:40]}", f"at most {MAX_ATTRIBUTE_LENGTH} characters")
            )
    return errors


def _valid_url(value: str) -> bool:
    if value != value.strip() or not value or _has_control_chars(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
