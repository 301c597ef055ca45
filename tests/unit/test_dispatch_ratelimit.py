"""The adaptive token bucket: configured share, halved on throttling, recovering gradually."""

from __future__ import annotations

from consumers.dispatcher.ratelimit import AdaptiveRateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def sent_in(limiter: AdaptiveRateLimiter, clock: Clock, seconds: float, step: float = 0.001) -> int:
    sent, end = 0, clock.t + seconds
    while clock.t < end:
        if limiter.wait_time() == 0:
            sent += 1
        clock.t += step
    return sent


def test_unlimited_without_a_rate() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(None, now=clock)
    assert all(limiter.wait_time() == 0 for _ in range(10_000))


def test_target_rate_is_respected() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(100.0, now=clock)
    sent = sent_in(limiter, clock, 5.0)
    assert 490 <= sent <= 515  # 100/s plus a burst of a tenth of a second


def test_share_of_partitions() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(100.0, now=clock)
    limiter.set_target(50.0)
    assert limiter.rate == 50.0


def test_throttle_halves_blocks_for_retry_after_then_recovers() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(100.0, now=clock)
    limiter.throttled(2.0)
    assert limiter.rate == 50.0
    assert limiter.wait_time() == 2.0  # blocked until Retry-After
    limiter.throttled(2.0)  # answers to requests already in flight: no second halving
    assert limiter.rate == 50.0
    clock.t += 2.0
    sent_in(limiter, clock, 3.0)
    assert 50.0 < limiter.rate < 100.0  # recovering by a tenth of the target per second
    sent_in(limiter, clock, 10.0)
    assert limiter.rate == 100.0
    assert limiter.lowest_rate == 50.0


def test_throttle_without_target_uses_observed_rate_and_lifts_later() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(None, min_rate=1.0, now=clock)
    sent_in(limiter, clock, 1.0, step=0.005)  # about 200/s observed
    limiter.throttled(None)
    assert limiter.rate is not None
    assert 90 <= limiter.rate <= 110
    sent_in(limiter, clock, 30.0, step=0.0005)
    assert limiter.rate is None  # far above what was throttled: the limit is dropped


def test_never_below_min_rate() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(4.0, min_rate=3.0, now=clock)
    for _ in range(5):
        limiter.throttled(None)
        clock.t += 1.0
    assert limiter.rate is not None
    assert limiter.rate >= 3.0
