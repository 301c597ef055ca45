"""A token bucket: ``rate`` tokens per second, at most ``capacity`` saved up (the burst)."""

from __future__ import annotations

import math


class TokenBucket:
    """Not thread-safe: one per event loop. Time is passed in, so tests need no clock."""

    __slots__ = ("_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self._tokens = self.capacity
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def try_acquire(self, now: float, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0; otherwise take nothing and return the
        seconds to wait until they would be."""
        self._refill(now)
        if self._tokens >= tokens:
            self._tokens -= tokens
            return 0.0
        return (tokens - self._tokens) / self.rate

    def available(self, now: float) -> float:
        self._refill(now)
        return self._tokens


def retry_after_header(wait_seconds: float) -> str:
    """``Retry-After`` is whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))
