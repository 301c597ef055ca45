"""kill -9 of ``python -m callstream normalize`` mid-run, twice, then restart: a read_committed
reader of calls.events sees each callback's event exactly once.

The dedupe window is switched off here (``DEDUPE_WINDOW=0``) so that the transactions alone have
to deliver the guarantee: a duplicate could not be hidden by the window.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from callstream.contracts import call_event_codec
from tests.integration.test_normalizer_support import (
    PARTITIONS,
    NormalizerTopics,
    callback_body,
    produce_raw,
    read_all,
)
from tests.kafka_fixtures import NewTopicFactory, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
BATCHES = 3
PER_BATCH = 20_000
TXN_RECORDS = 4000


def count_uncommitted(bootstrap: str, topic: str) -> int:
    """Records of ``topic`` a read_uncommitted reader sees (aborted ones included)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("uncommitted"),
            "isolation.level": "read_uncommitted",
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
        count, at_end, deadline = 0, set(), time.monotonic() + 60
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    count += 1
                else:
                    at_end.add(msg.partition())
        return count
    finally:
        consumer.close()


class NormalizerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callstream", "normalize"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill9(self) -> None:
        assert self.proc is not None
        assert self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


class Progress:
    """The group's committed offsets on the raw topic, summed: records whose events are final."""

    def __init__(self, bootstrap: str, group_id: str, topic: str, events: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id})
        self.partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        # sees events before their transaction commits (and aborted ones)
        self.tail = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_name("tail"),
                "isolation.level": "read_uncommitted",
                "fetch.wait.max.ms": 10,
            }
        )
        self.tail.assign([TopicPartition(events, p, -2) for p in range(PARTITIONS)])
        self.produced = 0

    def close(self) -> None:
        self.consumer.close()
        self.tail.close()

    def wait_inside_transaction(self, proc: NormalizerProcess) -> None:
        """Until events not yet committed are on the broker: a transaction is open and has
        written (the records of every committed one are committed offsets here, 1:1)."""
        deadline = time.monotonic() + 120
        while True:
            self.produced += sum(m.error() is None for m in self.tail.consume(10_000, 0.01))
            if self.produced > self.committed():
                return
            assert proc.proc is not None and proc.proc.poll() is None, proc.tail()
            assert time.monotonic() < deadline, f"no open transaction seen\n{proc.tail()}"

    def committed(self) -> int:
        tps = self.consumer.committed(self.partitions, timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)

    def wait(self, at_least: int, proc: NormalizerProcess) -> int:
        deadline = time.monotonic() + 120
        while True:
            done = self.committed()
            if done >= at_least:
                return done
            assert proc.proc is not None and proc.proc.poll() is None, proc.tail()
            assert time.monotonic() < deadline, f"only {done} committed\n{proc.tail()}"
            time.sleep(0.01)


@pytest.fixture
def process(
    kafka_bootstrap: str, new_topic: NewTopicFactory, tmp_path: Path
) -> Iterator[tuple[NormalizerProcess, NormalizerTopics, str]]:
    topics = NormalizerTopics.create(new_topic)
    group_id = unique_name("g")
    env = {
        **os.environ,
        **topics.env(),
        "CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CALLSTREAM_HTTP_PORT": "0",
        "CALLSTREAM_LOG_FORMAT": "json",
        "CALLSTREAM_NORMALIZER_GROUP_ID": group_id,
        "CALLSTREAM_NORMALIZER_INSTANCE_ID": unique_name("kill"),
        "CALLSTREAM_NORMALIZER_CREATE_TOPICS": "false",
        "CALLSTREAM_NORMALIZER_DEDUPE_WINDOW": "0",
        "CALLSTREAM_NORMALIZER_STATIC_MEMBERSHIP": "true",  # the restart takes over at once
        "CALLSTREAM_NORMALIZER_BATCH_MAX_RECORDS": str(TXN_RECORDS),
        "CALLSTREAM_NORMALIZER_CONSUME_BATCH_RECORDS": "100",  # records reach the broker early
        "CALLSTREAM_NORMALIZER_COMMIT_INTERVAL_MS": "1000",
        "CALLSTREAM_NORMALIZER_LOOKUP_WAIT_MS": "0",
    }
    proc = NormalizerProcess(env, tmp_path / "normalizer.log")
    try:
        yield proc, topics, group_id
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


def test_kill_9_mid_run_then_restart_yields_each_event_exactly_once(
    kafka_bootstrap: str, process: tuple[NormalizerProcess, NormalizerTopics, str]
) -> None:
    proc, topics, group_id = process
    run = uuid.uuid4().hex[:8]
    transids = [f"{run}-{i}" for i in range(BATCHES * PER_BATCH)]
    batches = [transids[i : i + PER_BATCH] for i in range(0, len(transids), PER_BATCH)]

    def publish(batch: list[str]) -> None:
        produce_raw(kafka_bootstrap, topics.raw, [(t.encode(), callback_body(t)) for t in batch])

    progress = Progress(kafka_bootstrap, group_id, topics.raw, topics.events)
    try:
        publish(batches[0])
        publish(batches[1])
        proc.start()
        # first kill: after its first commit, deep in the backlog, inside an open transaction
        first = progress.wait(1, proc)
        progress.wait_inside_transaction(proc)
        proc.kill9()
        proc.start()
        # second kill: once the restarted instance has committed again, the same way
        progress.wait(first + 1, proc)
        progress.wait_inside_transaction(proc)
        proc.kill9()
        publish(batches[2])
        proc.start()
        progress.wait(len(transids), proc)
        assert proc.terminate() == 0, proc.tail()
    finally:
        progress.close()

    messages = read_all(kafka_bootstrap, topics.events)
    codec = call_event_codec()
    seen = [codec.decode(m.value())["message_id"] for m in messages]
    duplicates = len(seen) - len(set(seen))
    assert duplicates == 0, f"{duplicates} events seen twice"
    assert sorted(seen) == sorted(transids)  # each exactly once, none lost
    # the ids are the deterministic ones: the same callback always yields the same event
    first = codec.decode(messages[0].value())
    assert uuid.UUID(first["event_id"]).version == 5
    # and the kills did hit open transactions: their records are in the log, aborted
    aborted = count_uncommitted(kafka_bootstrap, topics.events) - len(messages)
    assert aborted > 0, "no kill landed inside a transaction: the test proved nothing"
