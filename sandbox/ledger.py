"""What the sandbox received and sent, for tests to check (``GET /_sandbox/ledger``).

Shape of :meth:`Ledger.snapshot` (documented in ``docs/sandbox.md``)::

    {"requests":  [{"seq", "received_at", "method", "path", "http_status", "code", "message",
                    "fault", "correlation_ids", "message_ids", "msisdns", "body"}],
     "callbacks": [{"seq", "message_id", "correlation_id", "msisdn", "event", "deliveryStatus",
                    "code", "notify_url", "scheduled_at", "attempts": [{"at", "status", "error"}],
                    "delivered", "state", "signature", "body", "raw"}],
     "summary":   {"requests", "by_status", "by_code", "accepted", "accepted_by_correlation_id",
                   "duplicated_correlation_ids", "correlation_ids_forgotten", "callbacks",
                   "callbacks_by_state"}}

The lists keep the newest ``limit`` entries; the counters in ``summary`` count everything since
the last reset (per-correlation-id counts for the newest ``id_limit`` ids, see :class:`Ledger`),
so "each correlation id accepted exactly once" can be checked on large volumes.

Kept per request: its fields (the raw body as received among them) stored into ring buffers, one
list per field; correlation ids and numbers are read back from the body when the ledger is asked
for, as :class:`RequestRecord` and :class:`CallRecord`. Storing atoms into existing lists creates
no object the garbage collector tracks: one tuple per request and one per call (a NamedTuple is
never untracked) made collections run every few hundred requests and walk the whole ledger.

A request accepted by the request path's common case (:meth:`Ledger.accept_one`: one
destination) is its own call record: its message id is derived from its sequence number, so it
needs no message-id entry, no call slot and no id string kept.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from sandbox.lifecycle import CallPlan

_MID_MASK = 0xFFFFFFFFFFFF  # 12 hex digits


def _loose_json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:4096].decode("utf-8", errors="replace")


def _either(body: dict[str, Any], name: str, other: str) -> Any:
    """``body[name]``, or ``body[other]`` when that is absent or null (as validation reads it)."""
    value = body.get(name)
    return body.get(other) if value is None else value


def _destinations(body: Any) -> tuple[list[str], list[str]]:
    """(sorted correlation ids, msisdns) of a request body, as far as it has them."""
    cids: set[str] = set()
    msisdns: list[str] = []
    if not isinstance(body, dict):
        return [], []
    top = _either(body, "correlationId", "correlationid")
    to = body.get("to")
    for entry in to if isinstance(to, list) else []:
        if not isinstance(entry, dict):
            continue
        cid = _either(entry, "correlationId", "correlationid")
        cid = top if cid is None else cid
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
    """Requests and calls are kept in ring buffers of ``limit`` slots, one list per field: a
    request stores atoms into existing lists and allocates no container, so the request path
    creates nothing the garbage collector must track (or ever walk, beyond the lists).

    Correlation ids are counted (``accepted_at``, ``repeats``) up to ``id_limit`` of them: past
    it the oldest tenth, in first-acceptance order, is forgotten at once (amortized O(1) per id)
    and ``ids_forgotten`` counts them, so a sandbox left under load does not grow without bound
    and a test can tell that its counts are no longer complete. A forgotten id is no longer a
    duplicate for the 409 window."""

    limit: int
    id_limit: int = 2_000_000
    callbacks: deque[dict[str, Any]] = field(init=False)
    # requests: seq s is in slot (s - 1) % limit of each list, while s > request_seq - limit
    _req_at: list[float] = field(init=False)
    _req_status: list[int] = field(init=False)
    _req_extra: list[tuple[str | None, str | None, str | None] | None] = field(init=False)
    # None: a call of accept_one, its id derived from the seq (no other request stores None)
    _req_mids: list[str | tuple[str, ...] | None] = field(init=False)
    _req_raw: list[bytes | None] = field(init=False)
    # calls: the n-th call (from 0) is in slot n % limit; ``calls`` maps its message id to n
    calls: dict[str, int] = field(init=False)
    _call_count: int = 0
    _call_mid: list[str] = field(init=False)
    _call_cid: list[str | None] = field(init=False)
    _call_msisdn: list[str] = field(init=False)
    _call_at: list[float] = field(init=False)
    _call_raw: list[bytes] = field(init=False)
    plans: dict[str, CallPlan] = field(init=False)  # message id -> plan, once drawn
    accepted_at: dict[str, float] = field(init=False)  # correlation id -> last acceptance (epoch)
    repeats: dict[str, int] = field(init=False)  # correlation id -> acceptances beyond the 1st
    accepted_total: int = 0
    ids_forgotten: int = 0
    by_status: dict[int, int] = field(init=False)
    by_code: Counter[str] = field(init=False)
    nth: Counter[tuple[str | None, str]] = field(init=False)  # acceptances per destination
    callback_states: Counter[str] = field(init=False)
    request_seq: int = 0
    callback_seq: int = 0
    # ids of calls accepted by accept_one: _mid_prefix + 12 hex digits of _mid_origin + seq
    # (_mid_origin moves past every seq used, so ids stay unique across resets)
    _mid_prefix: str = field(init=False, default_factory=lambda: str(uuid.uuid4())[:24])
    _mid_origin: int = field(init=False, default_factory=lambda: random.getrandbits(40))

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._mid_origin += self.request_seq
        self.callbacks = deque(maxlen=self.limit)
        self._req_at, self._req_status, self._req_extra = [], [], []
        self._req_mids, self._req_raw = [], []
        self.calls = {}
        self._call_count = 0
        self._call_mid, self._call_cid, self._call_msisdn = [], [], []
        self._call_at, self._call_raw = [], []
        self.plans = {}
        self.accepted_at = {}
        self.repeats = {}
        self.accepted_total = 0
        self.ids_forgotten = 0
        self.by_status = {}
        self.by_code = Counter()
        self.nth = Counter()
        self.callback_states = Counter()
        self.request_seq = 0
        self.callback_seq = 0

    def _store_request(
        self,
        received_at: float,
        http_status: int,
        extra: tuple[str | None, str | None, str | None] | None,
        message_ids: str | tuple[str, ...] | None,
        raw: bytes | None,
    ) -> None:
        seq = self.request_seq = self.request_seq + 1
        by_status = self.by_status
        by_status[http_status] = by_status.get(http_status, 0) + 1
        slot = (seq - 1) % self.limit
        ats = self._req_at
        if slot == len(ats):  # still filling
            ats.append(received_at)
            self._req_status.append(http_status)
            self._req_extra.append(extra)
            self._req_mids.append(message_ids)
            self._req_raw.append(raw)
        else:
            if self.plans and self._req_mids[slot] is None:  # a call of accept_one leaves
                self.plans.pop(self._derived_mid(seq - self.limit), None)
            ats[slot] = received_at
            self._req_status[slot] = http_status
            self._req_extra[slot] = extra
            self._req_mids[slot] = message_ids
            self._req_raw[slot] = raw

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
        if code is not None:
            self.by_code[code] += 1
        extra = (
            None if code is None and message is None and fault is None else (code, message, fault)
        )
        self._store_request(received_at, http_status, extra, message_ids, raw)

    def add_call(
        self,
        mid: str,
        cid: str | None,
        msisdn: str,
        accepted_at: float,
        raw: bytes,
        plan: CallPlan | None = None,
    ) -> None:
        """Register an accepted destination (the fields of :class:`CallRecord`)."""
        self._store_call(mid, cid, msisdn, accepted_at, raw)
        if plan is not None:
            self.plans[mid] = plan
        if cid is not None:
            accepted = self.accepted_at
            if cid in accepted:
                self.repeats[cid] = self.repeats.get(cid, 0) + 1
            elif len(accepted) >= self.id_limit:
                self._forget_oldest_ids()
            self.accepted_at[cid] = accepted_at

    def _store_call(
        self, mid: str, cid: str | None, msisdn: str, accepted_at: float, raw: bytes
    ) -> None:
        n = self._call_count
        self._call_count = n + 1
        self.accepted_total += 1
        slot = n % self.limit
        calls = self.calls
        mids = self._call_mid
        if slot == len(mids):  # still filling
            mids.append(mid)
            self._call_cid.append(cid)
            self._call_msisdn.append(msisdn)
            self._call_at.append(accepted_at)
            self._call_raw.append(raw)
        else:  # the oldest call leaves (one dict probe: pop, and put back if re-registered)
            oldest = mids[slot]
            gone = calls.pop(oldest, None)
            if gone is not None:
                if gone != n - self.limit:
                    calls[oldest] = gone
                elif self.plans:
                    self.plans.pop(oldest, None)
            mids[slot] = mid
            self._call_cid[slot] = cid
            self._call_msisdn[slot] = msisdn
            self._call_at[slot] = accepted_at
            self._call_raw[slot] = raw
        calls[mid] = n

    def accept_one(
        self, received_at: float, cid: str | None, raw: bytes, window: float
    ) -> str | None:
        """The request path's common case: a valid request with a single destination, no fault,
        no plan yet. Records the request (201) as its own call and returns the call's message
        id; or, when ``cid`` was accepted less than ``window`` seconds ago (0 = no window),
        records nothing and returns None (the caller answers 409).

        Kept lean because it runs for every call of a benchmark: one probe of the (large)
        duplicate dict when the id is new, five stores into the request ring, and nothing else:
        the message id is derived from the request's seq (:meth:`_derived_mid`), and the
        correlation id and number are read back from ``raw`` when the call is looked up."""
        if cid is not None:
            accepted = self.accepted_at
            size = len(accepted)
            last = accepted.setdefault(cid, received_at)
            if len(accepted) == size:  # accepted before
                if window and received_at - last < window:
                    return None
                self.repeats[cid] = self.repeats.get(cid, 0) + 1
                accepted[cid] = received_at
            elif size >= self.id_limit:
                self._forget_oldest_ids()
        self.accepted_total += 1
        self._store_request(received_at, 201, None, None, raw)
        return self._derived_mid(self.request_seq)

    def _derived_mid(self, seq: int) -> str:
        return f"{self._mid_prefix}{(self._mid_origin + seq) & _MID_MASK:012x}"

    def _derived_seq(self, message_id: str) -> int | None:
        """The seq of the kept request whose derived message id is ``message_id``, if any."""
        prefix = self._mid_prefix
        if len(message_id) != len(prefix) + 12 or not message_id.startswith(prefix):
            return None
        try:
            seq = (int(message_id[len(prefix) :], 16) - self._mid_origin) & _MID_MASK
        except ValueError:
            return None
        kept = self.request_seq - len(self._req_at)
        if not kept < seq <= self.request_seq or self._derived_mid(seq) != message_id:
            return None  # the last check refuses other spellings int() takes (0x, _, A-F)
        slot = (seq - 1) % self.limit
        return seq if self._req_mids[slot] is None else None

    def _forget_oldest_ids(self) -> None:
        """Drop the oldest tenth of the counted correlation ids (at least one, and always so that
        at most ``id_limit`` remain, the newest included)."""
        accepted, repeats = self.accepted_at, self.repeats
        drop = max(len(accepted) - self.id_limit, self.id_limit // 10, 1)
        items = iter(accepted.items())
        for cid, _ in itertools.islice(items, drop):
            repeats.pop(cid, None)
        self.accepted_at = dict(items)
        self.ids_forgotten += drop

    def call(self, message_id: str) -> CallRecord | None:
        n = self.calls.get(message_id)
        if n is None:
            seq = self._derived_seq(message_id)
            if seq is None:
                return None
            slot = (seq - 1) % self.limit
            raw = self._req_raw[slot]
            assert raw is not None  # accepted, so its body was read
            cids, msisdns = _destinations(_loose_json(raw))  # one destination: validated
            cid = cids[0] if cids else None
            return CallRecord(message_id, cid, msisdns[0], self._req_at[slot], raw)
        slot = n % self.limit
        raw = self._call_raw[slot]
        return CallRecord(
            self._call_mid[slot],
            self._call_cid[slot],
            self._call_msisdn[slot],
            self._call_at[slot],
            raw,
        )

    def requests(self, since: int = 0) -> list[RequestRecord]:
        """The requests kept (the newest ``limit``) with a seq above ``since``, oldest first."""
        first = max(since, self.request_seq - len(self._req_at)) + 1
        out: list[RequestRecord] = []
        for seq in range(first, self.request_seq + 1):
            slot = (seq - 1) % self.limit
            code, message, fault = self._req_extra[slot] or (None, None, None)
            out.append(
                RequestRecord(
                    seq,
                    self._req_at[slot],
                    self._req_status[slot],
                    code,
                    message,
                    fault,
                    self._mids_of(seq, slot),
                    self._req_raw[slot],
                )
            )
        return out

    def _mids_of(self, seq: int, slot: int) -> str | tuple[str, ...]:
        mids = self._req_mids[slot]
        return self._derived_mid(seq) if mids is None else mids

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
            "correlation_ids_forgotten": self.ids_forgotten,
            "callbacks": self.callback_seq,
            "callbacks_by_state": {k: v for k, v in self.callback_states.items() if v},
        }

    def snapshot(self, *, since: int = 0) -> dict[str, Any]:
        return {
            "requests": [r.as_json() for r in self.requests(since)],
            "callbacks": list(self.callbacks),
            "summary": self.summary(),
        }
