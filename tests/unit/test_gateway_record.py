"""Unit tests of the callback -> Kafka record mapping."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream import headers as h
from producers.gateway.record import build_record, callback_key


def callback(transid: object) -> bytes:
    return orjson.dumps({"deliveryInfoNotification": {"transid": transid, "deliveryInfo": {}}})


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (callback("9b7a-11"), b"9b7a-11"),
        (callback(12345), b"12345"),
        (callback(""), None),
        (callback(None), None),
        (callback(True), None),
        (callback({"nested": 1}), None),
        (b'{"deliveryInfoNotification": "x"}', None),
        (b"[1, 2]", None),
        (b"not json at all", None),
        (b'{"deliveryInfoNotification": {"transid": "a"', None),
        (b"", None),
    ],
)
def test_callback_key(body: bytes, key: bytes | None) -> None:
    assert callback_key(body) == key


@given(st.binary())
def test_callback_key_never_raises(body: bytes) -> None:
    callback_key(body)


def test_build_record_keeps_the_body_and_names_the_headers() -> None:
    body = b'  {"deliveryInfoNotification": {"transid": "t-1"}}\n'
    record = build_record(
        body,
        request_id="r-1",
        received_at_ms=1700000000123,
        remote_addr="10.0.0.7",
        content_type="application/json; charset=utf-8",
        auth_method="hmac",
    )
    assert record.value is body
    assert record.key == b"t-1"
    assert dict(record.headers) == {
        h.RECEIVED_AT: b"1700000000123",
        h.REQUEST_ID: b"r-1",
        h.AUTH_METHOD: b"hmac",
        h.REMOTE_ADDR: b"10.0.0.7",
        h.CONTENT_TYPE: b"application/json; charset=utf-8",
    }


def test_build_record_omits_unknown_metadata() -> None:
    record = build_record(
        b"x",
        request_id="r",
        received_at_ms=1,
        remote_addr=None,
        content_type=None,
        auth_method="none",
    )
    assert {name for name, _ in record.headers} == {h.RECEIVED_AT, h.REQUEST_ID, h.AUTH_METHOD}
