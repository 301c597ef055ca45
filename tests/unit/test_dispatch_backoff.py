"""Exponential backoff with full jitter, Retry-After as a capped floor."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.dispatcher.backoff import backoff_ceiling, backoff_delay


def test_ceiling_doubles_then_caps() -> None:
    assert [backoff_ceiling(a, 0.5, 4.0) for a in range(6)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_ceiling(10_000, 0.5, 300.0) == 300.0  # no overflow


def test_full_jitter_spans_zero_to_ceiling() -> None:
    assert backoff_delay(3, 1.0, 60.0, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, 1.0, 60.0, rand=lambda: 0.999) == 0.999 * 4.0


def test_retry_after_is_a_capped_floor() -> None:
    assert backoff_delay(1, 0.1, 10.0, retry_after=5, rand=lambda: 0.5) == 5.0
    assert backoff_delay(1, 0.1, 10.0, retry_after=500, retry_after_cap=60, rand=lambda: 0.5) == 60
    assert backoff_delay(1, 0.1, 10.0, retry_after=-3, rand=lambda: 0.0) == 0.0


@given(
    attempt=st.integers(min_value=-5, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=10, max_value=3600),
    r=st.floats(min_value=0, max_value=0.9999),
)
def test_delay_is_bounded(attempt: int, base: float, cap: float, r: float) -> None:
    delay = backoff_delay(attempt, base, cap, rand=lambda: r)
    assert 0.0 <= delay <= cap
