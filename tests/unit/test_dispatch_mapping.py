"""CallRequest -> the platform's Make Call body (contract section 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import orjson
from hypothesis import given
from hypothesis import strategies as st

from callstream.contracts import call_request_codec, validate_call_request
from callstream.contracts.records import RECEIPTS, CallRequest
from consumers.dispatcher.mapping import encode_body, iso_utc, platform_body

DEFAULTS: dict[str, Any] = {
    "default_notify_url": "https://gw.example/cb",
    "default_receipts": RECEIPTS,
}


def request(**overrides: Any) -> CallRequest:
    obj: dict[str, Any] = {
        "correlation_id": "c-1",
        "caller_id": "+14155550100",
        "msisdn": "+14155550123",
        "content": {
            "type": "TtS",
            "text": "Time for lunch",
            "language": "en-US",
            "voice": "GuyNeural",
            "region": "eastus",
            "voice_type": "NEURAL",
            "gender": "male",
        },
        "priority": "high",
        "callback_data": "lunch",
        "requested_receipts": ["Offered", "trombone connected"],
        "created_at": "2026-11-29T09:00:00+01:00",
        "send_at": "2026-11-29T10:00:00.250+01:00",
        "attributes": {"campaign": "x"},
    }
    obj.update(overrides)
    return validate_call_request(call_request_codec().from_obj(obj))


def test_tts_body_is_canonical() -> None:
    body = platform_body(request(), **DEFAULTS)
    assert body == {
        "channel": "voice",
        "from": "+14155550100",
        "to": [{"msisdn": ["+14155550123"], "correlationId": "c-1"}],
        "correlationId": "c-1",
        "content": {
            "type": "TTS",
            "ttsProcessor": "Azure",
            "language": "en-US",
            "voice": "GuyNeural",
            "region": "eastus",
            "text": "Time for lunch",
            "voiceType": "neural",
            "gender": "male",
        },
        "requestedReceipts": ["Offered", "Trombone Connected"],
        "notifyUrl": "https://gw.example/cb",
        "sendAt": "2026-11-29T09:00:00.250Z",
        "priority": 3,
        "callbackData": "lunch",
    }


def test_media_defaults_and_own_notify_url() -> None:
    req = request(
        content={"type": "media", "media_id": "prompt-7"},
        priority=None,
        callback_data=None,
        requested_receipts=[],
        send_at=None,
        notify_url="https://own.example/hook",
        notify_url_auth_id="TNPXXXT09U",
    )
    body = platform_body(req, **DEFAULTS)
    assert body["content"] == {"type": "media", "mediaId": "prompt-7"}
    assert body["notifyUrl"] == "https://own.example/hook"
    assert body["notifyUrlAuthId"] == "TNPXXXT09U"
    assert len(body["requestedReceipts"]) == 10  # the configured default
    assert "priority" not in body
    assert "sendAt" not in body
    assert "callbackData" not in body


def test_no_notify_url_when_none_configured() -> None:
    body = platform_body(
        request(notify_url=None), default_notify_url=None, default_receipts=["ANSWERED"]
    )
    assert "notifyUrl" not in body


def test_iso_utc() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone(timedelta(hours=5)))
    assert iso_utc(moment) == "2026-01-01T22:04:05.678Z"


@given(
    text=st.text(min_size=1, max_size=2000),
    cid=st.text(min_size=1, max_size=50),
    callback=st.one_of(st.none(), st.text(max_size=2000)),
    when=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_any_valid_request_maps_to_json_the_platform_reads(
    text: str, cid: str, callback: str | None, when: datetime
) -> None:
    base = dict(request())
    base.update(
        correlation_id=cid,
        callback_data=callback,
        send_at=when,
        content={**cast(dict[str, Any], base["content"]), "text": text},
    )
    body = orjson.loads(encode_body(platform_body(cast(CallRequest, base), **DEFAULTS)))
    assert body["content"]["text"] == text
    assert body["to"][0]["correlationId"] == cid
    assert body.get("callbackData") == callback
    assert datetime.fromisoformat(body["sendAt"].replace("Z", "+00:00")) == when.replace(
        microsecond=when.microsecond // 1000 * 1000
    )
