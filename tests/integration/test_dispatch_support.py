"""Shared helpers of the dispatcher's integration tests (this module holds no tests).

- ``dispatch_topics``: the five topics with unique names (3 partitions; dispatches compacted);
- ``platform``: the real sandbox (``tests/sandbox_fixtures.py``'s ``sandbox_factory``) on a free
  loopback port, callbacks off and the duplicate window off, so a call placed twice shows as two
  acceptances in the ledger;
- ``run_dispatcher``: the dispatcher in-process, as an asyncio task;
- ``publish`` / ``read_topic``: real Kafka clients; ``read_topic`` reads to the high watermarks.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from consumers.dispatcher.service import DispatchService
from consumers.dispatcher.settings import DispatchSettings
from sandbox.client import SandboxClient
from sandbox.server import BackgroundServer
from tests.sandbox_fixtures import SandboxHandle

PARTITIONS = 3
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Topics:
    requests: str
    retry: str
    dlq: str
    dispatches: str
    events: str

    def env(self) -> dict[str, str]:
        return {
            "CALLSTREAM_TOPIC_REQUESTS": self.requests,
            "CALLSTREAM_TOPIC_REQUESTS_RETRY": self.retry,
            "CALLSTREAM_TOPIC_REQUESTS_DLQ": self.dlq,
            "CALLSTREAM_TOPIC_DISPATCHES": self.dispatches,
            "CALLSTREAM_TOPIC_EVENTS": self.events,
        }


@dataclass
class Platform:
    url: str
    key: str
    client: SandboxClient
    server: BackgroundServer


@pytest.fixture
def dispatch_topics(new_topic: Any) -> Topics:
    compacted = {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"}
    return Topics(
        requests=new_topic("req", PARTITIONS),
        retry=new_topic("retry", PARTITIONS),
        dlq=new_topic("dlq", 1),
        dispatches=new_topic("disp", PARTITIONS, compacted),
        events=new_topic("ev", PARTITIONS),
    )


@pytest.fixture
def platform(sandbox_factory: Callable[..., SandboxHandle]) -> Platform:
    """The colleagues' ``sandbox_factory`` with callbacks and the duplicate window off."""
    handle = sandbox_factory(callbacks=False, duplicate_window_seconds=0, seed=7)
    return Platform(handle.url, handle.service_key, handle.client, handle.server)


def dispatch_settings(
    bootstrap: str, topics: Topics, platform: Platform, group: str, **overrides: Any
) -> DispatchSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "topic_requests": topics.requests,
        "topic_requests_retry": topics.retry,
        "topic_requests_dlq": topics.dlq,
        "topic_dispatches": topics.dispatches,
        "topic_events": topics.events,
        "platform_url": platform.url,
        "platform_service_key": platform.key,
        "notify_url": "http://127.0.0.1:9/callbacks",
        "dispatch_group_id": group,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "dispatch_request_timeout_s": 2.0,
        "dispatch_backoff_base_s": 0.05,
        "dispatch_backoff_cap_s": 2.0,
        "dispatch_in_memory_retry_max_s": 0.5,
        "dispatch_probe_interval_s": 0.3,
        "dispatch_commit_interval_s": 0.2,
        "dispatch_shutdown_deadline_s": 5.0,
        "dispatch_revoke_deadline_s": 5.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return DispatchSettings(**values)


