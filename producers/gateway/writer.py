"""Writing callbacks to Kafka, and learning that the broker has them without blocking the loop.

:class:`KafkaCallbackWriter` owns one idempotent acks=all producer. ``produce()`` is called on the
event loop (it only enqueues); a dedicated thread polls the producer, collects the delivery
reports of one ``poll()`` and hands them to the loop in a single ``call_soon_threadsafe``, where
each request's future is resolved. A request answers 200 only once its future resolved without
error; a future not resolved within ``write_timeout`` is cancelled and the request answers 503.

Why not ``confluent_kafka.aio.AIOProducer``: its batched ``produce()`` rejects headers
(``NotImplementedError`` in 2.16), and the gateway's metadata lives in headers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from callstream.kafka_config import KafkaConfig, producer_config
from callstream.log import get_logger
from callstream.settings import Settings
from producers.gateway.exceptions import (
    DeliveryFailedError,
    ProducerBusyError,
    WriterClosedError,
    WriteTimeoutError,
)
from producers.gateway.record import CallbackRecord
from producers.gateway.settings import GatewaySettings

log = get_logger(__name__)

_Report = tuple["asyncio.Future[None]", KafkaError | None]


class CallbackWriter(Protocol):
    """What the HTTP app needs: ``write`` returns once the record is durable, else raises
    :class:`~producers.gateway.exceptions.WriteNotConfirmedError`."""

    async def write(self, record: CallbackRecord) -> None: ...

    def readiness(self) -> tuple[bool, str]: ...


def gateway_producer_config(settings: Settings, gateway: GatewaySettings) -> KafkaConfig:
    """acks=all + idempotence (required), tuned for many small records."""
    tuning: KafkaConfig = {
        "linger.ms": gateway.linger_ms,
        "batch.num.messages": gateway.batch_num_messages,
        "compression.type": gateway.compression_type,
        # give up on a record about when the HTTP caller has been answered 503 anyway
        "message.timeout.ms": max(int(gateway.write_timeout_seconds * 1000), 1000),
    }
    return producer_config(settings, client_id="callstream-gateway", **tuning)


class KafkaCallbackWriter:
    """The production writer. ``start()`` on the running loop, ``close()`` at shutdown."""

    def __init__(
        self,
        config: KafkaConfig,
        topic: str,
        *,
        write_timeout: float,
        probe_interval: float = 5.0,
    ) -> None:
        self._config = {
            "log.connection.close": False,
            **config,
            "error_cb": self._on_error,
            "logger": logging.getLogger("callstream.gateway.librdkafka"),
        }
        self._topic = topic
        self._write_timeout = write_timeout
        self._probe_interval = probe_interval
        self._producer: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reports: list[_Report] = []  # touched only by the poll thread
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False
        self._fatal: str | None = None
        self._last_contact = 0.0  # monotonic time of the last ack or successful metadata probe
        self._brokers_down = False
        self._late_acks = 0

    @classmethod
    def from_settings(cls, settings: Settings, gateway: GatewaySettings) -> KafkaCallbackWriter:
        return cls(
            gateway_producer_config(settings, gateway),
            settings.topic_callbacks_raw,
            write_timeout=gateway.write_timeout_seconds,
            probe_interval=gateway.readiness_probe_seconds,
        )

    @property
    def fatal_error(self) -> str | None:
        return self._fatal

    @property
    def late_acks(self) -> int:
        """Records acknowledged after their request was answered 503 (stored, and retried)."""
        return self._late_acks

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._producer = Producer(self._config)
        self._thread = threading.Thread(
            target=self._poll_forever, name="gateway-kafka-poll", daemon=True
        )
        self._thread.start()
        self._probe_task = asyncio.create_task(self._probe_forever(), name="gateway-kafka-probe")

    async def write(self, record: CallbackRecord) -> None:
        if self._closed or self._fatal is not None or self._loop is None:
            raise WriterClosedError(self._fatal or "writer is closed")
        future: asyncio.Future[None] = self._loop.create_future()
        try:
            self._producer.produce(
                self._topic,
                value=record.value,
                key=record.key,
                headers=record.headers,
                on_delivery=functools.partial(self._on_delivery, future),
            )
        except BufferError as exc:
            raise ProducerBusyError("producer queue is full") from exc
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.name() if isinstance(err, KafkaError) else None
            raise DeliveryFailedError(f"produce refused: {exc}", code=code) from exc
        try:
            await asyncio.wait_for(future, self._write_timeout)  # cancels the future on timeout
        except TimeoutError as exc:
            raise WriteTimeoutError(f"not acknowledged within {self._write_timeout:g}s") from exc

    def readiness(self) -> tuple[bool, str]:
        if self._fatal is not None:
            return False, f"fatal producer error: {self._fatal}"
        if self._closed:
            return False, "closing"
        if self._brokers_down:
            return False, "all brokers down"
        age = time.monotonic() - self._last_contact
        if self._last_contact and age <= 3 * self._probe_interval:
            return True, "producer connected"
        return False, "no broker contact yet" if not self._last_contact else "broker contact lost"

    async def close(self, flush_seconds: float) -> int:
        """Stop accepting writes and the poll thread, then flush what is queued.

        Returns the number of records still not delivered (0 when everything was flushed).
        """
        self._closed = True
        if self._probe_task is not None:
            self._probe_task.cancel()
            await asyncio.gather(self._probe_task, return_exceptions=True)
        if self._producer is None:
            return 0
        # stop the poll thread first: from here on only the flushing thread serves callbacks
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
        remaining: int = await asyncio.to_thread(self._flush, flush_seconds)
        if remaining:
            log.error("gateway producer closed with undelivered records", undelivered=remaining)
        return remaining

    # -- poll thread ----------------------------------------------------------------------

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)
            self._hand_over()
        self._producer.poll(0)
        self._hand_over()

    def _flush(self, seconds: float) -> int:
        remaining: int = self._producer.flush(seconds)
        self._hand_over()
        return remaining

    def _on_delivery(
        self, future: asyncio.Future[None], err: KafkaError | None, _msg: object
    ) -> None:
        self._reports.append((future, err))

    def _hand_over(self) -> None:
        if not self._reports or self._loop is None:
            return
        reports, self._reports = self._reports, []
        if any(err is None for _, err in reports):
            self._last_contact = time.monotonic()
            self._brokers_down = False
        try:
            self._loop.call_soon_threadsafe(self._resolve, reports)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            return

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err.str()
            log.critical("gateway producer fatal error", code=err.name(), error=err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._brokers_down = True
            log.warning("gateway producer: all brokers down", error=err.str())
        # other errors are transient (connection refused, timeouts): librdkafka retries by
        # itself and already logs them through the "callstream.gateway.librdkafka" logger

    # -- event loop -----------------------------------------------------------------------

    def _resolve(self, reports: list[_Report]) -> None:
        for future, err in reports:
            if future.done():  # timed out (cancelled): the caller was answered 503
                if err is None:
                    self._late_acks += 1
                continue
            if err is None:
                future.set_result(None)
            else:
                future.set_exception(
                    DeliveryFailedError(
                        f"delivery failed: {err.str()}",
                        code=err.name(),
                        retriable=err.retriable(),
                    )
                )

    async def _probe_forever(self) -> None:
        while True:
            if time.monotonic() - self._last_contact >= self._probe_interval:
                try:
                    metadata = await asyncio.to_thread(
                        self._producer.list_topics, self._topic, self._probe_interval
                    )
                    topic = metadata.topics.get(self._topic)
                    if topic is not None and topic.error is None:
                        self._last_contact = time.monotonic()
                        self._brokers_down = False
                except KafkaException as exc:
                    log.debug("gateway readiness probe failed", error=str(exc))
            await asyncio.sleep(self._probe_interval / 2)
