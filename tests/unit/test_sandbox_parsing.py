"""The request path's one-pass decoding (:func:`sandbox.parsing.usual_request`) against the
rule-by-rule validation: whenever the one-pass path accepts a request, the rules accept it too
with an equal result, and :func:`parse_request` always answers what the rules answer."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.exceptions import ApiError
from sandbox.parsing import parse_request, usual_request
from sandbox.validation import CallRequest, parse_body, validate
from tests.sandbox_fixtures import call_body

NOW = time.time()
ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
PHONES = st.sampled_from(
    ["+14155550123", "14155550123", "+1", "0123456789", "+1415555012345678", "abc", "", "+44 20"]
)
TEXTS = st.sampled_from(["", "x", "Time for lunch", "é" * 3, "a" * 2001]) | st.text(max_size=12)


def _maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value at all."""
    return st.one_of(valid, valid, valid, ANY)


URLS = st.sampled_from(
    ["http://127.0.0.1:1/cb", "https://example.com/x", "ftp://x", "http://", " http://x", ""]
)
DESTINATION_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "msisdn": _maybe(st.lists(_maybe(PHONES), min_size=0, max_size=3)),
    "correlationId": _maybe(TEXTS | st.none()),
    "correlationid": _maybe(TEXTS | st.none()),
    "extra": ANY,
}
CONTENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "type": _maybe(st.sampled_from(["tts", "TtS", "media", "MEDIA", "sms", ""])),
    "ttsProcessor": _maybe(st.sampled_from(["Azure", "azure", "Polly", ""])),
    "language": _maybe(st.sampled_from(["en-US", ""])),
    "voice": _maybe(st.sampled_from(["GuyNeural", ""])),
    "region": _maybe(st.sampled_from(["Canada", ""])),
    "text": _maybe(TEXTS),
    "mediaId": _maybe(st.sampled_from(["m-1", ""])),
    "voiceType": _maybe(st.sampled_from(["standard", "Neural", "robot"])),
    "gender": _maybe(st.sampled_from(["female", None])),
    "extra": ANY,
}
BODY_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "channel": _maybe(st.sampled_from(["voice", "VOICE", "sms", ""])),
    "from": _maybe(PHONES),
    "correlationId": _maybe(TEXTS | st.none()),
    "correlationid": _maybe(TEXTS | st.none()),
    "priority": _maybe(st.sampled_from([0, 1, 2, 3, 4, True, 2.0, -1])),
    "callbackData": _maybe(TEXTS | st.none()),
    "notifyUrl": _maybe(URLS | st.none()),
    "notifyurl": _maybe(URLS),
    "notifyUrlAuthId": _maybe(st.sampled_from(["auth-1", None])),
    "requestedReceipts": _maybe(
        st.lists(st.sampled_from(["Offered", "ANSWERED", "released", "bogus"]), max_size=3)
    ),
    "sendAt": _maybe(
        st.sampled_from([NOW, int(NOW), str(int(NOW)), "2020-01-01T00:00:00Z", 1.0, "soon"])
    ),
    "contactPolicy": _maybe(st.just({"quietHours": True})),
    "extra": ANY,
}
_ABSENT = object()


