"""consume_available against the real broker: fewer records than the batch size are returned
as soon as they are there, not after the timeout (which plain ``consume(n, timeout)`` waits)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer

from callstream.consuming import consume_available
from tests.kafka_fixtures import NewTopicFactory

pytestmark = pytest.mark.integration

LONG_TIMEOUT_S = 120.0  # far beyond the test's own bound: returning means it did not wait for it


def _consumer(bootstrap: str, group: str, topic: str) -> Consumer:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    return consumer


def _call_bounded(fn: Any, bound_s: float) -> list[Message]:
    """Run ``fn`` in a thread; fail when it has not returned within ``bound_s``."""
    out: list[list[Message]] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(bound_s)
    assert out, f"still waiting after {bound_s} s (the batch wait this helper exists to avoid)"
    return out[0]


def test_returns_what_is_there_without_waiting_for_a_full_batch(
    kafka_bootstrap: str, new_topic: NewTopicFactory, group_id: str
) -> None:
    topic = new_topic("avail", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(3):
        producer.produce(topic, f"r{i}".encode())
    assert producer.flush(30) == 0
    consumer = _consumer(kafka_bootstrap, group_id, topic)
    try:
        got: list[Message] = []
        while len(got) < 3:  # the first call may return only the first record fetched
            batch = _call_bounded(lambda: consume_available(consumer, 500, LONG_TIMEOUT_S), 60)
            assert batch, "records were produced: a call must return some"
            got += batch
        assert [m.value() for m in got] == [b"r0", b"r1", b"r2"]
        # nothing left: an empty list after the (short) timeout, not an error
        assert consume_available(consumer, 500, 0.2) == []
        # max_messages 1: exactly one
        producer.produce(topic, b"r3")
        producer.produce(topic, b"r4")
        assert producer.flush(30) == 0
        one = _call_bounded(lambda: consume_available(consumer, 1, LONG_TIMEOUT_S), 60)
        assert [m.value() for m in one] == [b"r3"]
        rest = _call_bounded(lambda: consume_available(consumer, 500, LONG_TIMEOUT_S), 60)
        assert [m.value() for m in rest] == [b"r4"]
    finally:
        consumer.close()
