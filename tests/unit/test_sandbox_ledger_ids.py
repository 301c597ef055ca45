"""The ledger counts at most ``id_limit`` correlation ids: past it the oldest tenth is forgotten,
the summary says how many were, and the newest ids keep exact counts. Both ways of recording a
call (the request path's ``accept_one`` and ``add_call``) obey it."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.ledger import Ledger


def _raw(cid: str) -> bytes:
    return orjson.dumps({"to": [{"msisdn": ["+14155550123"], "correlationId": cid}]})


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
