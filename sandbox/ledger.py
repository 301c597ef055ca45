"""What the sandbox received and sent, for tests to check (``GET /_sandbox/ledger``).

Shape of :meth:`Ledger.snapshot` (documented in ``docs/sandbox.md``)::

    {"requests":  [{"seq", "received_at", "method", "path", "http_status", "code", "message",
                    "fault", "correlation_ids", "message_ids", "msisdns", "body"}],
     "callbacks": [{"seq", "message_id", "correlation_id", "msisdn", "event", "deliveryStatus",
                    "code", "notify_url", "scheduled_at", "attempts": [{"at", "status", "error"}],
                    "delivered", "state", "signature", "body", "raw"}],
     "summary":   {"requests", "by_status", "by_code", "accepted", "accepted_by_correlation_id",
                   "duplicated_correlation_ids", "callbacks", "callbacks_by_state"}}

The lists keep the newest ``limit`` entries; the counters in ``summary`` count everything since
the last reset, so "each correlation id accepted exactly once" holds for any volume.

Kept per request: one tuple of atoms holding the raw body as received; correlation ids and
numbers are read back from it when the ledger is asked for. The garbage collector stops tracking
such tuples and little memory is touched, which keeps the request path fast.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from sandbox.lifecycle import CallPlan


def _loose_json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:4096].decode("utf-8", errors="replace")


def _destinations(body: Any) -> tuple[list[str], list[str]]:
    """(sorted correlation ids, msisdns) of a request body, as far as it has them."""
    cids: set[str] = set()
    msisdns: list[str] = []
    if not isinstance(body, dict):
        return [], []
    top = body.get("correlationId", body.get("correlationid"))
    to = body.get("to")
    for entry in to if isinstance(to, list) else []:
        if not isinstance(entry, dict):
            continue
        cid = entry.get("correlationId", entry.get("correlationid", top))
        numbers = entry.get("msisdn")
        for number in numbers if isinstance(numbers, list) else []:
            msisdns.append(str(number))
            if isinstance(cid, str):
                cids.add(cid)
    return sorted(cids), msisdns


class CallRecord(NamedTuple):
    """One accepted destination: what GET /v2/messages/{id} reports on."""

    message_id: str
    correlation_id: str | None
    msisdn: str
    accepted_at: float  # epoch seconds (time.time(): the same float object as the request's)
    raw: bytes  # the request's body (shared with its RequestRecord)

    def request_field(self, name: str, other: str | None = None) -> Any:
        body = _loose_json(self.raw)
        if not isinstance(body, dict):
            return None
        value = body.get(name)
        return body.get(other) if value is None and other else value


class RequestRecord(NamedTuple):
    seq: int
    received_at: float  # epoch seconds
    http_status: int
    code: str | None
    message: str | None
    fault: str | None
    message_ids: str | tuple[str, ...]
    raw: bytes | None  # the body as received (None: not read, e.g. on 401)

    def as_json(self) -> dict[str, Any]:
        body = _loose_json(self.raw)
        cids, msisdns = _destinations(body) if self.http_status != 401 else ([], [])
        mids = self.message_ids
        return {
            "seq": self.seq,
            "received_at": datetime.fromtimestamp(self.received_at, UTC).isoformat(
                timespec="milliseconds"
            ),
            "method": "POST",
            "path": "/v2/messages",
            "http_status": self.http_status,
            "code": self.code,
            "message": self.message,
            "fault": self.fault,
            "correlation_ids": cids,
            "message_ids": [mids] if isinstance(mids, str) else list(mids),
            "msisdns": msisdns,
            "body": body,
        }


@dataclass(slots=True)
class Ledger:
    limit: int
    requests: deque[RequestRecord] = field(init=False)
    callbacks: deque[dict[str, Any]] = field(init=False)
    calls: dict[str, CallRecord] = field(init=False)  # message id -> call (newest ``limit``)
    _call_order: deque[str] = field(init=False)
    plans: dict[str, CallPlan] = field(init=False)  # message id -> plan, once drawn
    accepted_at: dict[str, float] = field(init=False)  # correlation id -> last acceptance (epoch)
    repeats: dict[str, int] = field(init=False)  # correlation id -> acceptances beyond the 1st
    accepted_total: int = 0
    by_status: dict[int, int] = field(init=False)
    by_code: Counter[str] = field(init=False)
    nth: Counter[tuple[str | None, str]] = field(init=False)  # acceptances per destination
    callback_states: Counter[str] = field(init=False)
    request_seq: int = 0
    callback_seq: int = 0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = deque(maxlen=self.limit)
        self.callbacks = deque(maxlen=self.limit)
        self.calls = {}
        self._call_order = deque()
        self.plans = {}
        self.accepted_at = {}
        self.repeats = {}
        self.accepted_total = 0
        self.by_status = {}
        self.by_code = Counter()
        self.nth = Counter()
        self.callback_states = Counter()
        self.request_seq = 0
        self.callback_seq = 0

    def record_request(
        self,
        received_at: float,
        http_status: int,
        code: str | None = None,
        message: str | None = None,
        fault: str | None = None,
        message_ids: str | tuple[str, ...] = (),
        raw: bytes | None = None,
    ) -> None:
        seq = self.request_seq = self.request_seq + 1
        by_status = self.by_status
        by_status[http_status] = by_status.get(http_status, 0) + 1
        if code is not None:
            self.by_code[code] += 1
        self.requests.append(
            RequestRecord(seq, received_at, http_status, code, message, fault, message_ids, raw)
        )

    def add_call(self, call: CallRecord, plan: CallPlan | None) -> None:
        mid = call.message_id
        self.calls[mid] = call
        order = self._call_order
        order.append(mid)
        if plan is not None:
            self.plans[mid] = plan
        if len(order) > self.limit:
            oldest = order.popleft()
            del self.calls[oldest]
            self.plans.pop(oldest, None)
        self.accepted_total += 1
        cid = call.correlation_id
        if cid is not None:
            if cid in self.accepted_at:
                self.repeats[cid] = self.repeats.get(cid, 0) + 1
            self.accepted_at[cid] = call.accepted_at

    def accepted_counts(self) -> dict[str, int]:
        repeats = self.repeats
        return {cid: 1 + repeats.get(cid, 0) for cid in self.accepted_at}

    def new_callback(self, entry: dict[str, Any]) -> dict[str, Any]:
        self.callback_seq += 1
        entry["seq"] = self.callback_seq
        entry.setdefault("attempts", [])
        entry.setdefault("delivered", False)
        entry.setdefault("state", "pending")
        self.callback_states["pending"] += 1
        self.callbacks.append(entry)
        return entry

    def settle_callback(self, entry: dict[str, Any], state: str) -> None:
        self.callback_states[entry["state"]] -= 1
        self.callback_states[state] += 1
        entry["state"] = state
        entry["delivered"] = state == "delivered"

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.request_seq,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_code": dict(sorted(self.by_code.items())),
            "accepted": self.accepted_total,
            "accepted_by_correlation_id": self.accepted_counts(),
            "duplicated_correlation_ids": sorted(self.repeats),
            "callbacks": self.callback_seq,
            "callbacks_by_state": {k: v for k, v in self.callback_states.items() if v},
        }

    def snapshot(self, *, since: int = 0) -> dict[str, Any]:
        return {
            "requests": [r.as_json() for r in self.requests if r.seq > since],
            "callbacks": list(self.callbacks),
            "summary": self.summary(),
        }
