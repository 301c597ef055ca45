"""The commit watermark: only up to the lowest unfinished offset (faust's 34 35 36 40 -> 37)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.dispatcher.offsets import PartitionOffsets


def test_faust_example() -> None:
    tracker = PartitionOffsets()
    for offset in (34, 35, 36, 37, 40):
        tracker.add(offset)
    for offset in (34, 35, 36, 40):
        tracker.done(offset)
    assert tracker.committable() == 37
    tracker.done(37)
    assert tracker.committable() == 41


def test_nothing_before_the_first_record_and_to_commit_only_when_moved() -> None:
    tracker = PartitionOffsets()
    assert tracker.committable() is None
    assert tracker.to_commit() is None
    tracker.add(5)
    assert tracker.to_commit() == 5
    assert tracker.to_commit() is None
    tracker.done(5)
    assert tracker.to_commit() == 6
    assert tracker.unfinished == 0


def test_out_of_order_add_is_refused() -> None:
    tracker = PartitionOffsets()
    tracker.add(10)
    with pytest.raises(ValueError):
        tracker.add(9)


@given(
    gaps=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=200),
    order=st.randoms(use_true_random=False),
    finished=st.data(),
)
def test_committable_is_the_lowest_unfinished(gaps: list[int], order, finished) -> None:  # type: ignore[no-untyped-def]
    offsets, at = [], 0
    for gap in gaps:  # compacted/transactional topics have gaps between offsets
        at += gap
        offsets.append(at)
    tracker = PartitionOffsets()
    for offset in offsets:
        tracker.add(offset)
    done = finished.draw(st.sets(st.sampled_from(offsets)))
    shuffled = sorted(done)
    order.shuffle(shuffled)
    for offset in shuffled:
        tracker.done(offset)
    unfinished = [o for o in offsets if o not in done]
    expected = unfinished[0] if unfinished else offsets[-1] + 1
    assert tracker.committable() == expected
    assert tracker.unfinished == len(unfinished)
