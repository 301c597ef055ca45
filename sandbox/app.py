"""The platform's routes: ``POST /v2/messages`` (Make Call) and ``GET /v2/messages/{messageId}``.

Order of checks on a Make Call: auth (401), body size and JSON (7022, 7000), request rules
(7003, 7004, 7101, 7102, 7107, 7126, 7009, 7005), TPS limit (429/7020), injected faults (latency,
hang, 500/503), duplicate correlation id (409/7130), then acceptance (201, or 206 when the Partial
Content fault refuses some destinations).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from asyncio import sleep
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from hmac import compare_digest
from typing import Any

import orjson
from aiohttp import web
from orjson import dumps

from sandbox import control
from sandbox.auth import authorized
from sandbox.exceptions import ApiError
from sandbox.faults import NO_FAULT, Fault, draw, fault_rng
from sandbox.ledger import CallRecord
from sandbox.lifecycle import message_id, message_rng, plan_call
from sandbox.parsing import parse_request
from sandbox.ratelimit import retry_after_header
from sandbox.settings import Behaviour, SandboxSettings
from sandbox.state import SandboxState
from sandbox.validation import CallRequest

STATE = web.AppKey("sandbox_state", SandboxState)
PLATFORM_TZ = timezone(timedelta(hours=-4))  # requestTimestamp as in the docs' sample
STATUS_TZ = timezone(timedelta(hours=5, minutes=30))  # GET status timestamps as in its sample
DUPLICATE_CODE = "7130"  # undocumented by the platform: the sandbox's choice
CLIENT_MAX_SIZE = 64 * 1024 * 1024
_JSON = "application/json"


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON, headers=headers)


class _Stamps:
    """ISO 8601 timestamps in one zone at millisecond resolution, formatted once per ms."""

    __slots__ = ("_ms", "_text", "_tz")

    def __init__(self, tz: timezone) -> None:
        self._tz = tz
        self._ms = -1
        self._text = ""

    def __call__(self, epoch: float) -> str:
        ms = int(epoch * 1000)
        if ms != self._ms:
            moment = datetime.fromtimestamp(ms / 1000, self._tz)
            self._ms, self._text = ms, moment.isoformat(timespec="milliseconds")
        return self._text


_request_stamp = _Stamps(PLATFORM_TZ)
_uid_prefix = str(uuid.uuid4())[:24]  # random per process: xxxxxxxx-xxxx-4xxx-yxxx-
_uid_counter = itertools.count(random.getrandbits(40))


def fast_uuid4() -> str:
    """A version-4-shaped UUID string, unique per process (random prefix + counter): message ids
    need uniqueness, not secrecy, and this costs a tenth of :func:`uuid.uuid4`."""
    return f"{_uid_prefix}{next(_uid_counter) & 0xFFFFFFFFFFFF:012x}"


def _plan(b: Behaviour, rng: random.Random) -> Any:
    return plan_call(
        rng,
        weights=b.outcome_weights(),
        delay_ms=(b.callback_delay_min_ms, b.callback_delay_max_ms),
        irregular_timestamps=b.irregular_timestamps,
        irregular_destination=b.irregular_destination,
        irregular_order=b.irregular_order,
    )


def _accept(
    st: SandboxState,
    req: CallRequest,
    b: Behaviour,
    rejected: frozenset[int],
    now: float,
    raw: bytes,
) -> list[dict[str, Any]]:
    """Register every destination not in ``rejected``; schedule its callbacks."""
    ledger = st.ledger
    accepted = time.time()  # later than ``now`` when a fault delayed the request
    stamp = _request_stamp(now)
    notify_url = req.notify_url or b.default_notify_url
    with_callbacks = b.callbacks and notify_url is not None
    results: list[dict[str, Any]] = []
    for index, dest in enumerate(req.destinations):
        cid = dest.correlation_id
        if index in rejected:
            results.append(
                {"msisdn": dest.msisdn, "correlationId": cid, "status": "rejected"}
                | {"code": "7102", "message": "Invalid destination"}
            )
            continue
        plan = None
        if b.seed is not None:
            key = (cid, dest.msisdn)
            ledger.nth[key] += 1
            rng = message_rng(b.seed, cid, dest.msisdn, ledger.nth[key])
            mid = message_id(rng)
            plan = _plan(b, rng)
        else:
            mid = fast_uuid4()
            if with_callbacks:
                plan = _plan(b, random.Random())
        ledger.add_call(mid, cid, dest.msisdn, accepted, raw, plan)
        if with_callbacks and plan is not None and notify_url is not None:
            call = CallRecord(mid, cid, dest.msisdn, accepted, raw)
            st.sender.schedule(call, plan, notify_url, req.receipts, req.callback_data, b)
        result = {"requestTimestamp": stamp, "messageId": mid}
        if cid is not None:
            result["correlationId"] = cid
        result["status"] = "queued"
        results.append(result)
    return results


def _duplicate(st: SandboxState, req: CallRequest, b: Behaviour) -> str | None:
    window = b.duplicate_window_seconds
    if not window:
        return None
    accepted_at = st.ledger.accepted_at
    for dest in req.destinations:
        cid = dest.correlation_id
        if cid is not None and cid in accepted_at and time.time() - accepted_at[cid] < window:
            return cid
    return None


def _conflict(
    st: SandboxState, cid: str | None, fault: str | None, now: float, raw: bytes
) -> web.Response:
    """The 409 for a correlation id accepted within the duplicate window, recorded."""
    message = f"Duplicate correlationId: {cid}"
    st.ledger.record_request(now, 409, DUPLICATE_CODE, message, fault, (), raw)
    return _json(409, {"code": DUPLICATE_CODE, "message": message})


def make_call_handler(st: SandboxState) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The Make Call handler of ``st`` (a closure: no application lookup per request).

    Every answer is computed first and handed to aiohttp only after one turn of the event loop
    (``await sleep(0)``): the requests that arrived together are all worked out before any answer
    is written, so the answers leave in a burst and wake the client once per burst rather than
    once per answer (what Redis does by writing replies just before its loop sleeps). On this
    2-core VM a wake-up costs the writer ~7 us of kernel time; measured with wrk, the burst took
    the sandbox from ~58 to ~47 us of CPU per request (docs/sandbox.md, "Performance")."""

    async def make_call(request: web.Request) -> web.Response:
        """Make Call. Every answer is recorded in the ledger with what was known when given."""
        b = st.behaviour
        now = time.time()
        ledger = st.ledger
        headers = request.headers
        key = headers.get("key")
        if not (
            key is not None
            and "Authorization" not in headers
            and compare_digest(key.encode(), st.key_bytes)
        ) and not authorized(headers, b, now):
            ledger.record_request(now, 401)
            return await _after_turn(web.Response(status=401))
        content = request.content  # a body that has all arrived is taken as is (no copy)
        raw = content.read_nowait() if content.is_eof() else await request.read()
        try:
            req = parse_request(raw, b.max_body_bytes, b.max_destinations, b.tps, now)
        except ApiError as exc:
            ledger.record_request(now, exc.http_status, exc.code, exc.message, raw=raw)
            return await _after_turn(
                _json(exc.http_status, {"code": exc.code, "message": exc.message})
            )
        destinations = req.destinations
        fault = NO_FAULT
        if not st.plain:  # plain: no bucket, no fault, no seed, so nothing to do here
            limited = await _limits_and_faults(st, b, destinations, now, raw)
            if isinstance(limited, web.Response):
                return await _after_turn(limited)
            fault = limited
        if (
            len(destinations) == 1
            and fault is NO_FAULT
            and b.seed is None
            and not (b.callbacks and (req.notify_url or b.default_notify_url))
        ):  # the common case, kept lean: one destination, no fault, no seed, no callbacks
            cid = destinations[0].correlation_id
            mid = ledger.accept_one(now, cid, raw, b.duplicate_window_seconds)
            if mid is None:
                return await _after_turn(_conflict(st, cid, None, now, raw))
            stamp = _request_stamp(now)
            if cid is None:
                body = {"requestTimestamp": stamp, "messageId": mid, "status": "queued"}
            else:
                body = {"requestTimestamp": stamp, "messageId": mid, "correlationId": cid}
                body["status"] = "queued"
            answer = web.Response(status=201, body=dumps(body), content_type=_JSON)
            await sleep(0)  # _after_turn inlined: one coroutine fewer on the hot path
            return answer
        return await _after_turn(_accept_many(st, req, b, fault, now, raw))

    return make_call


