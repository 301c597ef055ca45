"""Rebuild the dedupe window from what is already in ``calls.events``.

Read with read_committed, the last ``count`` records (spread over the partitions) are exactly the
events committed most recently, whoever committed them; their ids seed the
:class:`~consumers.normalizer.dedupe.DedupeWindow`. The event id is the first field of the Avro
body, so it is read without decoding the record; other wire forms go through the codec.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from callstream.contracts import call_event_codec
from callstream.contracts.codecs import SINGLE_OBJECT_MARKER
from callstream.exceptions import ContractError
from callstream.log import get_logger

log = get_logger(__name__)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def event_id_of(value: bytes | None) -> str | None:
    """The event_id of a CallEvent record in any wire form; None when unreadable."""
    if not value:
        return None
    try:
        if value[:2] == SINGLE_OBJECT_MARKER and len(value) > 10:
            length, pos = _read_varint(value, 10)
            if 0 < length <= len(value) - pos:
                return value[pos : pos + length].decode()
        record = call_event_codec().decode(value)
        found = record.get("event_id")
        return found if isinstance(found, str) else None
    except (ValueError, IndexError, ContractError):
        return None


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """Retry transient errors (a leader not yet known) until ``deadline``."""
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                tp, timeout=max(deadline - time.monotonic(), 1)
            )
            return low, high
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_recent_event_ids(
    config: dict[str, Any], topic: str, count: int, timeout: float = 30.0
) -> list[str]:
    """Ids of about the last ``count`` committed events of ``topic`` (oldest first per partition).

    Bounded by ``timeout``: an open transaction of another instance ends the read at its start
    (read_committed stops at the last stable offset), it never waits for it.
    """
    if count <= 0:
        return []
    consumer = Consumer(
        {
            **config,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    ids: list[str] = []
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        share = -(-count // len(meta.partitions))
        assignment: list[TopicPartition] = []
        ends: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        for p in meta.partitions:
            low, high = _watermarks(consumer, TopicPartition(topic, p), deadline)
            if high > low:
                assignment.append(TopicPartition(topic, p, max(low, high - share)))
                ends[p] = high
        if not assignment:
            return []
        consumer.assign(assignment)
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                partition, offset = msg.partition(), msg.offset()
                if partition is None or offset is None or partition not in ends:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        del ends[partition]
                    continue
                found = event_id_of(msg.value())
                if found is not None:
                    ids.append(found)
                if offset + 1 >= ends[partition]:
                    del ends[partition]
        if ends:
            log.warning("dedupe rebuild stopped at its time bound", partitions=sorted(ends))
    except KafkaException as exc:
        log.warning("dedupe rebuild failed; starting with what was read", error=str(exc))
    finally:
        consumer.close()
    return ids