def dispatch_env(
    bootstrap: str, topics: Topics, platform: Platform, group: str, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSTREAM_")}
    env.update(topics.env())
    env.update(
        {
            "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CALLSTREAM_PLATFORM_URL": platform.url,
            "CALLSTREAM_PLATFORM_SERVICE_KEY": platform.key,
            "CALLSTREAM_NOTIFY_URL": "http://127.0.0.1:9/callbacks",
            "CALLSTREAM_DISPATCH_GROUP_ID": group,
            "CALLSTREAM_HTTP_HOST": "127.0.0.1",
            "CALLSTREAM_HTTP_PORT": "0",
            "CALLSTREAM_DISPATCH_REQUEST_TIMEOUT_S": "2",
            "CALLSTREAM_DISPATCH_BACKOFF_BASE_S": "0.05",
            "CALLSTREAM_DISPATCH_BACKOFF_CAP_S": "2",
            "CALLSTREAM_DISPATCH_IN_MEMORY_RETRY_MAX_S": "0.5",
            "CALLSTREAM_DISPATCH_COMMIT_INTERVAL_S": "0.2",
            "CALLSTREAM_LOG_LEVEL": "WARNING",
            "CALLSTREAM_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def dispatcher_command() -> list[str]:
    return [sys.executable, "-m", "callstream", "dispatch"]


def call_request(cid: str, n: int = 0, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "correlation_id": cid,
        "caller_id": "+14155550100",
        "msisdn": f"+1415555{n % 10000:04d}",
        "content": (
            {"type": "media", "media_id": "prompt-1"}
            if n % 2
            else {
                "type": "tts",
                "text": f"Reminder {n}",
                "language": "en-US",
                "voice": "GuyNeural",
                "region": "eastus",
                "voice_type": "neural",
                "gender": "male",
            }
        ),
        "priority": ["LOW", "MEDIUM", "HIGH", None][n % 4],
        "callback_data": f"cb-{n}",
        "attributes": {"campaign": "test"},
        "created_at": int(time.time() * 1000),
    }
    record.update(overrides)
    return record


def encode(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def publish(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(30) != 0:
        raise RuntimeError("test records not delivered")


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of ``topic`` (read_committed), from the beginning to the high watermarks."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends: dict[int, int] = {}
        assignment = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        out: list[Record] = []
        if not assignment:
            return out
        consumer.assign(assignment)
        positions = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: {positions} of {ends}")
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                p, o = int(msg.partition() or 0), int(msg.offset() or 0)
                positions[p] = max(positions[p], o + 1)
                raw_headers: Any = msg.headers() or []
                headers = {str(k): bytes(v or b"") for k, v in raw_headers}
                value = msg.value()
                out.append(Record(msg.key(), value or b"", headers, p, o))
        return out
    finally:
        consumer.close()


def outcome_count(service: DispatchService) -> int:
    total = 0.0
    for metric in service.metrics.outcomes.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return int(total)


async def wait_until(
    predicate: Callable[[], bool], seconds: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


@asynccontextmanager
async def run_dispatcher(settings: DispatchSettings) -> AsyncIterator[DispatchService]:
    service = DispatchService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_until(lambda: service.readiness()[0] or task.done(), 60, "dispatcher ready")
        if task.done():
            task.result()
        yield service
    finally:
        stop.set()
        code = await asyncio.wait_for(task, 60)
        assert code == 0, "dispatcher ended with a fatal error"


@dataclass
class Outputs:
    requests: list[Record]
    results: list[dict[str, Any]]
    events: list[dict[str, Any]]
    dlq: list[Record]
    retry: list[Record]

    def results_by_source(self) -> dict[tuple[int, int], list[dict[str, Any]]]:
        by: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for r in self.results:
            by.setdefault((r["source_partition"], r["source_offset"]), []).append(r)
        return by

    def assert_one_result_and_event_per_request(self, requests_topic: str) -> None:
        by = self.results_by_source()
        coords = {(r.partition, r.offset) for r in self.requests}
        missing = coords - set(by)
        assert not missing, f"{len(missing)} requests without a result, e.g. {sorted(missing)[:5]}"
        extra = {k: v for k, v in by.items() if len(v) != 1 or k not in coords}
        assert not extra, f"records with more than one result: {list(extra.items())[:3]}"
        assert all(r["source_topic"] == requests_topic for r in self.results)
        assert len(self.results) == len(self.requests)
        assert len(self.events) == len(self.requests)
        ids = [e["event_id"] for e in self.events]
        assert len(set(ids)) == len(ids), "event ids are not unique"
        by_event = {(e["correlation_id"], e["event_type"]) for e in self.events}
        for r in self.results:
            kind = "DISPATCHED" if r["outcome"] == "QUEUED" else "DISPATCH_FAILED"
            assert (r["correlation_id"], kind) in by_event

    def assert_one_result_and_event_per_request_allowing_replays(
        self, requests_topic: str, replays: int
    ) -> None:
        """After a crash: still exactly one result per request; an event may have been written
        again (same deterministic event id) for at most ``replays`` records."""
        by = self.results_by_source()
        coords = {(r.partition, r.offset) for r in self.requests}
        assert coords == set(by), f"{len(coords - set(by))} requests without a result"
        assert all(len(v) == 1 for v in by.values()), "a request with two results"
        assert len(self.results) == len(self.requests)
        ids = [e["event_id"] for e in self.events]
        assert len(ids) - len(set(ids)) <= replays
        results = {(r["correlation_id"], r["outcome"]) for r in self.results}
        events = {(e["correlation_id"], e["platform_status"]) for e in self.events}
        assert results <= events, "a result without its event"


def read_outputs(bootstrap: str, topics: Topics) -> Outputs:
    from callstream.contracts import call_event_codec, dispatch_result_codec

    results = [
        dispatch_result_codec().decode(r.value) for r in read_topic(bootstrap, topics.dispatches)
    ]
    events = [call_event_codec().decode(r.value) for r in read_topic(bootstrap, topics.events)]
    return Outputs(
        requests=read_topic(bootstrap, topics.requests),
        results=results,
        events=events,
        dlq=read_topic(bootstrap, topics.dlq),
        retry=read_topic(bootstrap, topics.retry),
    )
