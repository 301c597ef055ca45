"""Every documented callback variant and irregularity (platform-contract.md section 4) through the
normalizer's transformation: table-driven, one row per case, no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from callstream.contracts import call_event_codec
from callstream.ids import uuid5_text
from consumers.normalizer.callback_parser import parse_callback
from consumers.normalizer.event_id import NAMESPACE
from consumers.normalizer.exceptions import CallbackNotJsonError, CallbackShapeError
from consumers.normalizer.mapping import classify, normalize_msisdn, parse_code, parse_timestamp
from consumers.normalizer.transform import DeadLetter, DispatchInfo, Emit, Transformer

RECEIVED_MS = 1_725_509_000_000  # 2024-09-05T04:03:20Z
TRANSID = "8b5a3c1e-1111-4a5b-9c2d-0123456789ab"


def callback(
    status: Any = "OFFERED",
    code: Any = "7407",
    description: Any = "Call offered",
    timestamp: Any = "2024-09-05T04:03:01.708Z",
    destination: Any = "+14155550123",
    *,
    transid: Any = TRANSID,
    correlation_id: Any = "corr-1",
    callback_data: Any = "cb-data",
    trans_info: str | None = None,
    drop: tuple[str, ...] = (),
    extra_info: dict[str, Any] | None = None,
    extra_top: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A callback body shaped as the contract documents it (every value a string)."""
    info = {
        "timeStamp": timestamp,
        "Description": description,
        "code": code,
        "deliveryChannel": "voice",
        "additionalInfo": "",
        "destination": destination,
        "destinationType": "msisdn",
        "deliveryStatus": status,
        **(extra_info or {}),
    }
    notification: dict[str, Any] = {
        "deliveryInfo": info,
        "subtid": "0f1e2d3c4b5a6978",
        "transid": transid,
        "callbackData": callback_data,
        "correlationid": correlation_id,
    }
    for name in drop:
        notification.pop(name, None)
        info.pop(name, None)
    body: dict[str, Any] = {"deliveryInfoNotification": notification, **(extra_top or {})}
    if trans_info is not None:
        body = {"deliveryTransInfo": trans_info, **body}
    return body


def run(body: Any, zone: Any = UTC) -> Emit | DeadLetter:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Transformer(zone).decide(raw, RECEIVED_MS)


def emitted(body: Any, zone: Any = UTC) -> dict[str, Any]:
    out = run(body, zone)
    assert isinstance(out, Emit), out
    decoded = call_event_codec().decode(out.value)  # what goes on the wire is valid Avro
    assert decoded["event_id"] == out.event["event_id"]
    return dict(out.event)


# -- event type, reason, terminal: the contract's table, row by row -------------------------------
EVENT_TABLE = [
    # status, code, description, event_type, reason, terminal
    ("OFFERED", "7407", "Call offered", "OFFERED", None, False),
    ("ACCEPTED", "7408", "Call accepted", "ACCEPTED", None, False),
    ("ANSWERED", "7519", "Answered", "ANSWERED", None, False),
    ("DROPPED", "7409", "Call dropped", "DROPPED", None, False),
    ("REJECTED", "7401", "No answer", "REJECTED", "NO_ANSWER", True),
    ("REJECTED", "7402", "Customer busy", "REJECTED", "BUSY", True),
    ("REJECTED", "7406", "Rejected", "REJECTED", "REJECTED", True),
    ("REJECTED", "7404", "Others", "REJECTED", "OTHER", True),
    ("Released", "7405", "Release", "RELEASED", None, True),
    ("DISCONNECTED", "7410", "Call disconnected", "DISCONNECTED", None, False),
    ("TROMBONE_CONNECTED", "7411", "Trombone connected", "TROMBONE_CONNECTED", None, False),
    ("TROMBONE_RELEASED", "7412", "Trombone released", "TROMBONE_RELEASED", None, False),
    ("Failed", "7005", "Request expired", "EXPIRED", None, True),
    ("Failed", "7208", "Message expired", "EXPIRED", None, True),
    ("Un-Delivered", "7208", "Message expired", "EXPIRED", None, True),  # SMS's spelling
    ("Failed", "9999", "Something else", "FAILED", "OTHER", True),
    ("REJECTED", "7999", "Undocumented reject", "REJECTED", "OTHER", True),
]


