"""Callbacks to notifyUrl: the events of each accepted call, POSTed in its planned order, signed,
retried as the platform does, and recorded in the ledger.

One long-lived :class:`aiohttp.ClientSession` serves every callback; a semaphore bounds the POSTs
in flight. Scheduling a call only creates a task, so the request path never waits on callbacks.

Retry rule (contract section 4): no answer, timeout, 401, 403, 429 and 5xx are retried
``callback_retries`` times ``callback_retry_delay_seconds`` apart; any other status is final.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from callstream.log import get_logger
from sandbox.ledger import CallRecord, Ledger
from sandbox.lifecycle import (
    DROPPED,
    WITHOUT_IDS,
    CallPlan,
    EventKind,
    destination_form,
    format_timestamp,
)
from sandbox.settings import Behaviour

log = get_logger(__name__)
RETRY_STATUSES = frozenset({401, 403, 429})


def should_retry(status: int | None) -> bool:
    """``None`` stands for no answer (connection error or timeout)."""
    return status is None or status in RETRY_STATUSES or status >= 500


def host_allowed(url: str, allowed: str) -> bool:
    """Whether the callback may go to ``url``'s host (``allowed``: comma-separated, ``*`` = any)."""
    names = {h.strip().lower() for h in allowed.split(",") if h.strip()}
    if "*" in names:
        return True
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and host.lower() in names


def sign(raw: bytes, secret: str, prefix: str = "") -> str:
    """``x-hub-signature``: hex HMAC-SHA256 of the raw body."""
    return prefix + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def callback_body(
    call: CallRecord,
    plan: CallPlan,
    kind: EventKind,
    timestamp: str,
    *,
    callback_data: str | None,
    drop_ids: bool,
) -> dict[str, Any]:
    """The body the platform POSTs for one event; every value a string."""
    notification: dict[str, Any] = {
        "deliveryInfo": {
            "timeStamp": timestamp,
            "Description": kind.description,
            "code": kind.code,
            "deliveryChannel": "voice",
            "additionalInfo": "",
            "destination": destination_form(call.msisdn, plan.destination_plus),
            "destinationType": "msisdn",
            "deliveryStatus": kind.delivery_status,
        },
        "subtid": plan.subtid,
        "transid": call.message_id,
    }
    if not (drop_ids and kind.receipt in WITHOUT_IDS):
        notification["callbackData"] = callback_data or ""
        notification["correlationid"] = call.correlation_id or ""
    if kind is DROPPED:
        trans_info = (
            f"<deliveryTransInfo><transid>{call.message_id}</transid>"
            f"<outcome>{plan.outcome}</outcome></deliveryTransInfo>"
        )
        return {"deliveryTransInfo": trans_info, "deliveryInfoNotification": notification}
    return {"deliveryInfoNotification": notification}


class CallbackSender:
    def __init__(self, ledger: Ledger, concurrency: int) -> None:
        self._ledger = ledger
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._semaphore = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._concurrency)
        self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        await self.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def schedule(
        self,
        call: CallRecord,
        plan: CallPlan,
        notify_url: str,
        receipts: frozenset[str] | None,
        callback_data: str | None,
        behaviour: Behaviour,
    ) -> None:
        self._spawn(self._run_call(call, plan, notify_url, receipts, callback_data, behaviour))

    async def _run_call(
        self,
        call: CallRecord,
        plan: CallPlan,
        notify_url: str,
        receipts: frozenset[str] | None,
        callback_data: str | None,
        b: Behaviour,
    ) -> None:
        for step, offset_ms in zip(plan.steps, plan.offsets_ms, strict=True):
            wait = call.accepted_at + offset_ms / 1000 - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            moment = datetime.now(UTC)
            timestamp = format_timestamp(moment, plan.ts_style, plan.tz_offset_minutes)
            for kind in step:
                if receipts is not None and kind.receipt not in receipts:
                    continue
                body = callback_body(
                    call,
                    plan,
                    kind,
                    timestamp,
                    callback_data=callback_data,
                    drop_ids=b.irregular_missing_ids,
                )
                raw = orjson.dumps(body)
                secret = b.webhook_secret.get_secret_value()
                signature = sign(raw, secret, b.webhook_signature_prefix) if secret else None
                entry = self._ledger.new_callback(
                    {
                        "message_id": call.message_id,
                        "correlation_id": call.correlation_id,
                        "msisdn": call.msisdn,
                        "event": kind.receipt,
                        "deliveryStatus": kind.delivery_status,
                        "code": kind.code,
                        "notify_url": notify_url,
                        "scheduled_at": moment.isoformat(timespec="milliseconds"),
                        "signature": signature,
                        "body": body,
                        "raw": raw.decode(),
                    }
                )
                self._spawn(self._deliver(entry, raw, notify_url, signature, b))

    async def _deliver(
        self,
        entry: dict[str, Any],
        raw: bytes,
        url: str,
        signature: str | None,
        b: Behaviour,
    ) -> None:
        if not host_allowed(url, b.callback_hosts):
            entry["attempts"].append(
                {
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "status": None,
                    "error": "host not in callback_hosts: not sent",
                }
            )
            self._ledger.settle_callback(entry, "blocked")
            return
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["x-hub-signature"] = signature
        if b.webhook_auth_header:
            headers[b.webhook_auth_header] = b.webhook_auth_value.get_secret_value()
        timeout = aiohttp.ClientTimeout(total=b.callback_timeout_seconds)
        for attempt in range(1 + b.callback_retries):
            if attempt:
                await asyncio.sleep(b.callback_retry_delay_seconds)
            status, error = await self._post(url, raw, headers, timeout)
            entry["attempts"].append(
                {
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "status": status,
                    "error": error,
                }
            )
            if status is not None and 200 <= status < 300:
                self._ledger.settle_callback(entry, "delivered")
                return
            if not should_retry(status):
                self._ledger.settle_callback(entry, "refused")
                return
        log.info("callback dropped", message_id=entry["message_id"], callback_event=entry["event"])
        self._ledger.settle_callback(entry, "failed")

    async def _post(
        self, url: str, raw: bytes, headers: dict[str, str], client_timeout: aiohttp.ClientTimeout
    ) -> tuple[int | None, str | None]:
        if self._session is None:
            raise RuntimeError("CallbackSender.start() was not awaited")
        async with self._semaphore:
            try:
                async with self._session.post(
                    url, data=raw, headers=headers, timeout=client_timeout, allow_redirects=False
                ) as response:
                    await response.read()
                    return response.status, None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return None, f"{type(exc).__name__}: {exc}"
