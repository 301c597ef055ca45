"""The life of one record: decode, dedupe, expiry, rate, POST, outcome, outputs.

Outputs are written in two steps: the CallEvent (and the DLQ record, if any) first, then the
DispatchResult once those are acknowledged. The result is the evidence dedupe relies on, so it
only exists when everything else does. A record is *finished* (its offset may be committed) once
its result is acknowledged, or once its retry record is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from callstream.contracts import call_event_codec, dispatch_result_codec, parse_call_request
from callstream.contracts.records import CallRequest, DispatchOutcome
from callstream.exceptions import ContractError, ValidationError
from callstream.headers import dlq_headers
from callstream.log import get_logger
from callstream.masking import mask_msisdn
from consumers.dispatcher.backoff import backoff_delay
from consumers.dispatcher.dedupe import PartitionDedupe
from consumers.dispatcher.exceptions import (
    PermanentError,
    PlatformUnavailableError,
    RetryableError,
    ThrottledError,
)
from consumers.dispatcher.kafka_io import AsyncProducer
from consumers.dispatcher.keyed_locks import KeyedLocks
from consumers.dispatcher.mapping import encode_body, platform_body
from consumers.dispatcher.metrics import DispatchMetrics
from consumers.dispatcher.outcomes import classify
from consumers.dispatcher.pause import PlatformPause
from consumers.dispatcher.platform_client import PlatformClient
from consumers.dispatcher.ratelimit import AdaptiveRateLimiter
from consumers.dispatcher.results import (
    call_event,
    dispatch_result,
    event_key,
    now_ms,
    retry_headers,
)
from consumers.dispatcher.settings import DispatchSettings
from consumers.dispatcher.work import Work

log = get_logger(__name__)


class RecordProcessor:
    def __init__(
        self,
        settings: DispatchSettings,
        *,
        client: PlatformClient,
        producer: AsyncProducer,
        limiter: AdaptiveRateLimiter,
        pause: PlatformPause,
        metrics: DispatchMetrics,
        dedupe_for: Callable[[int], PartitionDedupe],
    ) -> None:
        self.s = settings
        self.client = client
        self.producer = producer
        self.limiter = limiter
        self.pause = pause
        self.metrics = metrics
        self.dedupe_for = dedupe_for
        self.locks = KeyedLocks()
        self.sem = asyncio.Semaphore(settings.dispatch_max_in_flight)
        self.result_codec = dispatch_result_codec()
        self.event_codec = call_event_codec()
        # compiled encoders (fastavro's bytes, a fifth of its CPU): two records per request
        self._encode_result = self.result_codec.encode
        self._encode_event = self.event_codec.encode

    # -- entry --------------------------------------------------------------------------------
    def already_answered(self, w: Work, dd: PartitionDedupe) -> bool:
        return w.source.topic == self.s.topic_requests and w.source.offset in dd.answered

    async def process(self, w: Work) -> None:
        dd = self.dedupe_for(w.source.partition)
        if self.already_answered(w, dd):
            self._skip(w)
            return
        try:
            req = parse_call_request(w.value, w.content_type)
        except ContractError as exc:
            await self._invalid_record(w, dd, exc)
            return
        if w.retry.due_ms:  # a retry record: wait until it is due
            wait_ms = w.retry.due_ms - now_ms()
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
        cid = req["correlation_id"]
        async with self.locks.hold(cid):
            if self.already_answered(w, dd):
                self._skip(w)
                return
            if cid in dd.queued:
                await self._finish(
                    w,
                    dd,
                    req,
                    "DUPLICATE",
                    message_id=dd.queued[cid],
                    description="correlation id already queued; not called again",
                )
                return
            await self._dispatch(w, dd, req)

    def _skip(self, w: Work) -> None:
        self.metrics.skipped.inc()
        log.info(
            "record already has a result; skipped",
            topic=w.topic,
            partition=w.partition,
            offset=w.offset,
            source_offset=w.source.offset,
        )

    # -- the call ---------------------------------------------------------------------------
    async def _dispatch(self, w: Work, dd: PartitionDedupe, req: CallRequest) -> None:
        """Call until the platform decides. The in-flight slot is held from the POST until the
        outcome is durable, so a crash re-calls at most ``max_in_flight`` records."""
        s = self.s
        body = encode_body(
            platform_body(
                req, default_notify_url=s.notify_url, default_receipts=s.dispatch_default_receipts
            )
        )
        probing = False
        while True:
            expires_at = req["expires_at"]
            if expires_at is not None and expires_at <= datetime.now(UTC):
                await self._finish(w, dd, req, "EXPIRED", description="expires_at passed")
                return
            if not probing and self.pause.paused:
                probing = await self.pause.gate(w)
            if probing:
                await asyncio.sleep(s.dispatch_probe_interval_s)
            else:
                await self.limiter.acquire()
            error: PlatformUnavailableError | RetryableError
            await self.sem.acquire()
            try:
                if self.pause.paused and not probing:
                    continue  # paused while this record waited for a slot: back to the gate
                w.attempts += 1
                w.phase = "http"
                await self._call_and_finish(w, dd, req, body, probing)
                return
            except (PlatformUnavailableError, RetryableError) as exc:
                w.phase = "wait"
                error = exc
            finally:
                self.sem.release()
            if isinstance(error, PlatformUnavailableError):
                if probing:
                    self.pause.still_paused(error)
                else:
                    self.pause.enter(error)
                continue
            if isinstance(error, ThrottledError):
                probing = probing and self.pause.leave()
                retry_after = error.retry_after
                if retry_after is not None:
                    retry_after = min(retry_after, s.dispatch_retry_after_cap_s)
                self.limiter.throttled(retry_after)
                w.throttles += 1
                delay = backoff_delay(
                    w.throttles,
                    s.dispatch_backoff_base_s,
                    s.dispatch_backoff_cap_s,
                    retry_after=retry_after,
                    retry_after_cap=s.dispatch_retry_after_cap_s,
                )
                if await self._wait_or_hand_over(w, delay, "throttled"):
                    return
                continue
            w.ambiguous = w.ambiguous or error.ambiguous
            if probing:
                continue
            w.failures += 1
            age_s = (now_ms() - w.retry.first_seen_ms) / 1000
            if w.failures >= s.dispatch_max_attempts or age_s >= s.dispatch_max_age_s:
                await self._finish(
                    w,
                    dd,
                    req,
                    "FAILED",
                    http_status=error.http_status,
                    code=error.code,
                    description=f"gave up after {w.failures} failures: {error}",
                    dlq=error,
                    stage="dispatch",
                )
                return
            delay = backoff_delay(w.failures, s.dispatch_backoff_base_s, s.dispatch_backoff_cap_s)
            if await self._wait_or_hand_over(w, delay, str(error)):
                return

    async def _call_and_finish(
        self, w: Work, dd: PartitionDedupe, req: CallRequest, body: bytes, probing: bool
    ) -> None:
        """One POST; a final answer is written out here (raises what calls for another try)."""
        try:
            accepted = await self._post(body, req["correlation_id"])
        except PermanentError as exc:
            if probing:
                self.pause.leave()
            await self._finish(
                w,
                dd,
                req,
                "INVALID",
                http_status=exc.http_status,
                code=exc.code,
                description=str(exc),
                dlq=exc,
                stage="platform",
            )
            return
        if probing:
            self.pause.leave()
        outcome: DispatchOutcome = accepted.outcome
        description = accepted.description
        if outcome == "DUPLICATE" and w.ambiguous:
            outcome = "QUEUED"
            description = "accepted by an earlier attempt whose answer was lost (409 on retry)"
        await self._finish(
            w,
            dd,
            req,
            outcome,
            http_status=accepted.http_status,
            code=accepted.platform_code,
            description=description,
            message_id=accepted.message_id,
        )

    async def _post(self, body: bytes, cid: str) -> Any:
        metrics = self.metrics
        started = time.monotonic()
        metrics.requests_on_wire += 1
        try:
            status, headers, raw = await self.client.post(body)
        except RetryableError:
            metrics.http_status("error").inc()
            raise
        finally:
            metrics.requests_on_wire -= 1
            metrics.http_latency.observe(time.monotonic() - started)
        metrics.http_status(status).inc()
        return classify(status, headers, raw, cid)

    async def _wait_or_hand_over(self, w: Work, delay: float, why: str) -> bool:
        """Short waits in memory (False: try again); long ones via the retry topic (True)."""
        if delay <= self.s.dispatch_in_memory_retry_max_s:
            self.metrics.retries.labels("memory").inc()
            await asyncio.sleep(delay)
            return False
        due = now_ms() + int(delay * 1000)
        headers = retry_headers(
            w.headers,
            source=w.source,
            attempts=w.attempts,
            failures=w.failures,
            first_seen_ms=w.retry.first_seen_ms,
            due_ms=due,
        )
        w.phase = "output"
        await self.producer.produce(
            self.s.topic_requests_retry,
            w.value,
            w.key,
            partition=w.source.partition,
            headers=headers,
        )
        self.metrics.retries.labels("topic").inc()
        log.info(
            "retry scheduled via retry topic",
            topic=w.topic,
            partition=w.partition,
            offset=w.offset,
            attempt=w.attempts,
            delay_s=round(delay, 3),
            reason=why[:200],
        )
        return True

    # -- outputs ------------------------------------------------------------------------------
    async def _invalid_record(self, w: Work, dd: PartitionDedupe, exc: ContractError) -> None:
        partial: dict[str, Any] = {}
        if isinstance(exc, ValidationError) and exc.partial:
            partial = dict(exc.partial)
        cid = partial.get("correlation_id")
        if not isinstance(cid, str) or not cid:
            cid = w.key.decode("utf-8", "replace") if w.key else None
        if not cid:
            cid = f"{w.source.topic}/{w.source.partition}/{w.source.offset}"
        msisdn = partial.get("msisdn")
        created = partial.get("created_at")
        attributes = partial.get("attributes")
        await self._emit(
            w,
            dd,
            cid,
            "INVALID",
            msisdn=msisdn if isinstance(msisdn, str) else "",
            requested_at=created if isinstance(created, datetime) else w.record_time(),
            attributes=attributes if isinstance(attributes, dict) else {},
            callback_data=None,
            description=str(exc),
            dlq=exc,
            stage="decode",
            reasons=[str(e) for e in exc.errors],
        )

    async def _finish(
        self,
        w: Work,
        dd: PartitionDedupe,
        req: CallRequest,
        outcome: DispatchOutcome,
        *,
        http_status: int | None = None,
        code: str | None = None,
        description: str | None = None,
        message_id: str | None = None,
        dlq: BaseException | None = None,
        stage: str = "dispatch",
    ) -> None:
        await self._emit(
            w,
            dd,
            req["correlation_id"],
            outcome,
            msisdn=req["msisdn"],
            requested_at=req["created_at"],
            attributes=req["attributes"],
            callback_data=req["callback_data"],
            http_status=http_status,
            code=code,
            description=description,
            message_id=message_id,
            dlq=dlq,
            stage=stage,
        )

    async def _emit(
        self,
        w: Work,
        dd: PartitionDedupe,
        cid: str,
        outcome: DispatchOutcome,
        *,
        msisdn: str,
        requested_at: datetime,
        attributes: dict[str, str],
        callback_data: str | None,
        http_status: int | None = None,
        code: str | None = None,
        description: str | None = None,
        message_id: str | None = None,
        dlq: BaseException | None = None,
        stage: str = "dispatch",
        reasons: list[str] | None = None,
    ) -> None:
        w.phase = "output"
        result = dispatch_result(
            correlation_id=cid,
            outcome=outcome,
            msisdn=msisdn,
            requested_at=requested_at,
            attempts=w.attempts,
            source=w.source,
            http_status=http_status,
            message_id=message_id,
            platform_code=code,
            description=description,
            attributes=attributes,
            callback_data=callback_data,
        )
        event_value = self._encode_event(call_event(result, w.source))
        if dlq is None:  # the common case: no gather (a task per awaitable)
            await self.producer.produce(self.s.topic_events, event_value, event_key(result))
        else:
            headers = dlq_headers(
                error=dlq,
                stage=stage,
                topic=w.source.topic,
                partition=w.source.partition,
                offset=w.source.offset,
                attempts=max(w.attempts, 1),
                timestamp_ms=w.timestamp_ms,
                reasons=reasons or [],
                extra=[("callstream.outcome", outcome.encode())],
            )
            await asyncio.gather(
                self.producer.produce(self.s.topic_events, event_value, event_key(result)),
                self.producer.produce(self.s.topic_requests_dlq, w.value, w.key, headers=headers),
            )
        await self.producer.produce(
            self.s.topic_dispatches,
            self._encode_result(result),
            cid.encode(),
            partition=w.source.partition,
        )
        answered = w.source.offset if w.source.topic == self.s.topic_requests else None
        dd.record(cid, outcome, message_id, answered)
        self.metrics.outcome(outcome).inc()
        if dlq is not None:
            self.metrics.dlq.inc()
        self.metrics.latency.observe(time.monotonic() - w.consumed_at)
        log.info(
            "dispatch outcome",
            outcome=outcome,
            correlation_id=cid,
            topic=w.topic,
            partition=w.partition,
            offset=w.offset,
            attempt=w.attempts,
            http_status=http_status,
            platform_code=code,
            message_id=message_id,
            msisdn=mask_msisdn(msisdn),
            description=(description or "")[:300] or None,
        )