@st.composite
def _changed(
    draw: st.DrawFn, base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """``base`` with 0-3 of ``fields`` set to a drawn value or removed."""
    out = dict(base)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        value = draw(st.one_of(fields[name], st.just(_ABSENT)))
        if value is _ABSENT:
            out.pop(name, None)
        else:
            out[name] = value
    return out


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid one-destination request, mostly, with a few fields changed at each level; now
    and then several destinations or a content that is not an object."""
    base = call_body(callbackData=None)
    destination = draw(
        _changed({"msisdn": ["+14155550123"], "correlationId": "c-1"}, DESTINATION_FIELDS)
    )
    more = draw(st.lists(_changed(destination, DESTINATION_FIELDS), max_size=2))
    body = draw(_changed(base, BODY_FIELDS))
    body["to"] = [destination, *more]
    body["content"] = draw(_changed(base["content"], CONTENT_FIELDS))
    for name in draw(st.lists(st.sampled_from(["to", "content"]), max_size=1)):
        body[name] = draw(st.one_of(ANY, st.just(_ABSENT)))
        if body[name] is _ABSENT:
            del body[name]
    return body


def _usual(raw: bytes) -> CallRequest | None:
    try:
        return usual_request(raw, 1000, 0.0, NOW)
    except (msgspec.DecodeError, ApiError, RecursionError):
        return None


def _by_rules(raw: bytes) -> CallRequest | tuple[str, str]:
    try:
        return validate(parse_body(raw, max_bytes=1 << 20), 1000, 0.0, NOW)
    except ApiError as exc:
        return exc.code, exc.message


def _answer(raw: bytes) -> CallRequest | tuple[str, str]:
    try:
        return parse_request(raw, 1 << 20, 1000, 0.0, NOW)
    except ApiError as exc:
        return exc.code, exc.message


def _check(raw: bytes) -> None:
    expected = _by_rules(raw)
    usual = _usual(raw)
    if usual is not None:
        assert usual == expected
    assert _answer(raw) == expected


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.booleans())
def test_the_usual_path_agrees_with_the_rules(body: dict[str, Any], ascii_only: bool) -> None:
    _check(json.dumps(body, ensure_ascii=ascii_only).encode())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*call_body()]), ANY, max_size=3))
def test_valid_bodies_with_one_field_replaced_agree(fields: dict[str, Any]) -> None:
    body = call_body(to=[{"msisdn": ["+14155550123"], "correlationId": "c-1"}])
    _check(json.dumps({**body, **fields}).encode())


def test_the_usual_request_takes_the_usual_path() -> None:
    body = call_body(to=[{"msisdn": ["+14155550123"], "correlationId": "c-1"}])
    raw = json.dumps(body).encode()
    usual = _usual(raw)
    assert usual is not None and usual == _by_rules(raw)


VALID = json.dumps(call_body(to=[{"msisdn": ["+14155550123"], "correlationId": "c-1"}])).encode()


@pytest.mark.parametrize(
    "raw",
    [
        VALID[:-1] + b',"extra":1e999}',  # a number JSON allows, orjson refuses (7000)
        VALID[:-1] + b',"extra":"\xff\xfe"}',  # invalid UTF-8 where nothing reads it
        VALID[:-1] + b',"callbackData":"\xc0\xaf"}',  # overlong UTF-8 where it is read
        VALID[:-1] + b',"extra":"\\ud800"}',  # a lone surrogate
        VALID[:-1] + b',"sendAt":' + b"[" * 3000 + b"]" * 3000 + b"}",  # deep nesting
        VALID[:-1] + b',"from":"bad","from":"+14155550100"}',  # duplicate key: the last wins
        VALID[:-1] + b',"from":"+14155550100","from":"bad"}',
        VALID[:-1] + b',"callbackData":"a\x01b"}',  # a raw control character
        b"\xef\xbb\xbf" + VALID,  # a byte order mark
        VALID + b" x",  # trailing data
        VALID.replace(b'"to":[', b'"to":[' * 1, 1).replace(b"c-1", b"c-1\\u0000"),  # NUL escape
        VALID.replace(b'"voice"', b'"vo\\u0069ce"', 1),  # an escaped key
    ],
)
def test_hostile_bytes_agree(raw: bytes) -> None:
    _check(raw)


_DROP = "<absent>"
VARIANTS: dict[str, dict[str, list[Any]]] = {
    "body": {
        "channel": ["voice", "VOICE", "sms", "", 5, _DROP],
        "from": ["+14155550100", "14155550100", "+1", "abc", 5, _DROP],
        "correlationId": ["top", "", None, 5, _DROP],
        "correlationid": ["top", "", None, 5],
        "priority": [0, 1, 2, 3, 4, True, 2.0, "2", None],
        "callbackData": ["", "a" * 2000, "a" * 2001, 5, None],
        "notifyUrl": ["http://127.0.0.1:1/cb", "https://x/y", "ftp://x", "http://", " http://x", 5],
        "notifyurl": ["http://127.0.0.1:1/cb", "ftp://x", None],
        "notifyUrlAuthId": ["auth-1", 5, None],
        "requestedReceipts": [[], ["Offered", "trombone_connected"], ["bogus"], "Offered", None],
        "sendAt": [NOW, int(NOW), str(int(NOW)), "2020-01-01T00:00:00Z", 1.0, "soon", True],
        "contactPolicy": [{"quietHours": True}, {}, 5, None],
        "to": [[], 5, [5], [{"msisdn": ["+14155550123"]}, {"msisdn": ["+14155550124"]}]],
        "content": [5, {}, {"type": "media", "mediaId": "m-1"}, {"type": "MEDIA", "mediaId": ""}],
    },
    "destination": {
        "msisdn": [["14155550123"], [], ["+1"], [5], "+14155550123", ["+14155550123"] * 2, _DROP],
        "correlationId": ["x", "", None, 5, _DROP],
        "correlationid": ["y", "", None, 5],
    },
    "content": {
        "type": ["tts", "TTS", "media", "sms", "", 5, _DROP],
        "ttsProcessor": ["azure", "AZURE", "Polly", "", 5, _DROP],
        "language": ["", 5, _DROP],
        "voice": ["", 5, _DROP],
        "region": ["", 5, _DROP],
        "text": ["a" * 2000, "a" * 2001, "é", "", 5, _DROP],
        "voiceType": ["standard", "NEURAL", "robot", 5, None],
        "gender": ["female", 5, None],
        "mediaId": ["m-1", 5],
    },
}


def _variant(level: str, name: str, value: Any, cid_free: bool) -> dict[str, Any]:
    destination: dict[str, Any] = {"msisdn": ["+14155550123"]}
    if not cid_free:
        destination["correlationId"] = "c-1"
    body = call_body(to=[destination], callbackData=None)
    target = {"body": body, "destination": destination, "content": body["content"]}[level]
    if value == _DROP:
        target.pop(name, None)
    else:
        target[name] = value
    return body


@pytest.mark.parametrize("cid_free", [False, True], ids=["with-cid", "no-destination-cid"])
@pytest.mark.parametrize(
    ("level", "name", "value"),
    [
        (level, name, value)
        for level, fields in VARIANTS.items()
        for name, values in fields.items()
        for value in values
    ],
)
def test_each_field_variant_agrees(level: str, name: str, value: Any, cid_free: bool) -> None:
    _check(json.dumps(_variant(level, name, value, cid_free)).encode())


def test_variants_exercise_both_outcomes_of_the_usual_path() -> None:
    """The table above is not vacuous: many variants take the usual path, many do not."""
    taken = [
        _usual(json.dumps(_variant(level, name, value, False)).encode()) is not None
        for level, fields in VARIANTS.items()
        for name, values in fields.items()
        for value in values
    ]
    assert 30 < sum(taken) < len(taken) - 30
