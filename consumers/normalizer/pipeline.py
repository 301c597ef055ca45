"""The consume-transform-produce loop: ``calls.callbacks.raw`` -> ``calls.events`` (and the DLQ),
exactly once, in Kafka transactions.

Each transaction (numbered as in the code):

1. ``consume`` a batch (up to ``consume_batch_records``), ``begin_transaction`` if none is open;
2. parse and map every record (:class:`~consumers.normalizer.transform.Transformer`);
3. look the batch's message ids up in ``calls.dispatches`` once, waiting (bounded) for the reader
   to catch up when some are unknown;
4. produce each event (unless its id was emitted recently) or dead-letter record;
5. steps 1 to 4 repeat until ``batch_max_records`` records or ``commit_interval_ms``; then
   ``send_offsets_to_transaction`` with the group metadata, then ``commit_transaction``; only
   then are the dedupe ids and the metrics of the transaction made final.

On an abortable error: ``abort_transaction``, drop the staged dedupe ids, seek every partition
back to the transaction's first offset: the records are processed again. A fenced producer (a
newer instance owns our transactional id) or a fatal error stops the loop without committing.

Rebalances: on revoke the open transaction is committed first (we still own the partitions); on
lost it is aborted and never committed. So a transaction never spans a partition we lost.
A restarted instance (same transactional id) fences its zombie in ``init_transactions``, which
aborts whatever the zombie left open, and resumes from the committed offsets.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from callstream import headers as h
from callstream.contracts.records import CallEvent
from callstream.kafka_config import consumer_config, transactional_producer_config
from callstream.log import get_logger
from callstream.settings import Settings
from consumers.normalizer.dedupe import DedupeWindow
from consumers.normalizer.event_tail import read_recent_event_ids
from consumers.normalizer.exceptions import (
    InvalidCallbackError,
    NormalizerError,
    ProducerFencedError,
)
from consumers.normalizer.lookup import DispatchLookup
from consumers.normalizer.metrics import NormalizerMetrics
from consumers.normalizer.settings import NormalizerSettings
from consumers.normalizer.transaction import OpenTransaction
from consumers.normalizer.transform import DeadLetter, DispatchInfo, Transformer, fill_from_dispatch

log = get_logger(__name__)
KAFKA_TIMEOUT_S = 30.0
_FENCED_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


def _kafka_error(exc: KafkaException) -> KafkaError | None:
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, KafkaError) else None


def _received_at(msg: Message) -> int:
    """The gateway's receive time (epoch ms), else the record's timestamp, else now."""
    headers = msg.headers()
    if headers:
        pairs = headers.items() if isinstance(headers, dict) else headers
        for key, value in pairs:
            if key == h.RECEIVED_AT and isinstance(value, bytes) and value.isdigit():
                return int(value)
    stamp = msg.timestamp()[1]
    return stamp if stamp > 0 else int(time.time() * 1000)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        normalizer: NormalizerSettings,
        metrics: NormalizerMetrics | None = None,
        *,
        lookup: DispatchLookup | None = None,
    ) -> None:
        self.settings = settings
        self.ns = normalizer
        self.metrics = metrics or NormalizerMetrics()
        self.lookup = lookup
        self.transformer = Transformer(normalizer.zone())
        self.dedupe = DedupeWindow(normalizer.dedupe_window)
        self.raw_topic = settings.topic_callbacks_raw
        self.events_topic = settings.topic_events
        self.dlq_topic = settings.topic_callbacks_dlq
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._txn: OpenTransaction | None = None
        self._owned: set[int] = set()
        self._fatal: BaseException | None = None
        self._running = False
        self._last_loop = 0.0
        self._last_lag = 0.0
        self.transactions_committed = 0
        self.records_committed = 0  # raw records whose outcome was committed
        self.first_record_at: float | None = None  # monotonic time of the first record consumed

    # -- readiness ---------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if self._fatal is not None:
            return False, f"stopping: {self._fatal}"
        if not self._running:
            return False, "not running"
        if time.monotonic() - self._last_loop > 30:
            return False, "loop stalled"
        return True, f"{len(self._owned)} partitions"

    # -- clients -------------------------------------------------------------------------------
    def _clients(self) -> tuple[Consumer, Producer]:
        ns = self.ns
        client_id = f"callstream-normalizer-{ns.instance_id}"
        producer = Producer(
            transactional_producer_config(
                self.settings,
                client_id=client_id,
                transactional_id=ns.transactional_id,
                **{
                    "transaction.timeout.ms": ns.transaction_timeout_ms,
                    "linger.ms": 5,
                    "batch.num.messages": 10_000,
                    "queue.buffering.max.messages": max(100_000, 4 * ns.batch_max_records),
                    "error_cb": self._on_client_error,
                },
            )
        )
        extra: dict[str, Any] = {"error_cb": self._on_client_error}
        if ns.static_membership:
            extra["group.instance.id"] = ns.transactional_id
        consumer = Consumer(
            consumer_config(self.settings, group_id=ns.group_id, client_id=client_id, **extra)
        )
        return consumer, producer

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = NormalizerError(f"fatal Kafka client error: {err}")
        log.warning("kafka client error", error=str(err))

    # -- main loop -----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; raises :class:`NormalizerError` when it cannot go on."""
        consumer, producer = self._clients()
        self._consumer, self._producer = consumer, producer
        try:
            producer.init_transactions(KAFKA_TIMEOUT_S)  # fences and aborts our zombie, if any
            consumer.subscribe(
                [self.raw_topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            self._running = True
            while not stop.is_set():
                self._step(consumer)
            if self._txn is not None:
                self._commit()
        except ProducerFencedError:
            self._txn = None
            raise
        finally:
            self._running = False
            self._close(consumer, producer)

    def _close(self, consumer: Consumer, producer: Producer) -> None:
        try:
            consumer.close()  # revokes: commits an open transaction if still possible
        except (KafkaException, RuntimeError) as exc:
            log.warning("consumer close failed", error=str(exc))
        try:
            if self._txn is not None:
                self._abort("shutdown")
            producer.flush(5)
        except (KafkaException, NormalizerError) as exc:  # fenced or fatal: nothing to finish
            log.warning("producer close failed", error=str(exc))

    def _step(self, consumer: Consumer) -> None:
        self._last_loop = now = time.monotonic()
        txn = self._txn
        ns = self.ns
        if txn is None:
            timeout, room = 0.5, min(ns.batch_max_records, ns.consume_batch_records)
        else:
            timeout = max(0.0, txn.started + ns.commit_interval_ms / 1000 - now)
            room = max(1, min(ns.batch_max_records - txn.records, ns.consume_batch_records))
        messages = consumer.consume(num_messages=room, timeout=timeout)
        if self._fatal is not None:
            raise self._fatal
        if messages:
            try:
                self._process(messages)
            except KafkaException as exc:  # from begin_transaction or produce
                self._on_kafka_error(exc, "produce failed")
        txn = self._txn
        if txn is not None and (
            txn.records >= ns.batch_max_records
            or time.monotonic() - txn.started >= ns.commit_interval_ms / 1000
        ):
            self._commit()
        if now - self._last_lag > 5:
            self._last_lag = now
            self._update_lag(consumer)

    # -- one batch -----------------------------------------------------------------------------
    def _process(self, messages: list[Message]) -> None:
        owned = self._owned
        records: list[Message] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise NormalizerError(f"fatal consumer error: {err}")
                log.warning("consumer error", error=str(err))
                continue
            if msg.partition() in owned:  # not fetched before a revoke
                records.append(msg)
        if not records:
            return
        producer = self._producer
        if producer is None:
            raise NormalizerError("producer not started")
        if self.first_record_at is None:
            self.first_record_at = time.monotonic()
        txn = self._txn
        if txn is None:
            producer.begin_transaction()
            txn = self._txn = OpenTransaction()
        # 2. parse and map
        built: list[tuple[Message, CallEvent | DeadLetter]] = []
        ids: set[str] = set()
        transformer = self.transformer
        first, following = txn.first, txn.next
        txn.records += len(records)
        for msg in records:
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if partition not in first:
                first[partition] = offset
            following[partition] = offset + 1
            received = _received_at(msg)
            try:
                event = transformer.build(msg.value(), received)
            except InvalidCallbackError as exc:
                built.append((msg, DeadLetter(exc, exc.stage)))
                continue
            except Exception as exc:  # a bug must not stop the stream: dead-letter, replay later
                built.append((msg, DeadLetter(exc, "transform")))
                continue
            built.append((msg, event))
            if event["message_id"] is not None:
                ids.add(event["message_id"])
        # 3. the dispatches lookup, once per batch
        found = self._lookup(ids, txn)
        # 4. produce
        produce = producer.produce
        events_topic, seen = self.events_topic, self.dedupe.seen
        for msg, item in built:
            if isinstance(item, DeadLetter):
                self._dead_letter(msg, item, txn)
                continue
            message_id = item["message_id"]
            fill_from_dispatch(item, found.get(message_id) if message_id is not None else None)
            try:
                out = transformer.encode(item)
            except Exception as exc:  # a value Avro refuses: dead-letter the original bytes
                self._dead_letter(msg, DeadLetter(exc, "encode"), txn)
                continue
            if seen(item["event_id"]):
                txn.duplicates += 1
                continue
            try:
                produce(events_topic, out.value, out.key)
            except BufferError:
                producer.poll(0.5)
                produce(events_topic, out.value, out.key)
            txn.events[item["event_type"]] += 1
        producer.poll(0)

    def _lookup(self, ids: set[str], txn: OpenTransaction) -> dict[str, DispatchInfo]:
        lookup = self.lookup
        if lookup is None or not ids:
            return {}
        found = lookup.get_many(ids)
        missing = ids.difference(found)
        if missing and self.ns.lookup_wait_ms > 0:
            wait = self.ns.lookup_wait_ms / 1000
            targets = lookup.high_watermarks(wait)
            if targets and not lookup.caught_up(targets):
                lookup.wait_until(targets, wait)
                found.update(lookup.get_many(missing))
        txn.hits += len(found)
        txn.misses += len(ids) - len(found)
        return found

    def _dead_letter(self, msg: Message, item: DeadLetter, txn: OpenTransaction) -> None:
        producer = self._producer
        if producer is None:
            raise NormalizerError("producer not started")
        received = msg.headers() or []
        pairs = received.items() if isinstance(received, dict) else received
        headers: list[tuple[str, str | bytes | None]] = list(pairs)  # the gateway's, kept
        reasons = [str(e) for e in getattr(item.error, "errors", ())]
        headers += h.dlq_headers(
            error=item.error,
            stage=item.stage,
            topic=msg.topic() or self.raw_topic,
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            timestamp_ms=msg.timestamp()[1],
            reasons=reasons,
        )
        try:
            producer.produce(self.dlq_topic, msg.value(), msg.key(), headers=headers)
        except BufferError:
            producer.poll(0.5)
            producer.produce(self.dlq_topic, msg.value(), msg.key(), headers=headers)
        txn.dead_letters[item.stage] += 1
        log.info(
            "callback dead-lettered",
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            stage=item.stage,
            error=str(item.error)[:300],
        )

    # -- commit and abort ----------------------------------------------------------------------
    def _commit(self) -> None:
        txn, producer, consumer = self._txn, self._producer, self._consumer
        if txn is None or producer is None or consumer is None:
            return
        offsets = [TopicPartition(self.raw_topic, p, o) for p, o in txn.next.items()]
        started = time.monotonic()
        try:
            producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), KAFKA_TIMEOUT_S
            )
            self._commit_with_retries(producer)
        except KafkaException as exc:
            self._on_kafka_error(exc, "commit failed")
            return
        self._txn = None
        self.transactions_committed += 1
        self.records_committed += txn.records
        self.dedupe.commit()
        m = self.metrics
        m.commit_seconds.observe(time.monotonic() - started)
        m.committed.inc()
        for event_type, n in txn.events.items():
            m.events.labels(event_type).inc(n)
        for stage, n in txn.dead_letters.items():
            m.dead_letters.labels(stage).inc(n)
        if txn.duplicates:
            m.duplicates.inc(txn.duplicates)
        if txn.hits:
            m.hits.inc(txn.hits)
        if txn.misses:
            m.misses.inc(txn.misses)
        self._irregularities()

    def _on_kafka_error(self, exc: KafkaException, why: str) -> None:
        """Fenced or fatal: stop (raise). Anything else: abort the transaction and rewind."""
        err = _kafka_error(exc)
        if err is not None and err.code() in _FENCED_CODES:
            raise ProducerFencedError(f"producer fenced: {err}") from exc
        if err is not None and err.fatal():
            raise NormalizerError(f"fatal producer error: {err}") from exc
        log.warning("transaction failed, aborting", why=why, error=str(exc))
        self._abort(why)

    def _commit_with_retries(self, producer: Producer) -> None:
        for attempt in range(3):
            try:
                producer.commit_transaction(KAFKA_TIMEOUT_S)
                return
            except KafkaException as exc:
                err = _kafka_error(exc)
                if err is None or not err.retriable() or attempt == 2:
                    raise

    def _abort(self, why: str) -> None:
        txn, producer, consumer = self._txn, self._producer, self._consumer
        self._txn = None
        self.dedupe.abort()
        if txn is None or producer is None:
            return
        self.metrics.aborted.inc()
        try:
            producer.abort_transaction(KAFKA_TIMEOUT_S)
        except KafkaException as exc:
            err = _kafka_error(exc)
            if err is not None and err.code() in _FENCED_CODES:
                raise ProducerFencedError(f"producer fenced: {err}") from exc
            raise NormalizerError(f"cannot abort the transaction: {exc}") from exc
        if consumer is None:
            return
        for partition, first in txn.first.items():
            if partition not in self._owned:
                continue
            try:
                consumer.seek(TopicPartition(self.raw_topic, partition, first))
            except KafkaException as exc:
                # nothing was committed: a restart resumes from the committed offsets
                raise NormalizerError(f"cannot rewind partition {partition}: {exc}") from exc
        log.warning("transaction aborted, records will be processed again", why=why)

    def _irregularities(self) -> None:
        t, m = self.transformer, self.metrics
        if t.timestamp_fallbacks:
            m.irregularities.labels("timestamp_unreadable").inc(t.timestamp_fallbacks)
            t.timestamp_fallbacks = 0
        if t.bad_destinations:
            m.irregularities.labels("destination_not_e164").inc(t.bad_destinations)
            t.bad_destinations = 0

    # -- rebalance callbacks (run inside consume) ------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        new = {tp.partition for tp in partitions} - self._owned
        self._owned |= new
        log.info("partitions assigned", partitions=sorted(new))
        if new and self.ns.dedupe_window > 0:
            ids = read_recent_event_ids(
                consumer_config(
                    self.settings,
                    group_id=f"{self.ns.group_id}-dedupe",
                    client_id=f"callstream-normalizer-{self.ns.instance_id}-dedupe",
                ),
                self.events_topic,
                self.ns.dedupe_window,
            )
            self.dedupe.remember(ids)
            log.info("dedupe window rebuilt", ids=len(ids), window=len(self.dedupe))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            if self._txn is not None:
                self._commit()  # we still own them: finish the transaction first
        except NormalizerError as exc:
            self._fatal = exc
        self._owned -= {tp.partition for tp in partitions}
        log.info("partitions revoked", partitions=sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned -= {tp.partition for tp in partitions}
        try:
            if self._txn is not None:
                self._abort("partitions lost")  # never commit what we may no longer own
        except NormalizerError as exc:
            self._fatal = exc
        log.warning("partitions lost", partitions=sorted(tp.partition for tp in partitions))

    def _update_lag(self, consumer: Consumer) -> None:
        if not self._owned:
            return
        tps = [TopicPartition(self.raw_topic, p) for p in sorted(self._owned)]
        try:
            for tp in consumer.position(tps):
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    self.metrics.lag.labels(str(tp.partition)).set(max(0, high - tp.offset))
        except KafkaException:
            return
