"""Result, event and retry-header records; settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pydantic
import pytest

from callstream.contracts import call_event_codec, dispatch_result_codec
from consumers.dispatcher.dedupe import PartitionDedupe
from consumers.dispatcher.results import (
    EVENT_NAMESPACE,
    Source,
    call_event,
    dispatch_result,
    event_id,
    event_key,
    retry_headers,
    retry_state,
)
from consumers.dispatcher.settings import DispatchSettings

SOURCE = Source("calls.requests", 2, 41)


def result(outcome: str = "QUEUED", message_id: str | None = "m-1") -> dict[str, object]:
    return dict(
        dispatch_result(
            correlation_id="c-1",
            outcome=outcome,  # type: ignore[arg-type]
            msisdn="+14155550123",
            requested_at=datetime(2026, 1, 1, tzinfo=UTC),
            attempts=2,
            source=SOURCE,
            http_status=201,
            message_id=message_id,
            platform_code="7102" if outcome == "REJECTED" else None,
            attributes={"tenant": "t"},
            callback_data="cb",
        )
    )


def test_result_and_event_encode_with_the_schemas() -> None:
    r = result()
    decoded = dispatch_result_codec().decode(dispatch_result_codec().encode(r))
    assert decoded["source_offset"] == 41
    assert decoded["callback_data"] == "cb"
    event = call_event(r, SOURCE)  # type: ignore[arg-type]
    assert call_event_codec().decode(call_event_codec().encode(event))["event_type"] == "DISPATCHED"
    assert event["terminal"] is False
    assert event_key(r) == b"m-1"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "reason", "terminal"),
    [("REJECTED", "REJECTED", True), ("FAILED", "OTHER", True), ("DUPLICATE", None, False)],
)
def test_other_outcomes_are_dispatch_failed(
    outcome: str, reason: str | None, terminal: bool
) -> None:
    event = call_event(result(outcome, None), SOURCE)  # type: ignore[arg-type]
    assert event["event_type"] == "DISPATCH_FAILED"
    assert event["reason"] == reason
    assert event["terminal"] is terminal
    assert event_key(result(outcome, None)) == b"c-1"  # type: ignore[arg-type]


def test_event_id_is_deterministic() -> None:
    assert event_id("c", "QUEUED", SOURCE) == event_id("c", "QUEUED", SOURCE)
    assert event_id("c", "QUEUED", SOURCE) != event_id(
        "c", "QUEUED", Source("calls.requests", 2, 42)
    )


@pytest.mark.parametrize(
    ("cid", "outcome", "source"),
    [
        ("c", "QUEUED", SOURCE),
        ("ünïcode-id ☎", "FAILED", Source("calls.requests.retry", 11, 2**40)),
        ("x" * 50, "DUPLICATE", Source("t", 0, 0)),
    ],
)
def test_event_id_is_the_uuid5_of_its_name(cid: str, outcome: str, source: Source) -> None:
    """The fast path gives exactly ``uuid5`` (ids already written must not change)."""
    name = f"{cid}|{outcome}|{source.topic}|{source.partition}|{source.offset}"
    assert event_id(cid, outcome, source) == str(uuid.uuid5(EVENT_NAMESPACE, name))


def test_retry_headers_round_trip_and_keep_the_original_ones() -> None:
    original = [("content-type", b"application/json"), ("callstream.attempts", b"1")]
    headers = retry_headers(
        original, source=SOURCE, attempts=3, failures=2, first_seen_ms=1000, due_ms=5000
    )
    assert ("content-type", b"application/json") in headers
    assert [k for k, _ in headers].count("callstream.attempts") == 1
    state = retry_state(headers, "calls.requests.retry", 2, 7)
    assert (state.attempts, state.failures, state.first_seen_ms, state.due_ms) == (3, 2, 1000, 5000)
    assert state.source == SOURCE
    fresh = retry_state(None, "calls.requests", 0, 0)
    assert fresh.source is None
    assert fresh.attempts == 0


def test_dedupe_state_keeps_queued_ids_and_answered_offsets() -> None:
    state = PartitionDedupe()
    state.record("a", "QUEUED", "m-1", 10)
    state.record("a", "DUPLICATE", None, 11)  # keeps the original message id
    state.record("b", "FAILED", None, 12)
    assert state.queued == {"a": "m-1"}
    assert state.answered == {10, 11, 12}


def test_settings_need_a_service_key_and_never_print_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLSTREAM_PLATFORM_SERVICE_KEY", raising=False)
    with pytest.raises(pydantic.ValidationError):
        DispatchSettings()
    monkeypatch.setenv("CALLSTREAM_PLATFORM_SERVICE_KEY", "s3cret-key")
    monkeypatch.setenv("CALLSTREAM_DISPATCH_RATE", "25")
    settings = DispatchSettings()
    assert settings.dispatch_rate == 25.0
    assert settings.dispatch_max_in_flight == 64
    assert settings.dispatch_group_id == "callstream-dispatcher"
    assert "s3cret-key" not in repr(settings)
    assert "s3cret-key" not in str(settings.redacted())
    assert settings.messages_url == "https://api.us.webexconnect.io/v2/messages"


def test_in_flight_gauge_reads_the_requests_on_the_wire() -> None:
    from consumers.dispatcher.metrics import DispatchMetrics

    metrics = DispatchMetrics()

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("callstream_dispatch_in_flight")

    assert gauge() == 0
    metrics.requests_on_wire += 3
    assert gauge() == 3
    metrics.requests_on_wire -= 3
    assert gauge() == 0