@pytest.mark.parametrize(
    ("status", "code", "description", "event_type", "reason", "terminal"), EVENT_TABLE
)
def test_documented_event(
    status: str, code: str, description: str, event_type: str, reason: str | None, terminal: bool
) -> None:
    event = emitted(callback(status, code, description))
    assert event["event_type"] == event_type
    assert event["reason"] == reason
    assert event["terminal"] is terminal
    assert event["platform_status"] == status  # raw, as sent
    assert event["platform_code"] == int(code)
    assert event["description"] == description
    assert event["source"] == "PLATFORM"
    assert event["message_id"] == TRANSID
    assert event["correlation_id"] == "corr-1"
    assert event["callback_data"] == "cb-data"
    assert event["msisdn"] == "+14155550123"
    assert event["occurred_at"] == datetime(2024, 9, 5, 4, 3, 1, 708000, tzinfo=UTC)
    assert event["received_at"] == datetime.fromtimestamp(RECEIVED_MS / 1000, UTC)


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        ("offered", "OFFERED"),
        ("Answered", "ANSWERED"),
        ("RELEASED", "RELEASED"),
        ("released", "RELEASED"),
        ("FAILED", "EXPIRED"),  # with 7005 below
        ("trombone connected", "TROMBONE_CONNECTED"),
        ("Trombone-Released", "TROMBONE_RELEASED"),
        ("  DROPPED ", "DROPPED"),
    ],
)
def test_status_is_case_and_spelling_insensitive(status: str, event_type: str) -> None:
    code = "7005" if event_type == "EXPIRED" else "1"
    assert emitted(callback(status, code))["event_type"] == event_type


@pytest.mark.parametrize(
    ("code", "reason", "platform_code"),
    [(7401, "NO_ANSWER", 7401), (7402.0, "BUSY", 7402), (" 7406 ", "REJECTED", 7406)],
)
def test_codes_as_numbers_or_padded_strings(code: Any, reason: str, platform_code: int) -> None:
    event = emitted(callback("REJECTED", code))
    assert (event["reason"], event["platform_code"]) == (reason, platform_code)


@pytest.mark.parametrize(
    ("code", "event_type", "reason"),
    [("7407", "OFFERED", None), ("7402", "REJECTED", "BUSY"), ("7005", "EXPIRED", None),
     ("7405", "RELEASED", None), ("1234", "UNKNOWN", None)],
)  # fmt: skip
def test_missing_status_falls_back_on_the_code(
    code: str, event_type: str, reason: str | None
) -> None:
    event = emitted(callback(code=code, drop=("deliveryStatus",)))
    assert (event["event_type"], event["reason"], event["platform_status"]) == (
        event_type,
        reason,
        None,
    )


def test_unknown_status_keeps_the_raw_values() -> None:
    event = emitted(callback("QUEUED_FOR_MOON", "8888", "A new event type"))
    assert event["event_type"] == "UNKNOWN"
    assert event["terminal"] is False
    assert event["platform_status"] == "QUEUED_FOR_MOON"
    assert event["platform_code"] == 8888
    assert event["description"] == "A new event type"


@pytest.mark.parametrize("code", ["abc", "", "99999999999", "-5", "7401.5"])
def test_codes_outside_avro_int_or_not_numbers_are_null(code: str) -> None:
    event = emitted(callback("ANSWERED", code))
    assert event["platform_code"] is None
    assert event["event_type"] == "ANSWERED"


# -- timestamps -----------------------------------------------------------------------------------
WHEN = datetime(2024, 9, 5, 4, 3, 1, 708000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "zone", "expected"),
    [
        ("2024-09-05T04:03:01.708Z", UTC, WHEN),
        ("2024-09-05T04:03:01.708z", UTC, WHEN),
        ("2024-09-05T05:03:01.708+01:00", UTC, WHEN),
        ("2024-09-05T00:03:01.708-04:00", UTC, WHEN),  # the response sample's form
        ("2024-09-05T09:33:01.708+05:30", UTC, WHEN),
        ("2024-09-05T04:03:01.708", UTC, WHEN),  # no zone: UTC by default
        ("2024-09-05 04:03:01.708", UTC, WHEN),
        ("2024-09-05T06:03:01.708", ZoneInfo("Europe/Berlin"), WHEN),  # configured zone (CEST)
        ("2024-09-05T04:03:01.708+0000", UTC, WHEN),
        ("1725508981708", UTC, WHEN),  # epoch milliseconds
        ("1725508981", UTC, WHEN.replace(microsecond=0)),  # epoch seconds
    ],
)
def test_timestamps_become_utc(timestamp: str, zone: Any, expected: datetime) -> None:
    assert parse_timestamp(timestamp, zone) == expected
    assert emitted(callback(timestamp=timestamp), zone)["occurred_at"] == expected


@pytest.mark.parametrize("timestamp", [None, "", "yesterday", "2024-13-45T99:00:00", "9" * 30])
def test_unreadable_timestamp_falls_back_on_received_at(timestamp: Any) -> None:
    event = emitted(callback(timestamp=timestamp))
    assert event["occurred_at"] == event["received_at"]


