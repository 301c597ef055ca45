"""The semantic rules of platform-contract.md section 2, each failing field named."""

from __future__ import annotations

from typing import Any

import pytest

from callstream.contracts.rules import is_e164
from callstream.exceptions import ValidationError
from producers.publisher import prepare_intent

VALID: dict[str, Any] = {
    "correlation_id": "c-1",
    "caller_id": "+14155550100",
    "msisdn": "+14155550123",
    "content": {
        "type": "tts",
        "text": "hello",
        "language": "en-US",
        "voice": "GuyNeural",
        "region": "eastus",
    },
}


def _fields(intent: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        prepare_intent(intent)
    return {e.field: e.reason for e in info.value.errors}


def test_valid_intent_gets_defaults() -> None:
    request = prepare_intent({k: v for k, v in VALID.items() if k != "correlation_id"})
    assert len(request["correlation_id"]) == 36
    assert request["created_at"].tzinfo is not None
    assert request["content"]["tts_processor"] == "Azure"  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("+14155550123", True),
        ("+4915123456789", True),
        ("14155550123", False),
        ("+0123456789", False),
        ("+1 415 555 0123", False),
        ("+1234567890123456", False),
        ("+123456", False),
        ("", False),
    ],
)
def test_e164(number: str, ok: bool) -> None:
    assert is_e164(number) is ok


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"correlation_id": "x" * 51}, "correlation_id"),
        ({"correlation_id": "a\nb"}, "correlation_id"),
        ({"msisdn": "0044770090012"}, "msisdn"),
        ({"caller_id": "+1"}, "caller_id"),
        ({"callback_data": "x" * 2001}, "callback_data"),
        ({"notify_url": " https://a.example/cb"}, "notify_url"),
        ({"notify_url": "ftp://a.example/cb"}, "notify_url"),
        ({"notify_url_auth_id": " "}, "notify_url_auth_id"),
        ({"requested_receipts": ["answered", "ANSWERED"]}, "requested_receipts"),
        ({"priority": 3}, "priority"),
        ({"send_at": "2026-01-01T00:00:00"}, "send_at"),
        ({"created_at": "yesterday"}, "created_at"),
        (
            {"send_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"},
            "expires_at",
        ),
        ({"attributes": {"k": 1}}, "attributes.k"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_each_rule_names_its_field(change: dict[str, Any], field: str) -> None:
    assert field in _fields({**VALID, **change})


@pytest.mark.parametrize(
    ("content", "fields"),
    [
        (
            {"type": "tts", "text": "x" * 2001, "language": "l", "voice": "v", "region": "r"},
            {"content.text"},
        ),
        ({"type": "tts", "text": "hi"}, {"content.language", "content.voice", "content.region"}),
        (
            {"type": "TTS", "text": "", "language": " ", "voice": "v", "region": "r"},
            {"content.text", "content.language"},
        ),
        (
            {
                "type": "tts",
                "text": "hi",
                "language": "l",
                "voice": "v",
                "region": "r",
                "tts_processor": "Polly",
            },
            {"content.tts_processor"},
        ),
        ({"type": "media"}, {"content.media_id"}),
        ({"type": "media", "media_id": ""}, {"content.media_id"}),
        ({"type": "video", "media_id": "m"}, {"content.type"}),
        ({"media_id": "m"}, {"content.type"}),
    ],
)
def test_content_rules(content: dict[str, Any], fields: set[str]) -> None:
    assert fields <= set(_fields({**VALID, "content": content}))


def test_every_failing_field_is_reported_at_once() -> None:
    reported = _fields(
        {"correlation_id": " ", "msisdn": "123", "content": {"type": "tts", "text": ""}, "x": 1}
    )
    assert {
        "correlation_id",
        "caller_id",
        "msisdn",
        "content.text",
        "content.language",
        "content.voice",
        "content.region",
        "x",
    } <= set(reported)


def test_not_an_object() -> None:
    assert _fields([1, 2]) == {"(record)": "must be a JSON object"}  # type: ignore[arg-type]
