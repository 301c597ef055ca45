"""Shared helpers of the normalizer's integration tests (this module holds no tests).

- ``NormalizerTopics``: raw, events, DLQ and dispatches topics with unique names;
- ``running_normalizer``: the normalizer in-process (its loop on a thread), stopped on exit;
- ``callback_body`` / ``produce_raw``: callbacks as the gateway stores them (raw body, headers);
- ``put_dispatches``: DispatchResults as the dispatcher writes them (the real codec);
- ``read_all``: a read_committed reader of a topic up to its end.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from callstream import headers as h
from callstream.contracts import dispatch_result_codec
from callstream.kafka_config import consumer_config
from callstream.settings import Settings
from consumers.normalizer.lookup import DispatchLookup
from consumers.normalizer.pipeline import Pipeline
from consumers.normalizer.settings import NormalizerSettings
from tests.kafka_fixtures import NewTopicFactory, unique_name

PARTITIONS = 3


@dataclass(frozen=True)
class NormalizerTopics:
    raw: str
    events: str
    dlq: str
    dispatches: str

    @classmethod
    def create(cls, new_topic: NewTopicFactory) -> NormalizerTopics:
        return cls(
            raw=new_topic("raw", PARTITIONS),
            events=new_topic("events", PARTITIONS),
            dlq=new_topic("cbdlq", 1),
            dispatches=new_topic("dispatches", PARTITIONS, {"cleanup.policy": "compact"}),
        )

    def env(self) -> dict[str, str]:
        return {
            "CALLSTREAM_TOPIC_CALLBACKS_RAW": self.raw,
            "CALLSTREAM_TOPIC_EVENTS": self.events,
            "CALLSTREAM_TOPIC_CALLBACKS_DLQ": self.dlq,
            "CALLSTREAM_TOPIC_DISPATCHES": self.dispatches,
        }

    def settings(self, bootstrap: str) -> Settings:
        return Settings(
            kafka_bootstrap_servers=bootstrap,
            topic_callbacks_raw=self.raw,
            topic_events=self.events,
            topic_callbacks_dlq=self.dlq,
            topic_dispatches=self.dispatches,
            http_port=0,
        )


def normalizer_settings(group_id: str, **overrides: Any) -> NormalizerSettings:
    values: dict[str, Any] = {
        "group_id": group_id,
        "instance_id": unique_name("n"),
        "commit_interval_ms": 50,
        "create_topics": False,
        "lookup_wait_ms": 3000,
        **overrides,
    }
    return NormalizerSettings(**values)


@dataclass
class RunningNormalizer:
    pipeline: Pipeline
    lookup: DispatchLookup
    thread: threading.Thread
    stop: threading.Event
    errors: list[BaseException]


@contextmanager
def running_normalizer(settings: Settings, ns: NormalizerSettings) -> Iterator[RunningNormalizer]:
    lookup = DispatchLookup(
        consumer_config(settings, group_id=f"{ns.group_id}-lookup", client_id="test-lookup"),
        settings.topic_dispatches,
        capacity=ns.lookup_cache_size,
    )
    lookup.start()
    pipeline = Pipeline(settings, ns, lookup=lookup)
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            pipeline.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="normalizer", daemon=True)
    thread.start()
    running = RunningNormalizer(pipeline, lookup, thread, stop, errors)
    try:
        yield running
    finally:
        stop.set()
        thread.join(60)
        lookup.close()
        assert not thread.is_alive(), "the normalizer did not stop"


def callback_body(
    transid: str,
    status: str = "ANSWERED",
    code: str = "7519",
    *,
    correlation_id: str | None = "",
    callback_data: str | None = "cb",
    timestamp: str | None = None,
    destination: str = "14155550123",
) -> bytes:
    notification: dict[str, Any] = {
        "deliveryInfo": {
            "timeStamp": timestamp or datetime.now(UTC).isoformat(timespec="milliseconds"),
            "Description": status.title(),
            "code": code,
            "deliveryChannel": "voice",
            "additionalInfo": "",
            "destination": destination,
            "destinationType": "msisdn",
            "deliveryStatus": status,
        },
        "subtid": "1",
        "transid": transid,
    }
    if correlation_id is not None:
        notification["correlationid"] = correlation_id or f"corr-{transid}"
    if callback_data is not None:
        notification["callbackData"] = callback_data
    return orjson.dumps({"deliveryInfoNotification": notification})


def gateway_headers(received_at_ms: int | None = None) -> list[tuple[str, bytes]]:
    received = received_at_ms if received_at_ms is not None else int(time.time() * 1000)
    return [
        (h.RECEIVED_AT, str(received).encode()),
        (h.REQUEST_ID, uuid.uuid4().hex.encode()),
        (h.AUTH_METHOD, b"none"),
        (h.CONTENT_TYPE, b"application/json"),
    ]


def produce_raw(bootstrap: str, topic: str, bodies: list[tuple[bytes | None, bytes]]) -> None:
    """(key, body) pairs, written as the gateway writes them."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, body in bodies:
        producer.produce(topic, body, key, headers=gateway_headers())  # type: ignore[arg-type]
    assert producer.flush(30) == 0


def dispatch_result(message_id: str, correlation_id: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "correlation_id": correlation_id,
        "message_id": message_id,
        "outcome": "QUEUED",
        "http_status": 201,
        "platform_code": None,
        "description": None,
        "attempts": 1,
        "msisdn": "+14155550123",
        "requested_at": now,
        "completed_at": now,
        "attributes": {"campaign": "spring", "tenant": "t1"},
        "callback_data": f"data-{correlation_id}",
        **extra,
    }


def put_dispatches(
    bootstrap: str,
    topic: str,
    results: list[dict[str, Any]],
    producer: Producer | None = None,
) -> None:
    """Write DispatchResults with the real codec and wait for the broker's acknowledgement."""
    codec = dispatch_result_codec()
    if producer is None:
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for result in results:
        producer.produce(topic, codec.encode(result), result["correlation_id"].encode())
    assert producer.flush(30) == 0


def read_all(
    bootstrap: str, topic: str, *, want: int | None = None, timeout: float = 60.0
) -> list[Message]:
    """read_committed, from the beginning: until ``want`` records, or else to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("reader"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    out: list[Message] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = sorted(meta.partitions)
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        deadline = time.monotonic() + timeout
        at_end: set[int] = set()
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            if not batch and want is None and len(at_end) == len(partitions):
                break
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(err)
                    at_end.add(msg.partition() or 0)
                    continue
                at_end.discard(msg.partition() or 0)
                out.append(msg)
            if want is not None and len(out) >= want:
                break
            if want is None and len(at_end) == len(partitions):
                break
    finally:
        consumer.close()
    return out


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