async def _after_turn(answer: web.Response) -> web.Response:
    """``answer`` after one turn of the event loop (see :func:`make_call_handler`)."""
    await sleep(0)
    return answer


async def _limits_and_faults(
    st: SandboxState, b: Behaviour, destinations: tuple[Any, ...], now: float, raw: bytes
) -> Fault | web.Response:
    """The TPS limit (429) and the injected faults (latency, hang, 500/503) of a valid request:
    its fault, or the answer to give instead."""
    record = st.ledger.record_request
    if st.bucket is not None:
        wait = st.bucket.try_acquire(time.monotonic(), len(destinations))
        if wait:
            message = "Max transaction limit exceeded"
            record(now, 429, "7020", message, None, (), raw)
            retry = {"Retry-After": retry_after_header(wait)}
            return _json(429, {"code": "7020", "message": message}, retry)
    fault = NO_FAULT
    if st.has_faults:
        first = destinations[0].correlation_id
        seen = st.seen.get(first, 0) if first is not None else 0
        key = f"{first}|{seen}" if first is not None else str(st.ledger.request_seq)
        if first is not None:
            st.seen[first] = seen + 1
        fault = draw(b, fault_rng(b.seed, key), len(destinations))
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault.kind is not None:
            status = 500 if fault.kind == "error_500" else 503
            if fault.kind == "hang":
                await asyncio.sleep(b.hang_seconds)
            if fault.kind != "hang" or b.hang_then == "error":
                record(now, status, None, None, fault.kind, (), raw)
                text = "Internal Server Error" if status == 500 else "Service Unavailable"
                return web.Response(status=status, text=text)
    return fault


