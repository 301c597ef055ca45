"""Hostile input, generated: whatever bytes or JSON arrive, the normalizer decides (an event or a
dead letter), never raises, and every event it emits is valid Avro that decodes to itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callstream.contracts import call_event_codec
from consumers.normalizer.dedupe import DedupeWindow
from consumers.normalizer.exceptions import InvalidCallbackError
from consumers.normalizer.transform import DeadLetter, DispatchInfo, Emit, Transformer

RECEIVED_MS = 1_725_509_000_000
TRANSFORMER = Transformer()
CODEC = call_event_codec()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
statuses = st.sampled_from(
    ["OFFERED", "Released", "Failed", "REJECTED", "rejected", "Un-Delivered", "weird", ""]
)
codes = st.sampled_from(["7401", "7402", "7404", "7406", "7005", "7208", "7405", "x", ""])
field_values = scalars | statuses | codes | json_values


@st.composite
def callback_like(draw: st.DrawFn) -> Any:
    """Bodies close to the callback shape, with any field replaced, removed or mistyped."""
    info = {
        "timeStamp": draw(
            st.sampled_from(["2024-09-05T04:03:01.708Z", "2024-09-05T04:03:01", "x"])
            | st.datetimes().map(datetime.isoformat)
            | scalars
        ),
        "Description": draw(scalars),
        "code": draw(codes | scalars),
        "destination": draw(st.from_regex(r"\+?[0-9]{0,17}", fullmatch=True) | scalars),
        "deliveryStatus": draw(statuses | scalars),
    }
    notification = {
        "deliveryInfo": info,
        "transid": draw(st.uuids().map(str) | scalars),
        "correlationid": draw(st.text(max_size=60) | scalars),
        "callbackData": draw(st.text(max_size=60) | scalars),
    }
    for target in (info, notification):
        for key in draw(st.lists(st.sampled_from(sorted(target)), max_size=3)):
            target.pop(key, None)
        extra = draw(st.dictionaries(st.text(max_size=8), field_values, max_size=2))
        target.update(extra)
    return {"deliveryInfoNotification": notification}


def check(raw: bytes, info: DispatchInfo | None = None) -> Emit | DeadLetter:
    out = TRANSFORMER.decide(raw, RECEIVED_MS, info)
    assert isinstance(out, Emit | DeadLetter)
    if isinstance(out, Emit):
        decoded = CODEC.decode(out.value)
        assert decoded["event_id"] == out.event["event_id"]
        assert decoded["event_type"] == out.event["event_type"]
        assert decoded["message_id"] == out.event["message_id"]
        assert out.key is not None
        assert out.event["msisdn"] is None or out.event["msisdn"].startswith("+")
    else:
        # only bad input is dead-lettered, never by accident of a bug
        assert isinstance(out.error, InvalidCallbackError), repr(out.error)
        assert out.error.raw == raw
    return out


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@SETTINGS
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    check(orjson.dumps(value))


@SETTINGS
@given(callback_like(), st.booleans())
def test_callback_shaped_json(body: Any, with_info: bool) -> None:
    info = DispatchInfo("c", None, "+1555", {"k": "v"}) if with_info else None
    raw = orjson.dumps(body)
    out = check(raw, info)
    if must_be_event(body):
        assert isinstance(out, Emit), out


def _said(value: Any) -> bool:
    if isinstance(value, int | float):
        return True
    return bool((value or "").strip())


def must_be_event(body: Any) -> bool:
    """Well typed, tied to a call, saying something: the oracle for "this is an event"."""
    notification = body["deliveryInfoNotification"]
    info = notification.get("deliveryInfo", {})
    used = [info.get(k) for k in ("deliveryStatus", "code", "timeStamp", "Description")]
    used += [info.get("destination"), notification.get("callbackData")]
    ids = [notification.get(k) for k in ("transid", "correlationid")]
    if any(isinstance(v, dict | list | bool) for v in (*used, *ids)):
        return False
    return any(_said(v) for v in ids) and any(_said(v) for v in used[:2])


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "event_id": st.text(),
            "event_type": st.sampled_from(["OFFERED", "REJECTED", "UNKNOWN", "DISPATCHED"]),
            "source": st.sampled_from(["PLATFORM", "DISPATCHER"]),
            "message_id": st.none() | st.text(),
            "correlation_id": st.none() | st.text(),
            "msisdn": st.none() | st.text(),
            "callback_data": st.none() | st.text(),
            "platform_code": st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1),
            "platform_status": st.none() | st.text(),
            "reason": st.none() | st.sampled_from(["NO_ANSWER", "BUSY", "REJECTED", "OTHER"]),
            "description": st.none() | st.text(),
            "occurred_at": st.datetimes(timezones=st.just(UTC)),
            "received_at": st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)),
            "terminal": st.booleans(),
            "attributes": st.dictionaries(st.text(), st.text(), max_size=5),
        }
    )
)
def test_compiled_avro_writer_matches_fastavro(event: Any) -> None:
    for name in ("occurred_at", "received_at"):  # Avro timestamp-millis keeps milliseconds
        event[name] = event[name].replace(microsecond=event[name].microsecond // 1000 * 1000)
    assert CODEC.encode(event) == CODEC.encode_fastavro(event)
    assert CODEC.decode(CODEC.encode(event)) == event


@SETTINGS
@given(st.lists(st.sampled_from("abcdefgh"), max_size=40), st.integers(1, 5))
def test_dedupe_window_is_bounded_and_transactional(ids: list[str], capacity: int) -> None:
    window = DedupeWindow(capacity)
    for i, event_id in enumerate(ids):
        duplicate = window.seen(event_id)
        assert window.seen(event_id) is True  # staged ids count at once
        if i % 3 == 2:
            window.abort()
            assert window.seen(event_id) is duplicate  # forgotten unless committed before
        window.commit()
        assert len(window) <= capacity
