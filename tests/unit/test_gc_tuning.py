"""The services' collector thresholds: a young generation large enough for a batch of records,
and full collections still reachable (cyclic garbage is reclaimed)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from callstream.gc_tuning import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("restore_thresholds")
def test_tune_gc_applies_the_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    young, middle, old = GC_THRESHOLDS
    assert young >= 10_000  # a few allocations per record: thousands of records per collection
    assert 0 < middle * old <= 10_000  # full collections every <= 10^4 young ones: not never
