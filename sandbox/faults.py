"""Injected faults: 500/503 answers, latency, hanging requests and "Partial Content".

Each request's fault is drawn from a random source derived from the seed, the request's first
correlation id and how many requests with that id came before, so the same requests get the same
faults whatever their arrival order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox.settings import Behaviour

_unseeded = random.Random()


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str | None  # None, "error_500", "error_503" or "hang"
    latency_s: float
    rejected: frozenset[int]  # destination indexes refused in a Partial Content answer


NO_FAULT = Fault(None, 0.0, frozenset())


def any_fault(b: Behaviour) -> bool:
    return bool(
        b.error_500_rate
        or b.error_503_rate
        or b.hang_rate
        or b.latency_ms
        or (b.latency_distribution != "none" and b.latency_param_ms)
        or b.partial_content_rate
    )


def fault_rng(seed: int | None, key: str) -> random.Random:
    return _unseeded if seed is None else random.Random(f"{seed}|fault|{key}")


def draw(b: Behaviour, rng: random.Random, destinations: int) -> Fault:
    """The fault of one request with ``destinations`` destinations."""
    roll = rng.random()
    kind: str | None = None
    if roll < b.error_500_rate:
        kind = "error_500"
    elif roll < b.error_500_rate + b.error_503_rate:
        kind = "error_503"
    elif roll < b.error_500_rate + b.error_503_rate + b.hang_rate:
        kind = "hang"
    latency_ms = b.latency_ms
    if b.latency_distribution == "uniform":
        latency_ms += rng.uniform(0, b.latency_param_ms)
    elif b.latency_distribution == "exponential" and b.latency_param_ms > 0:
        latency_ms += rng.expovariate(1 / b.latency_param_ms)
    rejected: frozenset[int] = frozenset()
    if destinations > 1 and rng.random() < b.partial_content_rate:
        count = rng.randint(1, destinations - 1)
        rejected = frozenset(rng.sample(range(destinations), count))
    return Fault(kind, latency_ms / 1000, rejected)
