"""message_id -> what ``calls.dispatches`` knows of the call (correlation id, callback data,
msisdn, attributes), for the callbacks that leave them out.

A daemon thread reads every partition of the dispatches topic with its own consumer (assigned,
no group, nothing committed), continuously, into a bounded LRU. It starts ``capacity``
records before the end (spread over the partitions): the recent calls are the ones callbacks
still arrive for. Only results carrying a ``message_id`` (QUEUED) are kept.

When a batch holds message ids the cache does not know, the pipeline asks for the high
watermarks of the dispatches topic at that moment and :meth:`DispatchLookup.wait_until` the
reader has read up to them, bounded by ``lookup_wait_ms``, then looks again and emits with what
is known. A result the dispatcher has not written yet is a miss (counted), never a stall.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from callstream.consuming import consume_available
from callstream.contracts import dispatch_result_codec
from callstream.exceptions import ContractError
from callstream.log import get_logger
from consumers.normalizer.transform import DispatchInfo

log = get_logger(__name__)
OFFSET_BEGINNING = -2


class DispatchLookup:
    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        *,
        capacity: int,
        metadata_timeout: float = 10.0,
    ) -> None:
        self._config = {
            **config,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
        self.topic = topic
        self.capacity = capacity
        self._metadata_timeout = metadata_timeout
        self._cache: OrderedDict[str, DispatchInfo] = OrderedDict()
        self._positions: dict[int, int] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._probe: Consumer | None = None  # idle client for watermark queries (see below)
        self.decode_errors = 0
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        consumer = Consumer(self._config)
        try:
            meta = consumer.list_topics(self.topic, timeout=self._metadata_timeout)
        except KafkaException:
            consumer.close()
            raise
        topic_meta = meta.topics.get(self.topic)
        partitions = sorted(topic_meta.partitions) if topic_meta and not topic_meta.error else []
        if not partitions:
            log.warning("dispatches topic missing: lookups will all miss", topic=self.topic)
        share = -(-self.capacity // max(len(partitions), 1))
        assignment = []
        for p in partitions:
            low, high = self._watermarks(consumer, p)
            start = max(low, high - share)
            assignment.append(TopicPartition(self.topic, p, start))
            self._positions[p] = start
        consumer.assign(assignment)
        self._consumer = consumer
        # Watermark queries go through a client that fetches nothing: on a fetching consumer
        # they queue behind its long-poll fetch (fetch.wait.max.ms) and take ~0.5 s each.
        self._probe = Consumer({**self._config, "enable.partition.eof": False})
        self._thread = threading.Thread(target=self._run, name="dispatch-lookup", daemon=True)
        self._thread.start()

    def _watermarks(self, consumer: Consumer, partition: int) -> tuple[int, int]:
        """Retries transient errors (a new topic's leader not yet known) until the timeout."""
        deadline = time.monotonic() + self._metadata_timeout
        while True:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=self._metadata_timeout
                )
                return low, high
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    consumer.close()
                    raise
                log.info("dispatches watermarks not available yet", error=str(exc))
                time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    # -- reader thread ---------------------------------------------------------------------
    def _run(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        codec = dispatch_result_codec()
        while not self._stop.is_set():
            try:
                messages = consume_available(consumer, 1000, 0.2)
            except (KafkaException, RuntimeError) as exc:
                self.error = exc
                log.error("dispatch lookup reader failed", error=str(exc))
                time.sleep(1.0)
                continue
            if not messages:
                continue
            entries: list[tuple[str, DispatchInfo]] = []
            moved: dict[int, int] = {}
            for msg in messages:
                err = msg.error()
                partition = msg.partition()
                offset = msg.offset()
                if partition is None or offset is None:
                    continue
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        moved[partition] = max(moved.get(partition, 0), offset)
                    continue
                moved[partition] = max(moved.get(partition, 0), offset + 1)
                entry = self._entry(codec, msg.value())
                if entry is not None:
                    entries.append(entry)
            with self._cond:
                self.put_many(entries)
                for partition, offset in moved.items():
                    if offset > self._positions.get(partition, -1):
                        self._positions[partition] = offset
                self._cond.notify_all()

    def _entry(self, codec: Any, value: bytes | None) -> tuple[str, DispatchInfo] | None:
        if value is None:
            return None  # a tombstone of the compacted topic
        try:
            result = codec.decode(value)
        except ContractError:
            self.decode_errors += 1
            return None
        message_id = result.get("message_id")
        if not message_id:
            return None
        return message_id, DispatchInfo(
            correlation_id=result["correlation_id"],
            callback_data=result.get("callback_data"),
            msisdn=result.get("msisdn") or None,
            attributes=result.get("attributes") or {},
        )

    # -- cache -----------------------------------------------------------------------------
    def put_many(self, entries: Iterable[tuple[str, DispatchInfo]]) -> None:
        """Insert (the caller holds the lock, or is a test seeding the cache)."""
        cache = self._cache
        for message_id, info in entries:
            cache[message_id] = info
            cache.move_to_end(message_id)
        while len(cache) > self.capacity:
            cache.popitem(last=False)

    def get_many(self, message_ids: Iterable[str]) -> dict[str, DispatchInfo]:
        found: dict[str, DispatchInfo] = {}
        with self._cond:
            cache = self._cache
            for message_id in message_ids:
                info = cache.get(message_id)
                if info is not None:
                    cache.move_to_end(message_id)
                    found[message_id] = info
        return found

    def __len__(self) -> int:
        return len(self._cache)

    # -- catching up -----------------------------------------------------------------------
    @property
    def partitions(self) -> list[int]:
        return sorted(self._positions)

    def high_watermarks(self, timeout: float) -> dict[int, int]:
        """partition -> high watermark of the dispatches topic now (partitions that answer)."""
        probe = self._probe
        targets: dict[int, int] = {}
        if probe is None:
            return targets
        for p in self._positions:
            try:
                targets[p] = probe.get_watermark_offsets(
                    TopicPartition(self.topic, p), timeout=timeout
                )[1]
            except KafkaException:
                continue
        return targets

    def caught_up(self, targets: dict[int, int]) -> bool:
        positions = self._positions
        return all(positions.get(p, 0) >= target for p, target in targets.items())

    def wait_until(self, targets: dict[int, int], timeout: float) -> bool:
        """Wait until the reader's position reached ``targets`` (partition -> offset)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.caught_up(targets):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True
