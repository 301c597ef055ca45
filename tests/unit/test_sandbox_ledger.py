"""The ledger's ring buffers: the newest ``limit`` requests and calls, exact counters."""

from __future__ import annotations

import gc

import orjson

from sandbox.ledger import Ledger


def _raw(cid: str) -> bytes:
    return orjson.dumps({"to": [{"msisdn": ["+14155550123"], "correlationId": cid}]})


def test_keeps_the_newest_limit_and_counts_everything() -> None:
    ledger = Ledger(3)
    for i in range(5):
        ledger.record_accepted_one(float(i), f"m{i}", f"c{i}", "+14155550123", _raw(f"c{i}"))
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
            ledger.record_accepted_one(float(i), mids[i], f"c{i}", "+14155550123", raw)
        assert len(gc.get_objects()) - before < 10
    finally:
        gc.enable()