# -- destinations ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("destination", "msisdn"),
    [
        ("+14155550123", "+14155550123"),
        ("14155550123", "+14155550123"),
        ("0014155550123", "+14155550123"),
        ("+1 415-555-0123", "+14155550123"),
        ("tel:+14155550123", "+14155550123"),
        (14155550123, "+14155550123"),  # a number, not a string
        ("not-a-number", None),
        ("+1234567890123456", None),  # 16 digits: longer than E.164 allows
        ("0415550123", None),  # national format: no country code
        (None, None),
    ],
)
def test_destinations_become_e164(destination: Any, msisdn: str | None) -> None:
    assert normalize_msisdn(None if destination is None else str(destination)) == msisdn
    assert emitted(callback(destination=destination))["msisdn"] == msisdn


# -- missing ids, lookup fill-in, added fields ----------------------------------------------------
INFO = DispatchInfo("corr-from-dispatch", "cb-from-dispatch", "+14155550123", {"campaign": "c7"})


@pytest.mark.parametrize(
    ("status", "code"),
    [("TROMBONE_CONNECTED", "7411"), ("TROMBONE_RELEASED", "7412"), ("DISCONNECTED", "7410")],
)
def test_known_bug_missing_ids_are_filled_from_dispatches(status: str, code: str) -> None:
    body = orjson.dumps(callback(status, code, drop=("callbackData", "correlationid")))
    out = Transformer().decide(body, RECEIVED_MS, INFO)
    assert isinstance(out, Emit)
    event = call_event_codec().decode(out.value)
    assert event["correlation_id"] == "corr-from-dispatch"
    assert event["callback_data"] == "cb-from-dispatch"
    assert event["attributes"] == {"campaign": "c7"}
    assert out.key == TRANSID.encode()


def test_fill_in_never_overwrites_what_the_callback_said() -> None:
    body = orjson.dumps(callback(destination="4915112345678"))
    out = Transformer().decide(body, RECEIVED_MS, INFO)
    assert isinstance(out, Emit)
    assert out.event["correlation_id"] == "corr-1"
    assert out.event["callback_data"] == "cb-data"
    assert out.event["msisdn"] == "+4915112345678"
    assert out.event["attributes"] == {"campaign": "c7"}


def test_missing_ids_without_dispatch_still_emit() -> None:
    event = emitted(callback("DISCONNECTED", "7410", drop=("callbackData", "correlationid")))
    assert (event["correlation_id"], event["callback_data"], event["attributes"]) == (
        None,
        None,
        {},
    )


def test_empty_strings_count_as_missing() -> None:
    event = emitted(callback(callback_data="", correlation_id="  "))
    assert (event["correlation_id"], event["callback_data"]) == (None, None)


def test_no_transid_keys_by_correlation_id() -> None:
    out = run(callback(transid=None))
    assert isinstance(out, Emit)
    assert out.event["message_id"] is None
    assert out.key == b"corr-1"


@pytest.mark.parametrize(
    "body",
    [
        callback(trans_info="<deliveryTransInfo><transid>x</transid></deliveryTransInfo>"),
        callback(drop=("subtid", "additionalInfo", "deliveryChannel", "destinationType")),
        callback(extra_info={"newField": {"nested": [1, 2]}, "price": 0.02}),
        callback(extra_top={"version": 3, "meta": None}),
        {"deliveryInfoNotification": {**callback()["deliveryInfoNotification"], "x": True}},
        # keys in another case than documented
        {"deliveryinfonotification": {"deliveryinfo": {"deliverystatus": "ANSWERED",
         "Code": "7519", "timestamp": "2024-09-05T04:03:01.708Z", "description": "Answered"},
         "TransId": TRANSID, "correlationId": "corr-1"}},
        # deliveryInfo as a one-element array
        {"deliveryInfoNotification": {**callback()["deliveryInfoNotification"],
         "deliveryInfo": [callback()["deliveryInfoNotification"]["deliveryInfo"]]}},
    ],
)  # fmt: skip
def test_tolerated_variants(body: dict[str, Any]) -> None:
    event = emitted(body)
    assert event["message_id"] == TRANSID
    assert event["correlation_id"] == "corr-1"
    assert event["event_type"] in {"OFFERED", "ANSWERED"}


