"""Classification of the platform's answers (contract section 3), hostile bodies included."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.exceptions import PlatformError
from consumers.dispatcher.exceptions import (
    PermanentError,
    PlatformUnavailableError,
    RetryableError,
    ThrottledError,
)
from consumers.dispatcher.outcomes import classify, parse_retry_after

CID = "cid-1"
QUEUED = {
    "requestTimestamp": "2024-09-05T00:03:01.708-04:00",
    "messageId": "m-1",
    "correlationId": CID,
    "status": "queued",
}


def answer(status: int, body: object = None, **headers: str) -> object:
    raw = orjson.dumps(body) if body is not None else b""
    return classify(status, headers, raw, CID)


@pytest.mark.parametrize("status", [200, 201])
def test_success_is_queued_with_message_id(status: int) -> None:
    result = answer(status, QUEUED)
    assert (result.outcome, result.message_id) == ("QUEUED", "m-1")  # type: ignore[attr-defined]


def test_title_case_status_and_rejected_in_body() -> None:
    assert answer(201, {**QUEUED, "status": "Queued"}).outcome == "QUEUED"  # type: ignore[attr-defined]
    rejected = answer(200, {**QUEUED, "status": "Rejected", "code": "7102"})
    assert rejected.outcome == "REJECTED"  # type: ignore[attr-defined]
    assert rejected.platform_code == "7102"  # type: ignore[attr-defined]


def test_partial_content_reads_our_entry_or_refuses_to_guess() -> None:
    body = [
        {"correlationId": "other", "messageId": "m-0", "status": "queued"},
        {"correlationId": CID, "status": "rejected", "code": "7102", "message": "bad"},
    ]
    assert answer(206, body).outcome == "REJECTED"  # type: ignore[attr-defined]
    with pytest.raises(PermanentError):
        answer(206, [{"correlationId": "x"}, {"correlationId": "y"}])


def test_unreadable_success_body_is_still_queued_never_called_again() -> None:
    assert classify(201, {}, b"<html>", CID).outcome == "QUEUED"


def test_409_is_duplicate() -> None:
    assert answer(409, {"code": "7130", "message": "dup"}).outcome == "DUPLICATE"  # type: ignore[attr-defined]


def test_400_is_permanent_with_code() -> None:
    with pytest.raises(PermanentError) as info:
        answer(400, {"code": "7004", "message": "Invalid parameter - sendAt"})
    assert info.value.code == "7004"
    assert info.value.http_status == 400


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_configuration_errors_pause(status: int) -> None:
    with pytest.raises(PlatformUnavailableError):
        answer(status)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_retry(status: int) -> None:
    with pytest.raises(RetryableError) as info:
        answer(status)
    assert not isinstance(info.value, ThrottledError)


def test_429_and_7020_throttle_with_retry_after() -> None:
    with pytest.raises(ThrottledError) as info:
        answer(429, {"code": "7020", "message": "Max transaction limit"}, **{"Retry-After": "3"})
    assert info.value.retry_after == 3.0
    with pytest.raises(ThrottledError):
        answer(400, {"code": "7020", "message": "limit"})  # code 7020 whatever the status


def test_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("-1") == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


@given(
    status=st.integers(min_value=100, max_value=599),
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
            lambda c: (
                st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4)
            ),
            max_leaves=12,
        ).map(orjson.dumps),
    ),
    retry_after=st.one_of(st.none(), st.text(max_size=30)),
)
def test_hostile_answers_are_always_classified(
    status: int, body: bytes, retry_after: str | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    try:
        result = classify(status, headers, body, CID)
    except PlatformError as exc:
        # a 2xx other than 206 is never an error unless the body says 7020 (throttled)
        assert not (200 <= status < 300 and status != 206) or isinstance(exc, ThrottledError)
        return
    assert result.outcome in ("QUEUED", "REJECTED", "DUPLICATE")
    assert 200 <= status < 300 or status == 409