def _accept_many(
    st: SandboxState, req: CallRequest, b: Behaviour, fault: Fault, now: float, raw: bytes
) -> web.Response:
    """Acceptance in the general case: several destinations, a fault, a seed or callbacks."""
    record = st.ledger.record_request
    destinations = req.destinations
    duplicate = _duplicate(st, req, b)
    if duplicate is not None:
        return _conflict(st, duplicate, fault.kind, now, raw)
    results = _accept(st, req, b, fault.rejected, now, raw)
    if len(destinations) == 1:
        record(now, 201, None, None, fault.kind, results[0]["messageId"], raw)
        return _json(201, results[0])
    status = 206 if fault.rejected else 201
    mids = tuple(r["messageId"] for r in results if "messageId" in r)
    record(now, status, None, None, fault.kind, mids, raw)
    for result, dest in zip(results, destinations, strict=True):
        result.setdefault("msisdn", dest.msisdn)
    return _json(status, results)


async def call_status(request: web.Request) -> web.Response:
    st = request.app[STATE]
    b = st.behaviour
    if not authorized(request.headers, b, time.time()):
        return web.Response(status=401)
    call = st.ledger.call(request.match_info["message_id"])
    if call is None:
        return _json(404, {"code": "404", "message": "messageId not found"})
    plan = st.ledger.plans.get(call.message_id)
    if plan is None:
        plan = st.ledger.plans[call.message_id] = _plan(b, random.Random())
    elapsed_ms = (time.time() - call.accepted_at) * 1000
    answered = plan.answered_offset_ms()

    def at(offset_ms: float | None) -> str | None:
        if offset_ms is None or offset_ms > elapsed_ms:
            return None
        moment = datetime.fromtimestamp(call.accepted_at + offset_ms / 1000, STATUS_TZ)
        return moment.isoformat(timespec="milliseconds")

    ended = at(plan.duration_ms)
    duration = 0
    if answered is not None and ended is not None:
        duration = round((plan.duration_ms - answered) / 1000)
    return _json(
        200,
        {
            "messageId": call.message_id,
            "correlationId": call.correlation_id,
            "status": plan.status_at(elapsed_ms, sample_case=b.irregular_status_sample),
            "requestTimestamp": datetime.fromtimestamp(call.accepted_at, STATUS_TZ).isoformat(
                timespec="milliseconds"
            ),
            "answeredAt": at(answered),
            "endedAt": ended,
            "callDuration": duration,
            "from": call.request_field("from"),
            "to": call.msisdn,
            "direction": "outbound",
            "callbackData": call.request_field("callbackData"),
            "notifyUrl": call.request_field("notifyUrl", "notifyurl") or b.default_notify_url,
        },
    )


def build_app(settings: SandboxSettings | None = None) -> web.Application:
    """The sandbox as an aiohttp application (platform routes + ``/_sandbox`` control routes)."""
    state = SandboxState(settings or SandboxSettings())
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[STATE] = state
    app.router.add_post("/v2/messages", make_call_handler(state))
    app.router.add_get("/v2/messages/{message_id}", call_status)
    control.add_routes(app, STATE)

    async def callbacks_ctx(_: web.Application) -> Any:
        await state.sender.start()
        yield
        await state.sender.close()

    app.cleanup_ctx.append(callbacks_ctx)
    return app
