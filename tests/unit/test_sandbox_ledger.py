"""The ledger: ring buffers of the newest ``limit`` requests and calls, exact counters, the
request path's :meth:`Ledger.accept_one` (duplicate window, repeats, message ids derived from the
request's seq, the call read back from the body), and the bound on counted correlation ids
(``id_limit``)."""

from __future__ import annotations

import gc
import uuid

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.ledger import Ledger


def _raw(cid: str, number: str = "+14155550123") -> bytes:
    return orjson.dumps({"to": [{"msisdn": [number], "correlationId": cid}]})


def test_keeps_the_newest_limit_and_counts_everything() -> None:
    ledger = Ledger(3)
    mids = [ledger.accept_one(float(i), f"c{i}", _raw(f"c{i}"), 0.0) for i in range(5)]
    ledger.record_request(9.0, 409, "7130", "Duplicate correlationId: c4", None, (), _raw("c4"))
    assert [r.seq for r in ledger.requests()] == [4, 5, 6]
    assert [r.seq for r in ledger.requests(since=5)] == [6]
    assert [r.message_ids for r in ledger.requests()] == [mids[3], mids[4], ()]
    last = ledger.requests()[-1]
    assert (last.http_status, last.code, last.message_ids) == (409, "7130", ())
    # a call of accept_one is kept as long as its request is
    assert [ledger.call(str(m)) is None for m in mids] == [True, True, True, False, False]
    call = ledger.call(str(mids[4]))
    assert call is not None
    assert (call.message_id, call.correlation_id, call.accepted_at) == (mids[4], "c4", 4.0)
    assert call.request_field("to") == [{"msisdn": ["+14155550123"], "correlationId": "c4"}]
    summary = ledger.summary()
    assert summary["requests"] == 6
    assert summary["accepted"] == 5
    assert summary["accepted_by_correlation_id"] == {f"c{i}": 1 for i in range(5)}
    snapshot = ledger.snapshot(since=4)
    assert [r["seq"] for r in snapshot["requests"]] == [5, 6]
    assert snapshot["requests"][0]["correlation_ids"] == ["c4"]


def test_request_path_creates_nothing_the_collector_tracks() -> None:
    ledger = Ledger(100)
    raws = [_raw(f"c{i}") for i in range(1000)]
    cids = [f"c{i}" for i in range(1000)]
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for i, raw in enumerate(raws):
            ledger.accept_one(float(i), cids[i], raw, 0.0)
        assert len(gc.get_objects()) - before < 10
    finally:
        gc.enable()


def test_duplicate_within_the_window_records_nothing() -> None:
    ledger = Ledger(10)
    assert ledger.accept_one(100.0, "c1", _raw("c1"), 60.0) is not None
    assert ledger.accept_one(130.0, "c1", _raw("c1"), 60.0) is None  # 30 s later: a duplicate
    assert ledger.summary()["requests"] == 1
    assert ledger.summary()["accepted_by_correlation_id"] == {"c1": 1}
    # outside the window: accepted again, counted as a repeat, window restarts from now
    assert ledger.accept_one(170.0, "c1", _raw("c1"), 60.0) is not None
    assert ledger.accepted_at["c1"] == 170.0
    summary = ledger.summary()
    assert summary["accepted_by_correlation_id"] == {"c1": 2}
    assert summary["duplicated_correlation_ids"] == ["c1"]
    assert summary["by_status"] == {"201": 2}
    # no window: never a duplicate
    assert ledger.accept_one(171.0, "c1", _raw("c1"), 0.0) is not None
    assert ledger.summary()["accepted_by_correlation_id"] == {"c1": 3}


def test_the_call_is_read_back_from_the_body() -> None:
    ledger = Ledger(2)
    m1 = ledger.accept_one(1.0, "c1", _raw("c1", "14155550999"), 0.0)
    # the spellings and the top-level default, read with validation's precedence
    raw = orjson.dumps(
        {
            "correlationId": None,
            "correlationid": "top",
            "to": [{"msisdn": ["+14155550777"], "correlationId": None}],
        }
    )
    m2 = ledger.accept_one(2.0, "top", raw, 0.0)
    assert m1 is not None and m2 is not None
    first, second = ledger.call(m1), ledger.call(m2)
    assert first is not None and second is not None
    assert (first.msisdn, first.correlation_id) == ("14155550999", "c1")
    assert (second.msisdn, second.correlation_id, second.raw) == ("+14155550777", "top", raw)
    m3 = ledger.accept_one(3.0, "c3", _raw("c3"), 0.0)  # m1 leaves the ring
    assert ledger.call(m1) is None
    assert m3 is not None and ledger.call(m3) is not None
    assert [r.message_ids for r in ledger.requests()] == [m2, m3]
    assert ledger.requests()[0].as_json()["correlation_ids"] == ["top"]


def test_derived_message_ids_are_unique_and_only_their_own_spelling_is_found() -> None:
    ledger = Ledger(100)
    first = [ledger.accept_one(float(i), f"c{i}", _raw(f"c{i}"), 0.0) for i in range(3)]
    ledger.reset()
    again = [ledger.accept_one(float(i), f"c{i}", _raw(f"c{i}"), 0.0) for i in range(3)]
    mids = [m for m in first + again if m is not None]
    assert len(set(mids)) == 6  # a reset does not reuse ids
    assert all(len(m) == 36 and str(uuid.UUID(m)) == m for m in mids)  # uuid-shaped
    assert [ledger.call(m) is None for m in mids] == [True] * 3 + [False] * 3
    mid = mids[3]
    head, tail = mid[:24], mid[24:]
    number = int(tail, 16)
    for other in (
        head + tail.upper(),
        head + "0x" + tail[2:],
        head + tail[:6] + "_" + tail[7:],
        head + f"{number + 3:012x}",  # not accepted yet
        head + " " + tail[1:],
        "x" + mid[1:],
        mid + "0",
        "",
    ):
        if other != mid:
            assert ledger.call(other) is None, other


