"""The sandbox's token bucket, with time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.ratelimit import TokenBucket, retry_after_header


def test_burst_then_refill() -> None:
    bucket = TokenBucket(rate=10, capacity=15, now=0.0)
    assert all(bucket.try_acquire(0.0) == 0 for _ in range(15))
    wait = bucket.try_acquire(0.0)
    assert wait == pytest.approx(0.1)
    assert bucket.try_acquire(0.1) == 0
    assert bucket.try_acquire(0.1) > 0


def test_refill_never_exceeds_capacity() -> None:
    bucket = TokenBucket(rate=100, capacity=5, now=0.0)
    assert bucket.available(1000.0) == 5


def test_several_tokens_at_once() -> None:
    bucket = TokenBucket(rate=2, capacity=3, now=0.0)
    assert bucket.try_acquire(0.0, 3) == 0
    assert bucket.try_acquire(0.0, 2) == pytest.approx(1.0)


def test_invalid_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1, now=0.0)


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (7.9, "8")])
def test_retry_after_is_whole_seconds(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header


@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200))
def test_never_more_than_rate_times_time_plus_capacity(gaps: list[float]) -> None:
    bucket = TokenBucket(rate=5, capacity=8, now=0.0)
    now = 0.0
    granted = 0
    for gap in gaps:
        now += gap
        if bucket.try_acquire(now) == 0:
            granted += 1
    assert granted <= 8 + 5 * now + 1e-6
