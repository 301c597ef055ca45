"""The ledger: ring buffers of the newest ``limit`` requests and calls, exact counters, the
request path's :meth:`Ledger.accept_one` (duplicate window, repeats, the number read back from
the body), and the bound on counted correlation ids (``id_limit``)."""

from __future__ import annotations

import gc

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.ledger import Ledger


def _raw(cid: str, number: str = "+14155550123") -> bytes:
    return orjson.dumps({"to": [{"msisdn": [number], "correlationId": cid}]})


def test_keeps_the_newest_limit_and_counts_everything() -> None:
    ledger = Ledger(3)
    for i in range(5):
        ledger.accept_one(float(i), f"m{i}", f"c{i}", "+14155550123", _raw(f"c{i}"), 0.0)
    ledger.record_request(9.0, 409, "7130", "Duplicate correlationId: c4", None, (), _raw("c4"))
    assert [r.seq for r in ledger.requests()] == [4, 5, 6]
    assert [r.seq for r in ledger.requests(since=5)] == [6]
    last = ledger.requests()[-1]
    assert (last.http_status, last.code, last.message_ids) == (409, "7130", ())
    assert [ledger.call(f"m{i}") is None for i in range(5)] == [True, True, False, False, False]
    call = ledger.call("m4")
    assert call is not None
    assert (call.message_id, call.correlation_id, call.accepted_at) == ("m4", "c4", 4.0)
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
    mids = [f"m{i}" for i in range(1000)]
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for i, raw in enumerate(raws):
            ledger.accept_one(float(i), mids[i], f"c{i}", "+14155550123", raw, 0.0)
        assert len(gc.get_objects()) - before < 10
    finally:
        gc.enable()


def test_duplicate_within_the_window_records_nothing() -> None:
    ledger = Ledger(10)
    assert ledger.accept_one(100.0, "m1", "c1", None, _raw("c1"), 60.0) is None
    assert ledger.accept_one(130.0, "m2", "c1", None, _raw("c1"), 60.0) == 100.0
    assert ledger.call("m2") is None
    assert ledger.summary()["requests"] == 1
    assert ledger.summary()["accepted_by_correlation_id"] == {"c1": 1}
    # outside the window: accepted again, counted as a repeat, window restarts from now
    assert ledger.accept_one(170.0, "m3", "c1", None, _raw("c1"), 60.0) is None
    assert ledger.accepted_at["c1"] == 170.0
    summary = ledger.summary()
    assert summary["accepted_by_correlation_id"] == {"c1": 2}
    assert summary["duplicated_correlation_ids"] == ["c1"]
    assert summary["by_status"] == {"201": 2}
    # no window: never a duplicate
    assert ledger.accept_one(171.0, "m4", "c1", None, _raw("c1"), 0.0) is None
    assert ledger.summary()["accepted_by_correlation_id"] == {"c1": 3}


def test_number_is_read_back_from_the_body() -> None:
    ledger = Ledger(2)
    ledger.accept_one(1.0, "m1", "c1", None, _raw("c1", "14155550999"), 0.0)
    ledger.accept_one(2.0, "m2", None, "+14155550777", _raw("x", "+1"), 0.0)
    first, second = ledger.call("m1"), ledger.call("m2")
    assert first is not None and second is not None
    assert (first.msisdn, first.correlation_id) == ("14155550999", "c1")
    assert (second.msisdn, second.correlation_id) == ("+14155550777", None)
    ledger.accept_one(3.0, "m3", "c3", None, _raw("c3"), 0.0)  # m1 leaves the ring
    assert ledger.call("m1") is None
    assert ledger.call("m3") is not None
    assert [r.message_ids for r in ledger.requests()] == ["m2", "m3"]


def test_the_oldest_tenth_is_forgotten_past_the_limit() -> None:
    ledger = Ledger(1000, id_limit=20)
    for i in range(20):
        ledger.accept_one(float(i), f"m{i}", f"c{i}", None, _raw(f"c{i}"), 0.0)
    ledger.accept_one(20.0, "m-again", "c0", None, _raw("c0"), 0.0)  # a repeat: nothing forgotten
    assert ledger.summary()["correlation_ids_forgotten"] == 0
    ledger.accept_one(21.0, "m20", "c20", None, _raw("c20"), 0.0)
    summary = ledger.summary()
    assert summary["correlation_ids_forgotten"] == 2  # a tenth of 20
    counts = summary["accepted_by_correlation_id"]
    assert "c0" not in counts and "c1" not in counts  # the two first accepted
    assert "c0" not in summary["duplicated_correlation_ids"]
    assert counts == {f"c{i}": 1 for i in range(2, 21)}
    assert summary["accepted"] == 22  # totals stay complete
    # a forgotten id counts from scratch
    ledger.accept_one(22.0, "m-c0", "c0", None, _raw("c0"), 0.0)
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
            ledger.accept_one(float(n), f"m{n}", cid, None, _raw(cid), 0.0)
        counts = ledger.accepted_counts()
        assert len(counts) <= limit
        assert cid in counts  # the id just accepted is always kept
    counts = ledger.accepted_counts()
    # every acceptance is either counted or belonged to an id that was forgotten since
    assert sum(counts.values()) <= len(ids)
    assert ledger.accepted_total == len(ids)
    assert set(ledger.repeats) <= set(counts)
    assert newly_counted == len(counts) + ledger.ids_forgotten