def test_a_derived_id_is_not_found_in_a_request_that_was_refused() -> None:
    ledger = Ledger(10)
    mid = ledger.accept_one(1.0, "c1", _raw("c1"), 0.0)
    assert mid is not None
    following = mid[:24] + f"{int(mid[24:], 16) + 1:012x}"
    ledger.record_request(2.0, 400, "7003", "Mandatory parameter missing: from", raw=b"{}")
    assert ledger.call(following) is None
    assert ledger.call(mid) is not None


def test_plans_leave_with_the_request_of_their_call() -> None:
    ledger = Ledger(2)
    mid = ledger.accept_one(1.0, "c1", _raw("c1"), 0.0)
    assert mid is not None
    ledger.plans[mid] = None  # type: ignore[assignment]  # any value: only its key matters
    ledger.accept_one(2.0, "c2", _raw("c2"), 0.0)
    assert mid in ledger.plans
    ledger.accept_one(3.0, "c3", _raw("c3"), 0.0)
    assert mid not in ledger.plans


def test_the_oldest_tenth_is_forgotten_past_the_limit() -> None:
    ledger = Ledger(1000, id_limit=20)
    for i in range(20):
        ledger.accept_one(float(i), f"c{i}", _raw(f"c{i}"), 0.0)
    ledger.accept_one(20.0, "c0", _raw("c0"), 0.0)  # a repeat: nothing forgotten
    assert ledger.summary()["correlation_ids_forgotten"] == 0
    ledger.accept_one(21.0, "c20", _raw("c20"), 0.0)
    summary = ledger.summary()
    assert summary["correlation_ids_forgotten"] == 2  # a tenth of 20
    counts = summary["accepted_by_correlation_id"]
    assert "c0" not in counts and "c1" not in counts  # the two first accepted
    assert "c0" not in summary["duplicated_correlation_ids"]
    assert counts == {f"c{i}": 1 for i in range(2, 21)}
    assert summary["accepted"] == 22  # totals stay complete
    # a forgotten id counts from scratch
    ledger.accept_one(22.0, "c0", _raw("c0"), 0.0)
    assert ledger.summary()["accepted_by_correlation_id"]["c0"] == 1


def test_add_call_obeys_the_limit_too() -> None:
    ledger = Ledger(10, id_limit=3)
    for i in range(5):
        ledger.add_call(f"m{i}", f"c{i}", "+14155550123", float(i), _raw(f"c{i}"))
    assert list(ledger.accepted_counts()) == ["c2", "c3", "c4"]
    assert ledger.ids_forgotten == 2
    ledger.reset()
    assert ledger.ids_forgotten == 0 and ledger.accepted_counts() == {}


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 30),
    ids=st.lists(st.integers(0, 60), max_size=200),
    via_add=st.lists(st.booleans(), max_size=200),
)
def test_counts_are_bounded_and_account_for_everything(
    limit: int, ids: list[int], via_add: list[bool]
) -> None:
    ledger = Ledger(50, id_limit=limit)
    newly_counted = 0
    for n, i in enumerate(ids):
        cid = f"c{i}"
        newly_counted += cid not in ledger.accepted_at
        if n < len(via_add) and via_add[n]:
            ledger.add_call(f"m{n}", cid, "+14155550123", float(n), _raw(cid))
        else:
            ledger.accept_one(float(n), cid, _raw(cid), 0.0)
        counts = ledger.accepted_counts()
        assert len(counts) <= limit
        assert cid in counts  # the id just accepted is always kept
    counts = ledger.accepted_counts()
    # every acceptance is either counted or belonged to an id that was forgotten since
    assert sum(counts.values()) <= len(ids)
    assert ledger.accepted_total == len(ids)
    assert set(ledger.repeats) <= set(counts)
    assert newly_counted == len(counts) + ledger.ids_forgotten


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 8),
    ops=st.lists(st.tuples(st.sampled_from(["one", "add", "refused"]), st.integers(0, 9))),
)
def test_call_lookup_matches_a_model_of_both_rings(limit: int, ops: list[tuple[str, int]]) -> None:
    """accept_one's calls live as long as their request, add_call's as long as their call slot;
    every id ever issued is found exactly while kept, with the fields it was accepted with."""
    ledger = Ledger(limit)
    issued: list[tuple[str, str, str, float, str, int]] = []  # mid, cid, msisdn, at, ring, index
    seq = calls = 0
    for n, (op, i) in enumerate(ops):
        cid, number, at = f"c{i}", f"+1415555{n:04d}", float(n)
        if op == "one":
            mid = ledger.accept_one(at, cid, _raw(cid, number), 0.0)
            assert mid is not None
            seq += 1
            issued.append((mid, cid, number, at, "requests", seq))
        elif op == "add":
            mid = f"explicit-{n}"
            ledger.add_call(mid, cid, number, at, _raw(cid, number))
            ledger.record_request(at, 201, message_ids=mid, raw=_raw(cid, number))
            seq += 1
            issued.append((mid, cid, number, at, "calls", calls))
            calls += 1
        else:
            ledger.record_request(at, 400, "7003", "Mandatory parameter missing: from", raw=b"{}")
            seq += 1
        for mid, cid, number, at, ring, index in issued:
            kept = index > seq - limit if ring == "requests" else index >= calls - limit
            call = ledger.call(mid)
            assert (call is not None) == kept, (mid, ring, index)
            if call is not None:
                assert (call.message_id, call.correlation_id, call.msisdn) == (mid, cid, number)
                assert call.accepted_at == at
