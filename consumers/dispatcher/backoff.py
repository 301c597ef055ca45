"""Exponential backoff with full jitter (AWS architecture blog): wait a uniform random time in
``[0, min(cap, base * 2 ** (attempt - 1))]``. A ``Retry-After`` from the platform, capped, is a
floor."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_ceiling(attempt: int, base: float, cap: float) -> float:
    """The largest wait after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        return 0.0
    exponent = min(attempt - 1, 62)
    return min(cap, base * (2.0**exponent))


def backoff_delay(
    attempt: int,
    base: float,
    cap: float,
    *,
    retry_after: float | None = None,
    retry_after_cap: float = 60.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next attempt."""
    delay = rand() * backoff_ceiling(attempt, base, cap)
    if retry_after is not None:
        delay = max(delay, min(max(retry_after, 0.0), retry_after_cap))
    return delay
