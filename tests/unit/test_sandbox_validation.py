"""The sandbox's request rules: each broken rule gives its documented platform code."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.exceptions import ApiError
from sandbox.parsing import parse_request
from tests.sandbox_fixtures import call_body

DOCUMENTED = {"7000", "7003", "7004", "7005", "7009", "7022", "7101", "7102", "7107", "7126"}


def body(**fields: Any) -> dict[str, Any]:
    """The fixtures' valid request, with a fixed correlation id and no callbackData."""
    one = [{"msisdn": ["+14155550123"], "correlationId": "c-1"}]
    return call_body(**{"to": one, "callbackData": None, **fields})


def parse(data: Any, *, raw: bytes | None = None, tps: float = 0, max_bytes: int = 1 << 20) -> Any:
    payload = raw if raw is not None else json.dumps(data).encode()
    return parse_request(
        payload, max_bytes=max_bytes, max_destinations=1000, tps=tps, now=time.time()
    )


def code_of(data: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ApiError) as info:
        parse(data, **kwargs)
    return info.value.code, info.value.message


def test_valid_tts_request_with_mixed_case_type() -> None:
    req = parse(body())
    assert req.content_type == "tts"
    assert [(d.msisdn, d.correlation_id) for d in req.destinations] == [("+14155550123", "c-1")]
    assert req.receipts is None


def test_valid_media_request_and_both_spellings() -> None:
    req = parse(
        body(
            content={"type": "MEDIA", "mediaId": "m-1"},
            to=[{"msisdn": ["14155550123"]}],
            correlationid="top",
            notifyurl="http://127.0.0.1:1/cb",
        )
    )
    assert req.content_type == "media"
    assert req.destinations[0].correlation_id == "top"
    assert req.notify_url == "http://127.0.0.1:1/cb"


def test_per_destination_correlation_id_overrides_request_level() -> None:
    req = parse(body(correlationId="top", to=[{"msisdn": ["+14155550123"], "correlationid": "x"}]))
    assert req.destinations[0].correlation_id == "x"


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"{not json", "7000"), (b"[1, 2]", "7000"), (b"", "7000"), (b"\xff\xfe", "7000")],
)
def test_invalid_json(raw: bytes, code: str) -> None:
    assert code_of(None, raw=raw)[0] == code


def test_json_too_large() -> None:
    assert code_of(body(), max_bytes=10) == ("7022", "JSON too large")


@pytest.mark.parametrize("field", ["channel", "from", "to", "content"])
def test_missing_mandatory_parameter(field: str) -> None:
    assert code_of(body(**{field: None})) == ("7003", f"Mandatory parameter missing: {field}")


@pytest.mark.parametrize("field", ["ttsProcessor", "language", "voice", "region", "text"])
def test_missing_tts_field(field: str) -> None:
    content = body()["content"]
    del content[field]
    assert code_of(body(content=content)) == (
        "7003",
        f"Mandatory parameter missing: content.{field}",
    )


def test_missing_media_id() -> None:
    assert code_of(body(content={"type": "media"}))[0] == "7003"


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"channel": "sms"}, "channel"),
        ({"priority": 4}, "priority"),
        ({"priority": True}, "priority"),
        ({"notifyUrl": " http://x/cb"}, "notifyUrl"),
        ({"notifyurl": "http://x/cb "}, "notifyurl"),
        ({"notifyUrl": "ftp://x"}, "notifyUrl"),
        ({"requestedReceipts": ["Offered", "Sneezed"]}, "requestedReceipts"),
        ({"requestedReceipts": "Offered"}, "requestedReceipts"),
        ({"sendAt": "tomorrow-ish"}, "sendAt"),
        ({"correlationId": 12}, "correlationId"),
        ({"to": []}, "to"),
        ({"content": "tts"}, "content"),
    ],
)
def test_invalid_parameter(fields: dict[str, Any], name: str) -> None:
    assert code_of(body(**fields)) == ("7004", f"Invalid parameter - {name}")


def test_tts_processor_only_azure() -> None:
    content = {**body()["content"], "ttsProcessor": "Polly"}
    assert code_of(body(content=content)) == ("7004", "Invalid parameter - content.ttsProcessor")


@pytest.mark.parametrize("sender", ["abc", "+0123456789", "12", 14155550100])
def test_invalid_sender(sender: Any) -> None:
    assert code_of(body(**{"from": sender}))[0] == "7101"


@pytest.mark.parametrize("msisdn", ["abc", "+1 415 555 0123", "0044123456", 4155550123, ""])
def test_invalid_destination(msisdn: Any) -> None:
    assert code_of(body(to=[{"msisdn": [msisdn]}]))[0] == "7102"


def test_text_too_long() -> None:
    content = {**body()["content"], "text": "x" * 2001}
    assert code_of(body(content=content)) == ("7107", "Length exceeded - text")
    content["text"] = "x" * 2000
    assert parse(body(content=content)).content_type == "tts"


def test_invalid_content_type() -> None:
    assert code_of(body(content={"type": "video"}))[0] == "7126"


def test_too_many_destinations() -> None:
    many = [{"msisdn": [f"+1415555{i:04d}" for i in range(1001)]}]
    assert code_of(body(to=many))[0] == "7009"
    assert code_of(body(to=[{"msisdn": ["+14155550123", "+14155550124"]}]), tps=1)[0] == "7009"


def test_send_at_long_past_is_expired_and_epoch_accepted() -> None:
    assert code_of(body(sendAt="2020-01-01T00:00:00Z")) == ("7005", "Request expired")
    assert parse(body(sendAt=int(time.time()) + 60)).sender == "+14155550100"


def test_requested_receipts_are_case_insensitive() -> None:
    req = parse(body(requestedReceipts=["offered", "Trombone Connected", "MESSAGE_EXPIRED"]))
    assert req.receipts == {"offered", "tromboneconnected", "messageexpired"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    try:
        parse(None, raw=raw)
    except ApiError as exc:
        assert exc.code in DOCUMENTED
        assert exc.http_status == 400


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*body(), "sendAt", "priority", "requestedReceipts", "notifyUrl"]),
        json_values,
    )
)
def test_arbitrary_json_never_crashes(partial: dict[str, Any]) -> None:
    data = {**body(), **partial}
    try:
        parse(data)
    except ApiError as exc:
        assert exc.code in DOCUMENTED
        assert exc.message
