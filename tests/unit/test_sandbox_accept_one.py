"""The ledger's request-path method :meth:`Ledger.accept_one`: duplicate window, repeats and the
number read back from the body when it is not stored."""

from __future__ import annotations

import orjson

from sandbox.ledger import Ledger


def _raw(cid: str, number: str = "+14155550123") -> bytes:
    return orjson.dumps({"to": [{"msisdn": [number], "correlationId": cid}]})


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
