"""Rate limiting: a token bucket whose rate adapts (AIMD) to the platform's throttling.

The target rate is ``CALLSTREAM_DISPATCH_RATE`` times this replica's share of the partitions of
``calls.requests`` (unset = no limit). On a 429/7020 the rate is halved (from the target, or from
the rate actually observed when there is no target; at most once a second, since the answers to
requests already in flight say nothing new) and sending stops until ``Retry-After``;
then it grows back by a tenth of the target per second (x1.1 per second without a target, the
limit being dropped once it is far above what was throttled).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class AdaptiveRateLimiter:
    """One per process, used from the event loop. ``now`` is injectable for tests."""

    def __init__(
        self,
        target: float | None,
        *,
        min_rate: float = 1.0,
        decrease_every: float = 1.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._now = now
        self.decrease_every = decrease_every
        self._last_decrease = float("-inf")
        self.min_rate = min_rate
        self.target = target
        self.rate: float | None = target  # current limit; None = unlimited
        self._tokens = 1.0
        self._stamp = now()
        self._blocked_until = 0.0
        self._last_adjust = self._stamp
        self._throttled_at_rate: float | None = None
        self._sent: deque[float] = deque(maxlen=4096)
        self.lowest_rate: float | None = None  # the lowest limit applied so far (observability)

    # -- configuration ------------------------------------------------------------------
    def set_target(self, target: float | None) -> None:
        """New share of the configured rate (after a rebalance)."""
        self.target = target
        if target is None:
            self.rate = None if self._throttled_at_rate is None else self.rate
        elif self.rate is None or self.rate > target or self._throttled_at_rate is None:
            self.rate = target

    # -- decisions ----------------------------------------------------------------------
    def observed_rate(self) -> float:
        now = self._now()
        recent = [t for t in self._sent if now - t <= 1.0]
        return float(len(recent))

    def throttled(self, retry_after: float | None) -> None:
        """The platform said 429/7020: halve the rate, stop until ``retry_after``."""
        now = self._now()
        if retry_after:
            self._blocked_until = max(self._blocked_until, now + retry_after)
        if now - self._last_decrease < self.decrease_every:
            return  # answers to requests sent before the last decrease say nothing new
        self._last_decrease = now
        base = self.rate if self.rate is not None else max(self.observed_rate(), self.min_rate)
        self.rate = max(self.min_rate, base / 2)
        self.lowest_rate = min(self.rate, self.lowest_rate or self.rate)
        self._throttled_at_rate = base
        self._tokens = min(self._tokens, 1.0)
        self._last_adjust = now

    def _recover(self, now: float) -> None:
        if self.rate is None or self._throttled_at_rate is None:
            return
        elapsed = now - self._last_adjust
        if elapsed < 1.0:
            return
        steps = int(elapsed)
        self._last_adjust += steps
        if self.target is not None:
            self.rate = min(self.target, self.rate + steps * max(self.target / 10, self.min_rate))
            if self.rate >= self.target:
                self._throttled_at_rate = None
        else:
            self.rate *= 1.1**steps
            if self.rate > 4 * self._throttled_at_rate:
                self.rate, self._throttled_at_rate = None, None

    def wait_time(self) -> float:
        """Seconds until one more request may be sent; 0 means now (and a token is taken)."""
        now = self._now()
        if now < self._blocked_until:
            return self._blocked_until - now
        self._recover(now)
        rate = self.rate
        if rate is None:
            self._sent.append(now)
            return 0.0
        capacity = max(1.0, rate / 10)  # a tenth of a second of burst
        self._tokens = min(capacity, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._sent.append(now)
            return 0.0
        return (1.0 - self._tokens) / rate

    async def acquire(self) -> None:
        while True:
            wait = self.wait_time()
            if wait <= 0:
                return
            await asyncio.sleep(wait)