# -- what is dead-lettered ------------------------------------------------------------------------
MALFORMED_SAMPLES = [
    # the documentation's samples that are not JSON: trailing commas, comments, ellipses,
    # single quotes, unquoted keys, missing commas, truncation, text around the body
    b'{"deliveryInfoNotification": {"deliveryInfo": {"code": "7407",}, "transid": "x",}}',
    b'{"deliveryInfoNotification": {"deliveryInfo": {"code": "7407" "deliveryStatus": "OFFERED"}}}',
    b"{'deliveryInfoNotification': {'transid': 'x'}}",
    b'{deliveryInfoNotification: {transid: "x"}}',
    b'{"deliveryInfoNotification": { ... }}',
    b'{"deliveryInfoNotification": {"deliveryInfo": {"code": "7407"} // offered\n}}',
    b'{"deliveryInfoNotification": {"deliveryInfo": {"code": "7407"',
    b'POST /notify HTTP/1.1\r\n\r\n{"deliveryInfoNotification": {}}',
    b"",
    b"\xff\xfe\x00garbage",
    b"\xc3\x01\x00\x00",  # Avro-looking bytes
]


@pytest.mark.parametrize("raw", MALFORMED_SAMPLES)
def test_not_json_is_dead_lettered(raw: bytes) -> None:
    out = run(raw)
    assert isinstance(out, DeadLetter)
    assert isinstance(out.error, CallbackNotJsonError)
    assert out.error.raw == raw
    assert out.stage == "parse"


SHAPE_ERRORS = [
    ([callback()], "(body)"),
    ("just a string", "(body)"),
    (42, "(body)"),
    (None, "(body)"),
    ({}, "deliveryInfoNotification"),
    ({"deliveryInfoNotification": "x"}, "deliveryInfoNotification"),
    ({"deliveryInfoNotification": {"transid": "x"}}, "deliveryInfoNotification.deliveryInfo"),
    ({"deliveryInfoNotification": {"transid": "x", "deliveryInfo": 5}},
     "deliveryInfoNotification.deliveryInfo"),
    (callback(transid=None, correlation_id=None), "deliveryInfoNotification"),
    (callback(drop=("deliveryStatus", "code")), "deliveryInfo"),
    (callback(transid={"id": 1}), "transid"),
    (callback(status=["OFFERED"]), "deliveryStatus"),
    (callback(code=True), "code"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), SHAPE_ERRORS)
def test_wrong_shape_is_dead_lettered(body: Any, field: str) -> None:
    raw = orjson.dumps(body)
    out = run(raw)
    assert isinstance(out, DeadLetter)
    assert isinstance(out.error, CallbackShapeError)
    assert out.error.raw == raw
    assert [e.field for e in out.error.errors] == [field]


# -- event ids ------------------------------------------------------------------------------------
def test_event_id_is_deterministic_and_a_uuid5() -> None:
    first = emitted(callback("REJECTED", "7402"))["event_id"]
    assert uuid.UUID(first).version == 5
    assert first == emitted(callback("REJECTED", "7402"))["event_id"]
    assert uuid5_text(NAMESPACE, "x") == str(uuid.uuid5(NAMESPACE, "x"))
    assert uuid5_text(NAMESPACE.bytes, "é" * 99) == str(uuid.uuid5(NAMESPACE, "é" * 99))


def test_event_id_ignores_harmless_differences_between_deliveries() -> None:
    a = callback("Released", "7405", destination="+14155550123")
    b = callback("RELEASED", 7405, destination="14155550123", extra_info={"retry": "1"})
    reordered = orjson.dumps(dict(reversed(list(a.items()))))
    ids = {emitted(a)["event_id"], emitted(b)["event_id"], emitted(reordered)["event_id"]}
    assert len(ids) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"status": "DROPPED", "code": "7409"},  # a sibling event sharing the timestamp
        {"timestamp": "2024-09-05T04:03:02.708Z"},
        {"transid": "another-call"},
        {"destination": "+14155550124"},
    ],
)
def test_event_id_differs_between_events(change: dict[str, Any]) -> None:
    base = {"status": "Released", "code": "7405"}
    assert (
        emitted(callback(**base))["event_id"] != emitted(callback(**{**base, **change}))["event_id"]
    )


def test_same_instant_in_another_zone_is_the_same_event() -> None:
    z = emitted(callback(timestamp="2024-09-05T04:03:01.708Z"))["event_id"]
    offset = emitted(callback(timestamp="2024-09-05T09:33:01.708+05:30"))["event_id"]
    assert z == offset


# -- building blocks ------------------------------------------------------------------------------
def test_classify_without_anything_is_unknown() -> None:
    assert classify(None, None) == ("UNKNOWN", None, False)
    assert parse_code(None) is None


def test_parser_keeps_raw_strings() -> None:
    parsed = parse_callback(orjson.dumps(callback("Released", 7405, destination="14155550123")))
    assert (parsed.status, parsed.code, parsed.destination) == ("Released", "7405", "14155550123")
