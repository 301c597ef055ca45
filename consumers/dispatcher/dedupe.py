"""Dedupe state of one partition, rebuilt from ``calls.dispatches`` on assignment.

``calls.dispatches`` is compacted, keyed by correlation id, and written with the partition of
the request (partition p of ``calls.requests`` -> partition p of ``calls.dispatches``), so the
state of a requests partition is exactly one dispatches partition read from its beginning to its
high watermark. Two facts are kept per partition:

- ``queued``: correlation id -> message id of the call the platform queued (a DUPLICATE result
  carries the original message id forward, so compaction keeping only the newest result of an id
  loses nothing). A request whose id is in ``queued`` is not called again: DUPLICATE.
- ``answered``: offsets of ``calls.requests`` records that already have a result (the result's
  ``source_offset``). A record consumed again after a crash whose result was written gets no
  second result. Retry records carry the original coordinates, so they are covered too.

Memory: a dict entry plus two short strings per queued id and one int per answered offset;
measured by ``bench/bench_dispatch.py`` (about 200 bytes per result).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from callstream.contracts import dispatch_result_codec
from callstream.kafka_config import KafkaConfig
from callstream.log import get_logger
from consumers.dispatcher.exceptions import DedupeLoadError

log = get_logger(__name__)


@dataclass(slots=True)
class PartitionDedupe:
    queued: dict[str, str | None] = field(default_factory=dict)
    answered: set[int] = field(default_factory=set)

    def record(
        self,
        correlation_id: str,
        outcome: str,
        message_id: str | None,
        source_offset: int | None,
    ) -> None:
        if outcome in ("QUEUED", "DUPLICATE") and (
            correlation_id not in self.queued or message_id is not None
        ):
            self.queued[correlation_id] = message_id
        if source_offset is not None:
            self.answered.add(source_offset)

    def __len__(self) -> int:
        return len(self.queued) + len(self.answered)


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """Low and high watermarks, retried while the broker does not know the partition yet (a
    topic created a moment ago)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10.0)
            return int(low), int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise DedupeLoadError(f"{tp.topic}[{tp.partition}]: {exc}") from exc
            time.sleep(0.5)


def load_partition(
    config: KafkaConfig,
    dispatches_topic: str,
    partition: int,
    requests_topic: str,
    *,
    timeout: float = 120.0,
) -> PartitionDedupe:
    """Read ``dispatches_topic[partition]`` from the beginning to its high watermark.

    Only results whose source is ``requests_topic[partition]`` count as answered offsets.
    Raises :class:`DedupeLoadError` if the partition cannot be read within ``timeout``.
    """
    state = PartitionDedupe()
    codec = dispatch_result_codec()
    consumer = Consumer(config)
    started = time.monotonic()
    try:
        low, high = _watermarks(consumer, TopicPartition(dispatches_topic, partition), timeout)
        if high <= low:
            return state
        consumer.assign([TopicPartition(dispatches_topic, partition, OFFSET_BEGINNING)])
        position = low
        while position < high:
            if time.monotonic() - started > timeout:
                raise DedupeLoadError(
                    f"{dispatches_topic}[{partition}]: read {position} of {high} in {timeout} s"
                )
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise DedupeLoadError(f"{dispatches_topic}[{partition}]: {err}")
                position = max(position, (msg.offset() or 0) + 1)
                value = msg.value()
                if not value:
                    continue  # a tombstone
                try:
                    result = codec.decode(value)
                except Exception as exc:  # any undecodable value is skipped, never fatal
                    log.warning(
                        "undecodable record in dispatches",
                        partition=partition,
                        offset=msg.offset(),
                        error=str(exc)[:200],
                    )
                    continue
                same_source = (
                    result.get("source_topic") == requests_topic
                    and result.get("source_partition") == partition
                )
                state.record(
                    str(result["correlation_id"]),
                    str(result["outcome"]),
                    result.get("message_id"),
                    result.get("source_offset") if same_source else None,
                )
    finally:
        consumer.close()
    log.info(
        "dedupe state loaded",
        topic=dispatches_topic,
        partition=partition,
        queued=len(state.queued),
        answered=len(state.answered),
        seconds=round(time.monotonic() - started, 3),
    )
    return state
