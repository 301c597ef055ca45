"""The normalizer on the real Kafka: raw callbacks -> events inside transactions, bad input to the
DLQ with its reasons, correlation ids filled in from calls.dispatches, repeated callbacks dropped
(also across a restart), and a zombie fenced by its successor."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from callstream import headers as h
from callstream.contracts import call_event_codec
from consumers.normalizer.cli import HealthThread
from consumers.normalizer.exceptions import ProducerFencedError
from tests.integration.test_normalizer_support import (
    NormalizerTopics,
    callback_body,
    dispatch_result,
    normalizer_settings,
    produce_raw,
    put_dispatches,
    read_all,
    running_normalizer,
    wait_for,
)
from tests.kafka_fixtures import NewTopicFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
CODEC = call_event_codec()
SEQUENCE = [  # an answered call hung up during play, then a busy one
    ("OFFERED", "7407"),
    ("ACCEPTED", "7408"),
    ("ANSWERED", "7519"),
    ("Released", "7405"),
    ("DISCONNECTED", "7410"),
    ("DROPPED", "7409"),
]


def decode_all(messages: list[Any]) -> list[dict[str, Any]]:
    return [CODEC.decode(m.value()) for m in messages]


@pytest.fixture
def topics(new_topic: NewTopicFactory) -> NormalizerTopics:
    return NormalizerTopics.create(new_topic)


def test_callbacks_become_events_in_transactions(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    settings = topics.settings(kafka_bootstrap)
    calls = [str(uuid.uuid4()) for _ in range(20)]
    bodies = [
        (t.encode(), callback_body(t, status, code)) for t in calls for status, code in SEQUENCE
    ]
    produce_raw(kafka_bootstrap, topics.raw, bodies)
    ns = normalizer_settings(group_id, batch_max_records=25)
    with running_normalizer(settings, ns) as running:
        wait_for(
            lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= len(bodies),
            90,
            "every event",
        )
        assert not running.errors
    messages = read_all(kafka_bootstrap, topics.events)
    events = decode_all(messages)
    assert len(events) == len(bodies)
    assert len({e["event_id"] for e in events}) == len(bodies)
    for message, event in zip(messages, events, strict=True):
        assert message.key() == event["message_id"].encode()  # keyed by message_id
        assert event["source"] == "PLATFORM"
        assert event["msisdn"] == "+14155550123"
    per_call = {t: sorted(e["event_type"] for e in events if e["message_id"] == t) for t in calls}
    expected = sorted(["OFFERED", "ACCEPTED", "ANSWERED", "RELEASED", "DISCONNECTED", "DROPPED"])
    assert all(types == expected for types in per_call.values())
    assert sum(e["terminal"] for e in events) == len(calls)  # one terminal event per call
    # transactions: several were committed (batches of 25), and every raw offset is committed
    assert running.pipeline.transactions_committed >= len(bodies) // 25
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group_id})
    try:
        committed = consumer.committed(
            [TopicPartition(topics.raw, p) for p in range(3)], timeout=10
        )
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
        assert [tp.offset for tp in committed] == ends
    finally:
        consumer.close()


def test_bad_input_goes_to_the_dlq_with_reasons_and_the_loop_goes_on(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    settings = topics.settings(kafka_bootstrap)
    bad = [
        (b"k1", b'{"deliveryInfoNotification": {"deliveryInfo": {"code": "7407",}}}'),
        (None, b"\x00\x01 not json at all"),
        (b"k3", b'["an", "array"]'),
        (b"k4", b'{"deliveryInfoNotification": {"deliveryInfo": {"code": "7407"}}}'),
    ]
    good = [(t.encode(), callback_body(t)) for t in (str(uuid.uuid4()) for _ in range(6))]
    mixed = [good[0], bad[0], good[1], bad[1], good[2], bad[2], good[3], bad[3], *good[4:]]
    produce_raw(kafka_bootstrap, topics.raw, mixed)
    with running_normalizer(settings, normalizer_settings(group_id)) as running:
        wait_for(
            lambda: len(read_all(kafka_bootstrap, topics.dlq, timeout=5)) >= len(bad),
            90,
            "the dead letters",
        )
        wait_for(
            lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= len(good),
            90,
            "the good events",
        )
        assert not running.errors
    dead = read_all(kafka_bootstrap, topics.dlq)
    by_value = sorted(((m.key(), m.value()) for m in dead), key=lambda kv: kv[1])
    assert by_value == sorted(bad, key=lambda kv: kv[1])  # original keys and bytes, untouched
    for message in dead:
        headers = message.headers() or []
        classes = h.header_str(headers, h.ERROR_CLASS)  # type: ignore[arg-type]
        assert classes is not None
        assert classes.endswith(("CallbackNotJsonError", "CallbackShapeError"))
        assert h.header_str(headers, h.ORIGINAL_TOPIC) == topics.raw  # type: ignore[arg-type]
        assert h.header_int(headers, h.ORIGINAL_OFFSET) is not None  # type: ignore[arg-type]
        assert h.header_str(headers, h.ERROR_STAGE) == "parse"  # type: ignore[arg-type]
        assert h.header_value(headers, h.REQUEST_ID)  # type: ignore[arg-type]  # gateway's kept
    shaped = next(m for m in dead if m.key() == b"k4")
    reasons = h.header_str(shaped.headers(), h.ERROR_REASONS)  # type: ignore[arg-type]
    assert reasons == "deliveryInfoNotification: neither transid nor correlationid"
    events = decode_all(read_all(kafka_bootstrap, topics.events))
    assert sorted(e["message_id"] for e in events) == sorted(k.decode() for k, _ in good)


def test_missing_ids_are_filled_in_from_dispatches(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    settings = topics.settings(kafka_bootstrap)
    early, late, unknown = (str(uuid.uuid4()) for _ in range(3))
    put_dispatches(kafka_bootstrap, topics.dispatches, [dispatch_result(early, "corr-early")])
    with running_normalizer(settings, normalizer_settings(group_id)) as running:
        # written after the normalizer started, just before its callback: the lookup waits for
        # the reader to catch up with the dispatches topic instead of emitting without it
        put_dispatches(kafka_bootstrap, topics.dispatches, [dispatch_result(late, "corr-late")])
        produce_raw(
            kafka_bootstrap,
            topics.raw,
            [
                (t.encode(), callback_body(t, "DISCONNECTED", "7410", correlation_id=None,
                                           callback_data=None))
                for t in (early, late, unknown)
            ],
        )  # fmt: skip
        wait_for(
            lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= 3, 90, "events"
        )
        assert not running.errors
        metrics = running.pipeline.metrics
        wait_for(lambda: metrics.misses._value.get() >= 1, 10, "the miss metric")
        assert metrics.hits._value.get() == 2
    events = {e["message_id"]: e for e in decode_all(read_all(kafka_bootstrap, topics.events))}
    assert events[early]["correlation_id"] == "corr-early"
    assert events[early]["callback_data"] == "data-corr-early"
    assert events[early]["attributes"] == {"campaign": "spring", "tenant": "t1"}
    assert events[late]["correlation_id"] == "corr-late"
    assert events[unknown]["correlation_id"] is None  # emitted anyway, with what is known
    assert events[unknown]["attributes"] == {}


def test_repeated_callbacks_are_dropped_also_after_a_restart(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    settings = topics.settings(kafka_bootstrap)
    transid = str(uuid.uuid4())
    body = callback_body(transid, "Released", "7405", timestamp="2024-09-05T04:03:01.708Z")
    retried = callback_body(  # the platform's retry: same event, a different raw record
        transid, "RELEASED", "7405", timestamp="2024-09-05T09:33:01.708+05:30",
        destination="+14155550123",
    )  # fmt: skip
    other = callback_body(transid, "DROPPED", "7409", timestamp="2024-09-05T04:03:01.708Z")
    produce_raw(kafka_bootstrap, topics.raw, [(transid.encode(), b) for b in (body, retried)])
    with running_normalizer(settings, normalizer_settings(group_id)) as running:
        wait_for(lambda: running.pipeline.metrics.duplicates._value.get() >= 1, 60, "the drop")
        assert not running.errors
    # a new instance (fresh memory) rebuilds the window from calls.events
    produce_raw(kafka_bootstrap, topics.raw, [(transid.encode(), b) for b in (body, other)])
    with running_normalizer(settings, normalizer_settings(group_id)) as running:
        wait_for(lambda: running.pipeline.metrics.duplicates._value.get() >= 1, 60, "the drop")
        wait_for(
            lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= 2, 60, "DROPPED"
        )
        assert not running.errors
    events = decode_all(read_all(kafka_bootstrap, topics.events))
    assert sorted(e["event_type"] for e in events) == ["DROPPED", "RELEASED"]


def test_a_zombie_is_fenced_by_its_successor(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    settings = topics.settings(kafka_bootstrap)
    ns = normalizer_settings(group_id, static_membership=False, commit_interval_ms=200)
    with running_normalizer(settings, ns) as zombie:
        produce_raw(kafka_bootstrap, topics.raw, [(b"a", callback_body("a"))])
        wait_for(lambda: zombie.pipeline.transactions_committed >= 1, 60, "a first commit")
        with running_normalizer(settings, ns) as successor:  # same transactional id
            wait_for(lambda: successor.pipeline.readiness()[0], 60, "the successor")
            produce_raw(
                kafka_bootstrap,
                topics.raw,
                [(f"k{i}".encode(), callback_body(f"k{i}")) for i in range(50)],
            )
            wait_for(lambda: not zombie.thread.is_alive(), 90, "the zombie to stop")
            assert len(zombie.errors) == 1
            assert isinstance(zombie.errors[0], ProducerFencedError)
            wait_for(
                lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= 51,
                90,
                "every event",
            )
            assert not successor.errors
        zombie.errors.clear()
    events = decode_all(read_all(kafka_bootstrap, topics.events))
    assert len(events) == 51


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_readiness_and_metrics(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    settings = topics.settings(kafka_bootstrap).model_copy(update={"http_host": "127.0.0.1"})
    with running_normalizer(settings, normalizer_settings(group_id)) as running:
        health = HealthThread(settings, running.pipeline.metrics, running.pipeline)
        health.start()
        try:
            base = f"http://127.0.0.1:{health.port}"
            assert _get(f"{base}/healthz")[0] == 200
            wait_for(lambda: _get(f"{base}/readyz")[0] == 200, 60, "readiness")
            produce_raw(
                kafka_bootstrap,
                topics.raw,
                [(b"m1", callback_body("m1", "REJECTED", "7402")), (b"x", b"not json")],
            )

            def counted() -> bool:
                body = _get(f"{base}/metrics")[1]
                return (
                    'callstream_normalizer_events_total{event_type="REJECTED"} 1.0' in body
                    and 'callstream_normalizer_dead_letters_total{stage="parse"} 1.0' in body
                )

            wait_for(counted, 60, "the metrics")
            body = _get(f"{base}/metrics")[1]
            assert 'callstream_normalizer_transactions_total{result="committed"}' in body
            assert "callstream_normalizer_lookups_total" in body
        finally:
            health.stop()
        running.stop.set()
        running.thread.join(60)
        assert running.pipeline.readiness() == (False, "not running")


def test_rebalances_between_two_instances_lose_and_duplicate_nothing(
    kafka_bootstrap: str, topics: NormalizerTopics, group_id: str
) -> None:
    """A second instance joins mid-stream, then the first leaves: partitions move twice while
    records flow; with the dedupe window off, only the transactions keep it exact."""
    settings = topics.settings(kafka_bootstrap)
    run = uuid.uuid4().hex[:8]
    transids = [f"{run}-{i}" for i in range(6000)]
    chunks = [transids[i : i + 1000] for i in range(0, len(transids), 1000)]

    def publish(chunk: list[str]) -> None:
        produce_raw(kafka_bootstrap, topics.raw, [(t.encode(), callback_body(t)) for t in chunk])

    def options() -> Any:
        return normalizer_settings(
            group_id, dedupe_window=0, consume_batch_records=50, batch_max_records=500
        )

    publish(chunks[0])
    with running_normalizer(settings, options()) as first:
        wait_for(lambda: first.pipeline.records_committed > 0, 60, "the first instance")
        publish(chunks[1])
        with running_normalizer(settings, options()) as second:
            wait_for(
                lambda: (
                    second.pipeline.readiness()[0]
                    and second.pipeline.readiness()[1] != "0 partitions"
                ),
                90,
                "the second instance to own a partition",
            )
            publish(chunks[2])
            wait_for(lambda: second.pipeline.records_committed > 0, 90, "its first commit")
            publish(chunks[3])
            first.stop.set()  # leaves the group: its partitions move to the second
            first.thread.join(60)
            publish(chunks[4])
            publish(chunks[5])
            wait_for(
                lambda: len(read_all(kafka_bootstrap, topics.events, timeout=5)) >= len(transids),
                120,
                "every event",
            )
            assert not first.errors
            assert not second.errors
    seen = [CODEC.decode(m.value())["message_id"] for m in read_all(kafka_bootstrap, topics.events)]
    assert len(seen) == len(set(seen)), "an event was committed twice"
    assert sorted(seen) == sorted(transids)
