"""The dispatcher's asyncio core: partitions, records in flight, commits, rebalances, shutdown.

Order of a commit (quix-streams' checkpoint rule): a record's outputs are acknowledged by the
broker (acks=all, idempotent producer), then its offset is marked done, then the watermark
(lowest unfinished offset, :mod:`.offsets`) is committed every ``commit_interval`` and on revoke
and shutdown. Shutdown (SIGTERM flips a flag): stop fetching, let in-flight requests finish
within the deadline (records waiting for a retry or a token are abandoned uncommitted), flush,
commit, close the consumer (leaves the group).

The group uses the ``range`` assignor, on purpose: with equal partition counts it gives partition
p of ``calls.requests`` and of ``calls.requests.retry`` to the same member, so the one process
that owns a request partition also owns its retries and is the only writer of partition p of
``calls.dispatches`` (the dedupe state stays exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaException, Message
from confluent_kafka.admin import AdminClient

from callstream.exceptions import ConfigError, KafkaDeliveryError
from callstream.health import bound_port, start_health_server
from callstream.kafka_config import admin_config, consumer_config, producer_config
from callstream.log import get_logger
from consumers.dispatcher.dedupe import PartitionDedupe, load_partition
from consumers.dispatcher.kafka_io import (
    AsyncProducer,
    ConsumerThread,
    Offsets,
    TopicPartitionKey,
)
from consumers.dispatcher.metrics import DispatchMetrics
from consumers.dispatcher.pause import PlatformPause
from consumers.dispatcher.platform_client import PlatformClient
from consumers.dispatcher.processor import RecordProcessor
from consumers.dispatcher.ratelimit import AdaptiveRateLimiter
from consumers.dispatcher.settings import DispatchSettings
from consumers.dispatcher.work import PartitionState, Work

log = get_logger(__name__)
# Fewer, fuller produce requests: on the 2-core bench machine the broker JVM spends roughly 1 ms
# of CPU per produce request, largely whatever it carries, and librdkafka's own threads wake per
# request too. One request in flight at a time batches what accumulates meanwhile (more under
# load, no wait when idle); linger 2 ms gathers a few loop iterations' outputs and stays short
# because every record waits for two acks inside its in-flight slot. Measured against linger 1 ms
# with 5 in flight: a quarter fewer requests, librdkafka thread CPU per record from 20-120 us (the
# busier the machine, the more) to 12-16, the same or better throughput at 0 and 50 ms platform
# latency, about 12 % less CPU per record in all (dispatcher + broker + sandbox) (linger 5 ms costs
# less CPU still but ~7 % throughput at 50 ms: the slot waits on two lingers). Overridable
# (CALLSTREAM_KAFKA__*); ordering and idempotence are unaffected (one in flight is stricter).
PRODUCER_TUNING: dict[str, Any] = {"linger.ms": 2, "max.in.flight.requests.per.connection": 1}
# a full partition holds the next fetch back this long before it is paused (pausing purges the
# client's prefetched records, which are then fetched again: fine when the platform is stuck,
# wasteful as the steady-state backpressure of a busy dispatcher)
HOLD_BACK_S = 5.0


def partition_counts(settings: DispatchSettings, topics: list[str]) -> dict[str, int]:
    admin = AdminClient(admin_config(settings))
    try:
        meta = admin.list_topics(timeout=30)
    except KafkaException as exc:
        raise ConfigError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}") from exc
    counts: dict[str, int] = {}
    for name in topics:
        topic = meta.topics.get(name)
        if topic is None or topic.error is not None:
            raise ConfigError(f"topic {name} does not exist (run `callstream topics create`)")
        counts[name] = len(topic.partitions)
    return counts


class DispatchService:
    def __init__(self, settings: DispatchSettings, metrics: DispatchMetrics | None = None) -> None:
        self.s = settings
        self.metrics = metrics or DispatchMetrics()
        self.parts: dict[TopicPartitionKey, PartitionState] = {}
        self.dedupe: dict[int, PartitionDedupe] = {}
        self._loaded: dict[int, PartitionDedupe] = {}
        self._joined = False
        self._closing = False
        self._fatal: BaseException | None = None
        self._stop = asyncio.Event()
        self._total_partitions = 1
        self.health_port: int | None = None
        self.limiter = AdaptiveRateLimiter(
            settings.dispatch_rate, min_rate=settings.dispatch_throttle_min_rate
        )
        self.pause = PlatformPause(self._pause_all, self._resume_all, self._paused_changed)
        self.client = PlatformClient(
            settings.messages_url,
            settings.platform_service_key.get_secret_value(),
            max_in_flight=settings.dispatch_max_in_flight,
            connect_timeout=settings.dispatch_connect_timeout_s,
            request_timeout=settings.dispatch_request_timeout_s,
        )
        self._producer: AsyncProducer | None = None
        self._consumer: ConsumerThread | None = None
        self._processor: RecordProcessor | None = None
        self._full: set[TopicPartitionKey] = set()  # at the buffer bound, fetch held back
        self._hold_timer: asyncio.TimerHandle | None = None

    # -- readiness, pause -----------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if self.pause.paused:
            return False, self.pause.reason
        if self._closing:
            return False, "shutting down"
        if not self._joined:
            return False, "not yet in the consumer group"
        return True, f"{len(self.parts)} partitions assigned"

    def _pause_all(self) -> None:
        if self._consumer is not None:
            self._consumer.pause(set(self.parts))

    def _resume_all(self) -> None:
        if self._consumer is not None and not self._closing:
            self._consumer.resume({k for k, ps in self.parts.items() if not ps.buffer_paused})

    def _paused_changed(self, paused: bool) -> None:
        self.metrics.paused.set(1 if paused else 0)

    def _dedupe_for(self, partition: int) -> PartitionDedupe:
        state = self.dedupe.get(partition)
        if state is None:  # not ours (a foreign retry record): an empty state, kept meanwhile
            state = self.dedupe[partition] = PartitionDedupe()
        return state

    def _update_rate(self) -> None:
        if self.s.dispatch_rate is None:
            return
        owned = sum(1 for t, _ in self.parts if t == self.s.topic_requests)
        share = max(owned, 1) / self._total_partitions
        self.limiter.set_target(self.s.dispatch_rate * share)
        self.metrics.rate_limit.set(self.limiter.rate or 0)

    # -- ConsumerHandler (called by the consumer thread) ----------------------------------------
    def on_messages(self, messages: list[Message]) -> bool:
        """Start the batch's records; False while a partition is full (the consumer thread then
        waits for :meth:`_release_fetch` before its next fetch)."""
        if self._closing or self._processor is None:
            return True
        touched: dict[TopicPartitionKey, int] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                log.warning("consume error", error=str(err))
                continue
            key = (str(msg.topic()), int(msg.partition() or 0))
            ps = self.parts.get(key)
            offset = int(msg.offset() or 0)
            if ps is None or (
                ps.offsets.next_offset is not None and offset < ps.offsets.next_offset
            ):
                continue
            ps.offsets.add(offset)
            w = Work.from_message(msg)
            ps.works.add(w)
            w.task = asyncio.create_task(self._run(w, ps, key))
            touched[key] = touched.get(key, 0) + 1
        for key, count in touched.items():
            self.metrics.consumed_from(key[0]).inc(count)
            ps = self.parts[key]
            if not ps.buffer_paused and len(ps.works) >= self.s.dispatch_partition_buffer:
                self._full.add(key)
        if not self._full:
            return True
        if self._hold_timer is None:
            self._hold_timer = asyncio.get_running_loop().call_later(HOLD_BACK_S, self._pause_full)
        return False

    def _pause_full(self) -> None:
        """Partitions still full after HOLD_BACK_S (records waiting on retries, a stuck
        platform): pause them, as long as needed, and let the others be fetched."""
        self._hold_timer = None
        full = {k for k in self._full if k in self.parts}
        for key in full:
            self.parts[key].buffer_paused = True
        if full and self._consumer is not None:
            self._consumer.pause(full)
        self._release_fetch()

    def _release_fetch(self) -> None:
        self._full.clear()
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        if self._consumer is not None:
            self._consumer.release()

    def load_state(self, partitions: list[TopicPartitionKey]) -> None:
        config = consumer_config(
            self.s,
            group_id=f"{self.s.dispatch_group_id}-dedupe-loader",
            client_id="callstream-dispatcher-dedupe",
        )
        numbers = sorted({p for _, p in partitions})
        self._loaded = {
            p: load_partition(config, self.s.topic_dispatches, p, self.s.topic_requests)
            for p in numbers
        }

    async def assigned(self, partitions: list[TopicPartitionKey]) -> set[TopicPartitionKey]:
        for key in partitions:
            self.parts[key] = PartitionState()
        self.dedupe.update(self._loaded)
        self._loaded = {}
        self._joined = True
        self._update_rate()
        return set(partitions) if (self.pause.paused or self._closing) else set()

    async def revoked(self, partitions: list[TopicPartitionKey]) -> Offsets:
        states = [(k, self.parts[k]) for k in partitions if k in self.parts]
        works = [w for _, ps in states for w in ps.works]
        deadline = 0.0 if self._closing else self.s.dispatch_revoke_deadline_s
        await self._drain(works, deadline)
        offsets: Offsets = []
        for (topic, partition), ps in states:
            offset = ps.offsets.committable()
            if offset is not None:
                offsets.append((topic, partition, offset))
        self._forget(partitions)
        return offsets

    async def lost(self, partitions: list[TopicPartitionKey]) -> None:
        works = [w for k in partitions if k in self.parts for w in self.parts[k].works]
        await self._drain(works, 0.0, cancel_all=True)
        self._forget(partitions)

    def on_lag(self, lag: dict[TopicPartitionKey, int]) -> None:
        for (topic, partition), value in lag.items():
            self.metrics.lag.labels(topic, str(partition)).set(value)

    def _forget(self, partitions: list[TopicPartitionKey]) -> None:
        for key in partitions:
            self.parts.pop(key, None)
            if key in self._full:
                self._full.discard(key)
                if not self._full:
                    self._release_fetch()
        still = {p for _, p in self.parts}
        for p in list(self.dedupe):
            if p not in still:
                del self.dedupe[p]
        self._update_rate()

    # -- records -------------------------------------------------------------------------------
    async def _run(self, w: Work, ps: PartitionState, key: TopicPartitionKey) -> None:
        if self._processor is None:
            return
        try:
            await self._processor.process(w)
            ps.offsets.done(w.offset)
        except KafkaDeliveryError as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the partition silently: stop the service
            log.exception("unexpected error processing a record", offset=w.offset)
            self._fail(exc)
        finally:
            ps.works.discard(w)
            self.pause.released(w)
            full = self._full
            if full and key in full and len(ps.works) <= self.s.dispatch_partition_buffer // 2:
                full.discard(key)
                if not full:
                    self._release_fetch()
            if ps.buffer_paused and len(ps.works) <= self.s.dispatch_partition_buffer // 2:
                ps.buffer_paused = False
                if self._consumer is not None and not self.pause.paused and not self._closing:
                    self._consumer.resume({key})

    async def _drain(self, works: list[Work], deadline: float, *, cancel_all: bool = False) -> None:
        """Cancel what waits (retry, token, pause, lock); give requests in flight ``deadline``."""
        for w in works:
            if w.task is not None and (cancel_all or w.phase == "wait"):
                w.task.cancel()
        tasks = [w.task for w in works if w.task is not None and not w.task.done()]
        if tasks and deadline > 0:
            await asyncio.wait(tasks, timeout=deadline)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _fail(self, exc: BaseException) -> None:
        log.critical("dispatcher stopping on a fatal error", error=str(exc))
        if self._fatal is None:
            self._fatal = exc
        self._stop.set()

    # -- lifecycle -------------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.s.dispatch_commit_interval_s)
            self.metrics.unfinished.set(sum(len(ps.works) for ps in self.parts.values()))
            offsets: Offsets = []
            for (topic, partition), ps in self.parts.items():
                offset = ps.offsets.to_commit()
                if offset is not None:
                    offsets.append((topic, partition, offset))
            if offsets and self._consumer is not None:
                self._consumer.commit(offsets)
            if self._consumer is not None and self._consumer.done.done():
                self._fail(self._consumer.error or RuntimeError("consumer thread ended"))

    def _check_topics(self) -> None:
        s = self.s
        counts = partition_counts(
            s,
            [
                s.topic_requests,
                s.topic_requests_retry,
                s.topic_dispatches,
                s.topic_requests_dlq,
                s.topic_events,
            ],
        )
        keyed = {
            t: counts[t] for t in (s.topic_requests, s.topic_requests_retry, s.topic_dispatches)
        }
        if len(set(keyed.values())) != 1:
            raise ConfigError(
                f"requests, retry and dispatches topics need the same partition count: {keyed}"
            )
        self._total_partitions = counts[s.topic_requests]

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Run until ``stop`` is set (or a fatal error); returns the process exit code."""
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        await asyncio.to_thread(self._check_topics)
        await self.client.start()
        s = self.s
        # PRODUCER_TUNING: few, fuller produce requests, still a short linger (see above)
        self._producer = AsyncProducer(
            producer_config(s, client_id="callstream-dispatcher", **PRODUCER_TUNING), loop
        )
        self._processor = RecordProcessor(
            s,
            client=self.client,
            producer=self._producer,
            limiter=self.limiter,
            pause=self.pause,
            metrics=self.metrics,
            dedupe_for=self._dedupe_for,
        )
        cconf = consumer_config(
            s,
            group_id=s.dispatch_group_id,
            client_id="callstream-dispatcher",
            required={"partition.assignment.strategy": "range"},
            **{
                "statistics.interval.ms": 5000,
                "queued.max.messages.kbytes": 16384,
                "queued.min.messages": 20000,
            },
        )
        self._consumer = ConsumerThread(
            cconf,
            [s.topic_requests, s.topic_requests_retry],
            loop,
            self,
            batch=s.dispatch_poll_batch,
            callback_timeout=max(120.0, s.dispatch_revoke_deadline_s + 60),
        )
        runner: web.AppRunner | None = None
        committer: asyncio.Task[None] | None = None
        try:
            runner = await start_health_server(
                self.metrics.registry, self.readiness, s.http_host, s.http_port
            )
            self.health_port = bound_port(runner)
            self._consumer.start()
            committer = asyncio.create_task(self._commit_loop())
            log.info("dispatcher started", health_port=self.health_port, **_safe(s))
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._stop.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        finally:
            await self._shutdown(committer, runner)
        return 1 if self._fatal is not None else 0

    async def _shutdown(self, committer: asyncio.Task[None] | None, runner: Any) -> None:
        started = time.monotonic()
        self._closing = True
        self._release_fetch()
        if self._consumer is not None:
            self._consumer.pause(set(self.parts))
        works = [w for ps in self.parts.values() for w in ps.works]
        await self._drain(works, self.s.dispatch_shutdown_deadline_s)
        if committer is not None:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
        undelivered = await self._producer.flush(10.0) if self._producer else 0
        if self._consumer is not None:
            offsets: Offsets = []
            for (topic, partition), ps in self.parts.items():
                offset = ps.offsets.committable()
                if offset is not None:
                    offsets.append((topic, partition, offset))
            if self._consumer.done.done():
                pass
            elif offsets:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        asyncio.wrap_future(self._consumer.commit(offsets, sync=True)), 30
                    )
            self._consumer.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._consumer.done), 60)
        if self._producer is not None:
            await self._producer.close()
        await self.client.close()
        if runner is not None:
            await runner.cleanup()
        log.info(
            "dispatcher stopped",
            seconds=round(time.monotonic() - started, 3),
            undelivered=undelivered,
            fatal=str(self._fatal) if self._fatal else None,
        )


def _safe(settings: DispatchSettings) -> dict[str, Any]:
    keep = ("platform_url", "dispatch_group_id", "dispatch_max_in_flight", "dispatch_rate")
    return {k: v for k, v in settings.redacted().items() if k in keep}
